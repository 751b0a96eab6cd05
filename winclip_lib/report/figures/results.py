"""Our results against the paper's: bars per metric and setting, the scatter of ours against the paper, the curve
over k, bars per category, and the paper's ablations. Every number comes from :mod:`winclip_lib.report.tables`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import ScaledTranslation

from winclip_lib.report.figures.style import NOT_AVAILABLE, add_caption, add_header, renderer, wrap_text
from winclip_lib.report.names import DATASET_LABELS, METRIC_LABELS, setting_label
from winclip_lib.report.tables import PUBLISHED_SOURCES

__all__ = [
    "COURSE_REPORT_LABEL",
    "MISSING_REASONS",
    "NOT_AVAILABLE",
    "plot_ablation",
    "plot_benchmarks",
    "plot_ours_vs_paper",
    "plot_ours_vs_paper_scatter",
    "plot_per_category",
    "plot_shots_curve",
]

#: How the figures name the earlier reproduction whose numbers ``paper_results.csv`` carries besides the paper's.
COURSE_REPORT_LABEL = "2024 course report"
#: Why a source's value can be missing (the caption of a figure that marks one says it at length: :data:`_WHY`).
MISSING_REASONS: dict[str, str] = {"ours": "undefined", "paper": "not published",
                                   "2024 course report": "not reported"}
_UNDEFINED = ("the metric is undefined on the evaluated test images (a category without a normal or without an "
              "anomalous image, or without defect pixels; NaN in the tables)")
_WHY = {
    "ours": "our value for {what}: " + _UNDEFINED,
    "paper": "the paper reports no number for {what}",
    "2024 course report": "the 2024 course report has no number for {what}",
}
#: Bars shorter than this (in %) would be invisible on a 0-105 axis: their value is written beside them.
_SMALL_BAR = 2.0
_SOURCES = ("ours", "paper", COURSE_REPORT_LABEL)
#: Columns of the comparison tables that hold the course report's numbers (newest name first).
_COURSE_COLUMNS = ("course_report", "seed_report")
_BAR_WIDTH = 0.8  # seaborn's default bar width (all hue levels of one category together)


def _course_column(comp: pd.DataFrame) -> str | None:
    return next((c for c in _COURSE_COLUMNS if c in comp.columns), None)


def _comparison_long(comp: pd.DataFrame, metric_labels: Mapping[str, str]) -> pd.DataFrame:
    course = _course_column(comp)
    rows = []
    for r in comp.to_dict("records"):
        label = metric_labels.get(r["metric"], r["metric"])
        rows.append({"k": r["k"], "metric": label, "source": "ours", "value": r["ours"], "std": r["ours_std"]})
        if not pd.isna(r["paper"]):
            rows.append({"k": r["k"], "metric": label, "source": "paper", "value": r["paper"],
                         "std": r.get("paper_std", np.nan)})
        if course is not None and not pd.isna(r[course]):
            rows.append({"k": r["k"], "metric": label, "source": COURSE_REPORT_LABEL, "value": r[course],
                         "std": np.nan})
    return pd.DataFrame(rows, columns=["k", "metric", "source", "value", "std"])


def _dodge(sources: Sequence[str]) -> dict[str, float]:
    """Offset of each hue level's bar from its category's position (seaborn's dodge: levels side by side, centred)."""
    n = len(sources)
    return {s: (j - (n - 1) / 2) * _BAR_WIDTH / n for j, s in enumerate(sources)}


def _error_bars(ax: plt.Axes, data: pd.DataFrame, key: str, order: Sequence[str], sources: Sequence[str],
                vertical: bool) -> None:
    """Error bars (the ``std`` column) on the bars of a seaborn barplot with categorical axis ``key`` (in ``order``)
    and hue ``source`` (in ``sources`` order), each at its bar's dodged position."""
    offset = _dodge(sources)
    pos = {c: i for i, c in enumerate(order)}
    for r in data.dropna(subset=["std", "value"]).itertuples(index=False):
        row = r._asdict()
        if row[key] not in pos or row["source"] not in offset:
            continue
        centre = pos[row[key]] + offset[row["source"]]
        if vertical:
            ax.errorbar(centre, row["value"], yerr=row["std"], color="black", capsize=2, lw=1)
        else:
            ax.errorbar(row["value"], centre, xerr=row["std"], color="black", capsize=2, lw=1)


def _missing_text(source: str) -> str:
    """What is written at the place of a missing bar of ``source``: "n/a — <why>"."""
    return f"{NOT_AVAILABLE} — {MISSING_REASONS.get(source, 'missing')}"


def _mark_missing(ax: plt.Axes, data: pd.DataFrame, key: str, order: Sequence[str], sources: Sequence[str],
                  vertical: bool) -> set[str]:
    """At the place of each bar that has no value (no row, or a NaN one), "n/a — <why>" (:func:`_missing_text`);
    at the end of each bar too short to see (under :data:`_SMALL_BAR` %), its value. Returns the sources with a
    missing bar (for the caption)."""
    offset = _dodge(sources)
    finite = data.dropna(subset=["value"])
    missing: set[str] = set()
    for source in sources:
        values = dict(zip(finite.loc[finite["source"] == source, key], finite.loc[finite["source"] == source,
                                                                                  "value"], strict=True))
        for i, cat in enumerate(order):
            pos = i + offset[source]
            if cat not in values:
                missing.add(source)
                text, at = _missing_text(source), 1.0
            elif abs(values[cat]) < _SMALL_BAR:
                text, at = f"{values[cat]:.1f}", max(float(values[cat]), 0.0) + 1.0
            else:
                continue
            if vertical:
                ax.text(pos, at, text, ha="center", va="bottom", rotation=90, fontsize=7, color="0.25")
            else:
                ax.text(at, pos, text, ha="left", va="center", fontsize=7, color="0.25")
    return missing


def _missing_caption(missing: set[str], what: str) -> str:
    """One sentence per kind of missing bar that the figure shows: "n/a — <why>: <what it means>" (``what``: the
    bar's place, e.g. "this metric and setting")."""
    return " ".join(f"{_missing_text(s)}: {_WHY[s].format(what=what)}." for s in _SOURCES if s in missing)


def _missing_points(sel: pd.DataFrame, metrics: Sequence[str], paper: bool, alias: bool = True) -> str:
    """The caption of a figure of points (scatter, curves) for the values it cannot draw: per dataset and metric,
    the settings where ours is undefined and (``paper``) where the paper publishes no number; "" when none."""
    notes = []
    for (dataset, metric), grp in sel[sel["metric"].isin(list(metrics))].groupby(["dataset", "metric"], sort=False):
        name = DATASET_LABELS.get(dataset, dataset)
        ref = grp["paper_dataset"].iloc[0] if alias and "paper_dataset" in grp else dataset
        if ref != dataset:
            name += f" (vs {DATASET_LABELS.get(ref, ref)})"
        label = f"{name} {METRIC_LABELS.get(metric, metric)}"
        for source, lacking in (("ours", grp["ours"].isna()), ("paper", grp["paper"].isna() if paper else None)):
            if lacking is None or not lacking.any():
                continue
            ks = sorted(int(k) for k in grp.loc[lacking, "k"])
            where = "every setting" if len(ks) == len(grp) and len(ks) > 1 else ", ".join(map(setting_label, ks))
            notes.append(f"{label} ({where}): {'ours' if source == 'ours' else 'paper'} "
                         f"{MISSING_REASONS[source]}")
    if not notes:
        return ""
    undefined = f" Undefined: {_UNDEFINED}." if any("ours undefined" in n for n in notes) else ""
    return f"Not drawn ({NOT_AVAILABLE}): " + "; ".join(notes) + "." + undefined


def _sources(long: pd.DataFrame) -> list[str]:
    """Hue levels of the bar charts: ours and the paper always (a missing paper value is marked n/a), the course
    report where it has numbers."""
    present = set(long["source"])
    return [s for s in _SOURCES if s in ("ours", "paper") or s in present]


def plot_ours_vs_paper(comp: pd.DataFrame, dataset: str, banner: str | None = None, title: str | None = None
                       ) -> Figure:
    """Bars of ours (± std over seeds), the paper (± its std) and the 2024 course report per metric, one panel per
    k; "n/a — <why>" marks the place of a bar without a value (the paper publishes none, ours is undefined), and the
    caption explains each kind shown.

    Args:
        comp: :func:`winclip_lib.report.tables.comparison` (values in %).
        dataset: which dataset of ``comp`` to draw.
    """
    sub = comp[comp["dataset"] == dataset]
    if sub.empty:
        raise ValueError(f"no rows for dataset {dataset!r} in the comparison")
    long = _comparison_long(sub, METRIC_LABELS)
    ks = sorted(long["k"].unique())
    metrics = list(dict.fromkeys(long["metric"]))
    sources = _sources(long)
    palette = dict(zip(_SOURCES, sns.color_palette("deep", 3), strict=True))
    fig, axes = plt.subplots(len(ks), 1, figsize=(max(7.5, 1.3 * len(metrics) + 2.2), 2.6 * len(ks) + 1.5),
                             layout="constrained", squeeze=False, sharex=True)
    missing: set[str] = set()
    for ax, k in zip(axes[:, 0], ks, strict=True):
        data = long[long["k"] == k]
        sns.barplot(data=data, x="metric", y="value", hue="source", order=metrics, hue_order=sources, ax=ax,
                    palette=palette, errorbar=None, legend=ax is axes[0, 0])
        _error_bars(ax, data, "metric", metrics, sources, vertical=True)
        missing |= _mark_missing(ax, data, "metric", metrics, sources, vertical=True)
        ax.set_title(setting_label(k), fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
    axes[0, 0].legend(fontsize=8, title="Source", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].tick_params(axis="x", rotation=30)
    for label in axes[-1, 0].get_xticklabels():
        label.set_ha("right")
        label.set_rotation_mode("anchor")
    add_caption(fig, " ".join(filter(None, [_missing_caption(missing, "this metric and setting"),
                                            "Error bars: std over seeds (ours) and as published (paper)."])))
    default = f"{DATASET_LABELS.get(dataset, dataset)}: ours vs the paper (mean over categories)"
    return add_header(fig, title or default, banner)


def plot_shots_curve(comp: pd.DataFrame, metrics: Sequence[str] = ("image_auroc", "pixel_auroc"),
                     banner: str | None = None, title: str | None = None, datasets: Sequence[str] | None = None,
                     ks: Sequence[int] | None = None, show_paper: bool = True) -> Figure:
    """Ours (mean ± std over seeds) against k, one panel per metric and a line per dataset, with the paper's
    numbers as dashed lines of the same colour. The caption lists the points that cannot be drawn ("n/a": ours
    undefined, or no published number).

    The selection arguments let two uses of the figure differ, e.g. the few-shot notebook drawing only the
    few-shot settings of its datasets, ``plot_shots_curve(comp, ks=(1, 2, 4))``, and the report every setting of
    every dataset, ``plot_shots_curve(comp, metrics=("image_auroc", "pixel_auroc", "pixel_aupro"))``.

    Args:
        comp: :func:`winclip_lib.report.tables.comparison` (values in %).
        metrics: metric names of ``comp``, one panel each.
        datasets: which datasets to draw (default: all of ``comp``, in its order).
        ks: which settings k to draw (default: all; e.g. ``(1, 2, 4)`` for a few-shot-only view).
        show_paper: also draw the paper's numbers (dashed).
    """
    sel = comp
    if datasets is not None:
        sel = sel[sel["dataset"].isin(list(datasets))]
    if ks is not None:
        sel = sel[sel["k"].isin([int(k) for k in ks])]
    metrics = list(metrics)
    if sel.empty or not metrics:
        raise ValueError("plot_shots_curve: nothing to draw for this selection of datasets, settings and metrics")
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(7.0, 4.4 * len(metrics) + 1.8), 4.1),
                             layout="constrained", squeeze=False)
    order = list(datasets) if datasets is not None else list(dict.fromkeys(sel["dataset"]))
    colors = dict(zip(order, sns.color_palette("deep"), strict=False))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for dataset, color in colors.items():
            sub = sel[(sel["dataset"] == dataset) & (sel["metric"] == metric)].sort_values("k")
            if sub.empty:
                continue
            label = DATASET_LABELS.get(dataset, dataset)
            ax.errorbar(sub["k"], sub["ours"], yerr=sub["ours_std"].fillna(0), color=color, marker="o", capsize=3,
                        label=f"{label}: ours")
            ref = sub.dropna(subset=["paper"])
            if show_paper and not ref.empty:
                source = ref["paper_dataset"].iloc[0] if "paper_dataset" in ref else dataset
                ax.plot(ref["k"], ref["paper"], color=color, ls="--", marker="s", mfc="none",
                        label=f"{DATASET_LABELS.get(source, source)}: paper")
        ax.set_xticks(sorted(sel["k"].unique()))
        ax.set_xlabel("k (reference images)")
        ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    axes[0, -1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    note = _missing_points(sel, metrics, paper=show_paper)
    if note:
        add_caption(fig, note)
    few_only = bool(len(sel)) and int(sel["k"].min()) > 0
    default = ("Few-shot: ours vs the paper as k grows" if few_only else "Ours vs the paper as k grows") + \
        " (mean ± std over seeds)"
    return add_header(fig, title or default, banner)


def _stack_legends(ax: plt.Axes, groups: Sequence[tuple[str, list[Any], list[str]]], x: float = 1.03,
                   gap_in: float = 0.12, fontsize: float = 8) -> list[Any]:
    """Legends right of ``ax``, one under the other: each is shifted down by the measured heights (in inches, so
    they stay stacked whatever size the layout gives the axes) of those above it."""
    fig = ax.figure
    legends, offset = [], 0.0
    for i, (title, handles, labels) in enumerate(groups):
        shift = ax.transAxes + ScaledTranslation(0, -offset, fig.dpi_scale_trans)
        leg = ax.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(x, 1.0), bbox_transform=shift,
                        fontsize=fontsize, title_fontsize=fontsize + 1, alignment="left", borderaxespad=0.0)
        if i < len(groups) - 1:
            ax.add_artist(leg)
        legends.append(leg)
        offset += leg.get_window_extent(renderer(fig)).height / fig.dpi + gap_in
    return legends


def plot_ours_vs_paper_scatter(comp: pd.DataFrame, banner: str | None = None, title: str | None = None) -> Figure:
    """Ours against the paper, one point per (dataset, k, metric) with a published number, the diagonal marking
    equality (points above it: ours ≥ paper); error bars are ours' std over seeds. Colour: the metric, size: the
    setting, marker: the dataset (legends "Metric", "Setting", "Dataset"). The caption lists the points that cannot
    be drawn ("n/a": no published number, or ours undefined)."""
    sub = comp.dropna(subset=["paper", "ours"]).copy()
    fig, ax = plt.subplots(figsize=(7.6, 5.8), layout="constrained")
    if sub.empty:
        ax.text(0.5, 0.5, "no published numbers for these datasets", ha="center", va="center")
    else:
        metric_order = list(dict.fromkeys(sub["metric"]))
        dataset_order = list(dict.fromkeys(sub["dataset"]))
        ks = sorted(int(k) for k in sub["k"].unique())
        colors = dict(zip(metric_order, sns.color_palette("tab10", max(len(metric_order), 1)), strict=True))
        markers = dict(zip(dataset_order, "osD^vPX*", strict=False))
        sizes = dict(zip(ks, np.linspace(120, 35, len(ks)) if len(ks) > 1 else [80], strict=True))
        ax.errorbar(sub["paper"], sub["ours"], yerr=sub["ours_std"].fillna(0), fmt="none", ecolor="0.6", lw=1)
        for (metric, dataset, k), grp in sub.groupby(["metric", "dataset", "k"], sort=False):
            ax.scatter(grp["paper"], grp["ours"], s=sizes[int(k)], color=colors[metric],
                       marker=markers.get(dataset, "o"), edgecolors="white", linewidths=0.6, zorder=3)
        lo = float(min(sub["paper"].min(), sub["ours"].min(), 0))
        ax.plot([lo, 100], [lo, 100], color="0.3", ls="--", lw=1)
        ax.set_xlim(lo, 102)
        ax.set_ylim(lo, 102)
        ax.set_aspect("equal", adjustable="box")

        def dot(**kw: Any) -> Line2D:
            return Line2D([], [], ls="", **kw)

        def ds_label(d: str) -> str:
            ref = sub.loc[sub["dataset"] == d, "paper_dataset"].iloc[0] if "paper_dataset" in sub else d
            name = DATASET_LABELS.get(d, d)
            return name if ref == d else f"{name} (vs {DATASET_LABELS.get(ref, ref)})"

        _stack_legends(ax, [
            ("Metric", [dot(marker="o", color=colors[m], markersize=7) for m in metric_order],
             [METRIC_LABELS.get(m, m) for m in metric_order]),
            ("Setting", [dot(marker="o", color="0.45", markersize=math.sqrt(sizes[k])) for k in ks],
             [setting_label(k) for k in ks]),
            ("Dataset", [dot(marker=markers.get(d, "o"), color="0.45", markersize=7) for d in dataset_order],
             [ds_label(d) for d in dataset_order]),
        ])
    ax.set_xlabel("paper (%)")
    ax.set_ylabel("ours (%)")
    note = _missing_points(comp, list(dict.fromkeys(comp["metric"])), paper=True)
    if note:
        add_caption(fig, note)
    return add_header(fig, title or "Ours vs the paper: every metric and setting", banner)


def plot_per_category(pc: pd.DataFrame, k: int, dataset: str, metric: str, banner: str | None = None) -> Figure:
    """Horizontal bars per category of one k: ours (± std over seeds) beside the paper and the 2024 course report;
    "n/a — <why>" marks the place of a bar without a value (the paper publishes none for the category, ours is
    undefined), and the caption explains each kind shown.

    Args:
        pc: :func:`winclip_lib.report.tables.per_category_comparison` of ``dataset`` and ``metric`` (values in %).
    """
    sub = pc[pc["k"] == k]
    course = _course_column(pc)
    long = []
    for r in sub.to_dict("records"):
        long.append({"category": r["category"], "source": "ours", "value": r["ours"], "std": r["ours_std"]})
        for col, name in (("paper", "paper"), (course, COURSE_REPORT_LABEL)):
            if col is not None and not pd.isna(r[col]):
                long.append({"category": r["category"], "source": name, "value": r[col], "std": np.nan})
    data = pd.DataFrame(long, columns=["category", "source", "value", "std"])
    cats = list(dict.fromkeys(data["category"]))
    sources = _sources(data)
    palette = dict(zip(_SOURCES, sns.color_palette("deep", 3), strict=True))
    fig, ax = plt.subplots(figsize=(8.5, 0.3 * len(cats) * len(sources) + 2.0), layout="constrained")
    sns.barplot(data=data, y="category", x="value", hue="source", order=cats, hue_order=sources, errorbar=None,
                ax=ax, palette=palette, orient="h")
    _error_bars(ax, data, "category", cats, sources, vertical=False)
    missing = _mark_missing(ax, data, "category", cats, sources, vertical=False)
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
    ax.set_ylabel("")
    ax.legend(fontsize=8, title="Source", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    add_caption(fig, _missing_caption(missing, "this category and setting") or "Error bars: std over seeds.")
    title = f"{DATASET_LABELS.get(dataset, dataset)}, {k}-shot: {METRIC_LABELS.get(metric, metric)} per category"
    return add_header(fig, title, banner)


def plot_ablation(rows: pd.DataFrame, metric: str, banner: str | None = None, title: str | None = None) -> Figure:
    """One ablation as horizontal bars: ours for each variant (and k), beside the paper's number where it reports one;
    "n/a — <why>" at the place of a bar without a value (the paper reports none, ours is undefined), explained in
    the caption, and the value beside a bar too short to see (e.g. an AUROC of 0).

    Args:
        rows: the ablation's rows of :func:`winclip_lib.experiments.ablations.run_ablations` for ONE dataset, with a
            ``paper`` column (%, NaN where the paper has no number) added by the caller (e.g. from
            :func:`winclip_lib.report.tables.paper_ablations`).
        metric: the metric drawn.
    """
    sub = rows[rows["metric"] == metric]
    if sub.empty:
        raise ValueError(f"no {metric} rows to draw")
    multi_k = sub["k"].nunique() > 1
    labels = [f"{v} ({setting_label(k)})" if multi_k else str(v) for v, k in zip(sub["variant"], sub["k"],
                                                                                   strict=True)]
    long = [{"row": lab, "source": "ours", "value": r.ours, "std": r.ours_std if r.n_seeds > 1 else np.nan}
            for lab, r in zip(labels, sub.itertuples(index=False), strict=True)]
    long += [{"row": lab, "source": "paper", "value": r.paper, "std": np.nan}
             for lab, r in zip(labels, sub.itertuples(index=False), strict=True) if not pd.isna(r.paper)]
    data = pd.DataFrame(long, columns=["row", "source", "value", "std"])
    order = list(dict.fromkeys(labels))
    sources = ["ours", "paper"]
    palette = dict(zip(_SOURCES, sns.color_palette("deep", 3), strict=True))
    fig, ax = plt.subplots(figsize=(9.0, 0.55 * len(order) + 2.0), layout="constrained")
    sns.barplot(data=data, y="row", x="value", hue="source", order=order, hue_order=sources, errorbar=None, ax=ax,
                palette=palette, orient="h")
    _error_bars(ax, data, "row", order, sources, vertical=False)
    missing = _mark_missing(ax, data, "row", order, sources, vertical=False)
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
    ax.set_ylabel("")
    ax.set_yticks(range(len(order)), [wrap_text(o, 3.2, 8) for o in order], fontsize=8)
    ax.legend(fontsize=8, title="Source", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    add_caption(fig, " ".join(filter(None, [_missing_caption(missing, "this row"), "The paper's numbers come from "
                                            "a secondary copy of its tables."])))
    return add_header(fig, title or f"Ablation: {METRIC_LABELS.get(metric, metric)}", banner)


# ------------------------------------------------------------------ every dataset beside the published numbers


def plot_benchmarks(comp: pd.DataFrame, metrics: Sequence[str] = ("image_auroc", "pixel_auroc"),
                    shots: Sequence[int] | None = None, banner: str | None = None, title: str | None = None
                    ) -> Figure:
    """Ours on every dataset beside the published number, one panel per (setting, metric): for each dataset a bar
    of ours (± std over seeds) and one of the preferred published number, coloured by its source and hatched where
    it was read from a copy of the table (not checked against the paper's text). Where a bar is missing, its place
    says why ("n/a — published at 0-shot only", "n/a — no masks: image metrics only", ...).

    Args:
        comp: :func:`winclip_lib.report.tables.benchmark_comparison` (values in %).
        metrics: the metrics drawn, one column of panels each.
        shots: the settings k drawn, one row of panels each (default: zero-shot and the largest k of ``comp``).
    """
    sel = comp[comp["metric"].isin(list(metrics))]
    if shots is None and not sel.empty:
        shots = {0, int(sel["k"].max())}
    if shots is not None:
        sel = sel[sel["k"].isin([int(k) for k in shots])]
    if sel.empty:
        raise ValueError("plot_benchmarks: nothing to draw for these metrics and settings")
    metrics = [m for m in metrics if m in set(sel["metric"])]
    ks = sorted(int(k) for k in sel["k"].unique())
    datasets = list(dict.fromkeys(sel["dataset"]))
    known = list(dict.fromkeys(PUBLISHED_SOURCES.values()))  # one colour per source, whatever is drawn
    present = set(sel["published_source"].dropna())
    sources = [s for s in known if s in present] + sorted(present - set(known))
    deep = sns.color_palette("deep", 10)
    shades = [deep[i] for i in (1, 3, 4, 2, 5, 6, 7, 8)]
    colors = {"ours": deep[0], **dict(zip([*known, *sorted(present - set(known))], shades, strict=False))}
    labels = {}
    for d in datasets:
        ref = sel.loc[sel["dataset"] == d, "paper_dataset"].iloc[0]
        name = DATASET_LABELS.get(d, d)
        labels[d] = name if ref == d else f"{name}\n(vs {DATASET_LABELS.get(ref, ref)} numbers)"
    panel_h = 0.5 * len(datasets) + 0.9
    fig, axes = plt.subplots(len(ks), len(metrics), figsize=(4.7 * len(metrics) + 3.2, panel_h * len(ks) + 1.9),
                             layout="constrained", squeeze=False, sharey=True)
    half = 0.38
    for row, k in enumerate(ks):
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            sub = sel[(sel["k"] == k) & (sel["metric"] == metric)].set_index("dataset")
            for i, d in enumerate(datasets):
                if d not in sub.index:
                    continue
                r = sub.loc[d]
                for offset, value, std, missing, color, hatch in (
                    (-half / 2, r["ours"], r["ours_std"], r["ours_missing"], colors["ours"], None),
                    (half / 2, r["published"], r["published_std"], r["published_missing"],
                     colors.get(r["published_source"], "0.5"),
                     None if pd.isna(r["published"]) or bool(r["published_confirmed"]) else "///"),
                ):
                    y = i + offset
                    if pd.isna(value):
                        ax.text(1.0, y, missing or NOT_AVAILABLE, ha="left", va="center", fontsize=7, color="0.25")
                        continue
                    ax.barh(y, value, height=half, color=color, hatch=hatch, edgecolor="white", lw=0.5)
                    if not pd.isna(std):
                        ax.errorbar(value, y, xerr=std, color="black", capsize=2, lw=1)
            ax.set_xlim(0, 105)
            ax.set_ylim(len(datasets) - 0.5, -0.5)
            ax.set_yticks(range(len(datasets)), [labels[d] for d in datasets], fontsize=8)
            ax.set_title(f"{setting_label(k)}: {METRIC_LABELS.get(metric, metric)}", fontsize=10)
            ax.set_xlabel(f"{METRIC_LABELS.get(metric, metric)} (%)" if row == len(ks) - 1 else "")
            ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=colors["ours"], label="ours (± std over seeds)")]
    handles += [Patch(color=colors[s], label=wrap_text(s, 2.6, 8)) for s in sources]
    if sel["published_confirmed"].eq(False).any():  # None where nothing is published
        handles.append(Patch(facecolor="0.75", hatch="///", edgecolor="white",
                             label=wrap_text("published, read from a copy of the table (not checked against the "
                                             "paper's text)", 2.6, 8)))
    axes[0, -1].legend(handles=handles, fontsize=8, title="Source", title_fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.02, 1.0))
    add_caption(fig, f"{NOT_AVAILABLE} — why a bar is missing. Published: the WinCLIP paper (MVTec-AD, VisA); "
                     "WinCLIP run zero-shot by the AnomalyCLIP authors (ICLR 2024, Table 1); WinCLIP+ at 224 px by "
                     "the ResAD authors (NeurIPS 2024, Table 1). Each dataset's mean over its categories.")
    return add_header(fig, title or "WinCLIP on every dataset: ours beside the published numbers", banner)
