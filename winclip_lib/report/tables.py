"""The reproduction report's tables: our results beside the paper's numbers, as Markdown and CSV.

Inputs are the experiment runner's DataFrames (values are fractions 0-1):

- ``summary``: dataset, k, metric, mean, std, n_seeds, n_categories — the mean over categories per seed, then mean and
  std over seeds (``RunResult.summary``);
- ``per_category``: dataset, category, k, metric, mean, std — mean and std over seeds per category
  (:func:`winclip_lib.experiments.summary.per_category`);
- ``info``: the run's ``run.json`` (``RunResult.info``), which says whether the weights were random.

and the paper's numbers, shipped as ``winclip_lib/report/paper_results.csv`` (:func:`paper_results`, values in %).
Every table shows percentages with one decimal, ours as ``mean ± std`` over seeds (no ± for a single seed), and an
``↑`` where ours, as displayed, is at or above the paper. Tables of a demo run (random weights or synthetic data)
carry its label (:data:`~winclip_lib.experiments.labels.DEMO_BANNER` for the demo) as a bold quote line above the
table (Markdown) and in a leading ``banner`` column (CSV).

All functions are pure (DataFrames in, DataFrames or strings out) except :func:`write_table` and
:func:`write_report`, which write files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from winclip_lib.datasets.catalog import CATEGORIES
from winclip_lib.evaluation.metrics import METRIC_NAMES
from winclip_lib.experiments.labels import DEMO_BANNER
from winclip_lib.report.names import DATASET_LABELS, METRIC_LABELS, NOT_AVAILABLE, dataset_label, setting_label

__all__ = [
    "DEMO_BANNER",
    "DATASET_LABELS",
    "METRIC_LABELS",
    "PAPER_SOURCES",
    "COURSE_REPORT",
    "UP",
    "NOT_AVAILABLE",
    "PUBLISHED_SOURCES",
    "UNCONFIRMED",
    "benchmark_comparison",
    "benchmark_table",
    "missing_reason",
    "published_reference",
    "published_results",
    "ablation_table",
    "with_paper_ablation",
    "compute_stages",
    "discussion",
    "paper_ablations",
    "presets_table",
    "prompt_probabilities_table",
    "prompt_states_table",
    "templates_table",
    "paper_results",
    "format_value",
    "setting_label",
    "dataset_label",
    "comparison",
    "comparison_table",
    "per_category_comparison",
    "per_category_table",
    "markdown_table",
    "write_table",
    "write_report",
]

#: The label of every table and figure made with random weights and synthetic data.
UP = "↑"
#: The 2024 course reproduction report of WinCLIP on MVTec-AD, VisA and MPDD, built on the AnomalyCLIP authors' WinCLIP
#: code (zqhang/Accurate-WinCLIP-pytorch): its numbers are a second reference beside the paper's.
COURSE_REPORT = "2024 course report"
#: Sources that count as "the paper" in the comparison (MPDD: WinCLIP as reported by AnomalyCLIP).
PAPER_SOURCES: tuple[str, ...] = (
    "WinCLIP paper (CVPR 2023) Table 1",
    "WinCLIP paper (CVPR 2023) Table 2",
    "WinCLIP paper (CVPR 2023) per-category table",
    "secondary copy of the paper's table",
    "AnomalyCLIP (ICLR 2024) Table",
)
#: The category of an ablation row of paper_results.csv: "ablation:<ablation>/<row>".
ABLATION_PREFIX = "ablation:"
_PAPER_COLUMNS = ("source", "dataset", "category", "k", "metric", "value", "std", "note")
_KEY = ["dataset", "category", "k", "metric"]


# ----------------------------------------------------------------------------------------------- the paper


def _paper_csv() -> pd.DataFrame:
    with resources.files("winclip_lib.report").joinpath("paper_results.csv").open("r", encoding="utf-8") as f:
        df = pd.read_csv(f, dtype={"source": str, "dataset": str, "category": str, "metric": str, "note": str})
    if tuple(df.columns) != _PAPER_COLUMNS:
        raise ValueError(f"paper_results.csv has columns {list(df.columns)}, expected {list(_PAPER_COLUMNS)}")
    df["k"] = df["k"].astype(int)
    df["value"] = df["value"].astype(float)
    df["std"] = df["std"].astype(float)
    return df


def paper_results() -> pd.DataFrame:
    """The paper's (and the 2024 course report's) numbers, tidy, values and std in %.

    Columns: source, dataset, category ("mean" for means over categories), k, metric (a name in
    :data:`winclip_lib.evaluation.metrics.METRIC_NAMES`; PRO is ``pixel_aupro``), value, std (NaN where none is
    reported), note. The ablation rows of the same file are :func:`paper_ablations`'.
    """
    df = _paper_csv()
    return df[~df["category"].str.startswith(ABLATION_PREFIX)].reset_index(drop=True)


def paper_ablations() -> pd.DataFrame:
    """The paper's ablation numbers: columns ablation, row (e.g. "cpe", "two_class"; a category-level number has
    "row/category"), dataset, k, metric (a metric name, or "ms_per_image"), value, source, note."""
    df = _paper_csv()
    df = df[df["category"].str.startswith(ABLATION_PREFIX)].copy()
    parts = df["category"].str[len(ABLATION_PREFIX):].str.split("/", n=1, expand=True)
    df["ablation"], df["row"] = parts[0], parts[1]
    return df[["ablation", "row", "dataset", "k", "metric", "value", "source", "note"]].reset_index(drop=True)


def _reference(paper: pd.DataFrame, course_report: bool) -> pd.DataFrame:
    """Rows of the paper (or of the 2024 course report), one per (dataset, category, k, metric)."""
    sel = paper["source"].eq(COURSE_REPORT) if course_report else paper["source"].isin(PAPER_SOURCES)
    ref = paper.loc[sel, [*_KEY, "value", "std", "source"]]
    dup = ref.duplicated(_KEY)
    if dup.any():
        raise ValueError(f"duplicate reference rows: {ref.loc[dup, _KEY].to_dict('records')}")
    return ref


# ------------------------------------------------------------------------------------------------ prompts


def prompt_states_table(normal: Sequence[str], anomalous: Sequence[str]) -> pd.DataFrame:
    """The state words side by side, "{}" shown as "[c]": columns "normal state", "anomalous state" (blank where a
    list is shorter), numbered from 1."""
    n = max(len(normal), len(anomalous))

    def cell(states: Sequence[str], i: int) -> str:
        return states[i].replace("{}", "[c]") if i < len(states) else ""

    return pd.DataFrame({"normal state": [cell(normal, i) for i in range(n)],
                         "anomalous state": [cell(anomalous, i) for i in range(n)]}, index=range(1, n + 1))


def templates_table(templates: Sequence[str], columns: int = 2) -> pd.DataFrame:
    """The templates in ``columns`` columns, read down then across ("{}" shown as "[state]"), numbered."""
    rows = -(-len(templates) // columns)
    data = {}
    for c in range(columns):
        chunk = list(templates[c * rows : (c + 1) * rows])
        chunk = [f"{c * rows + i + 1}. {t.replace('{}', '[state]')}" for i, t in enumerate(chunk)]
        data[f"templates {c * rows + 1}-{c * rows + len(chunk)}"] = chunk + [""] * (rows - len(chunk))
    return pd.DataFrame(data)


# ------------------------------------------------------------------------------------------------ labels


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def format_value(mean: float | None, std: float | None = None, *, up: bool = False, digits: int = 1) -> str:
    """``"93.1 ± 2.0"`` (values already in %); ``"91.8"`` without a std (or a NaN one); ``"—"`` for a missing
    mean; ``" ↑"`` appended when ``up``."""
    if _is_missing(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    if not _is_missing(std):
        text += f" ± {std:.{digits}f}"
    return text + (f" {UP}" if up else "")


def _at_or_above(ours: float, paper: float, digits: int = 1) -> bool:
    """Ours, rounded as displayed, is at or above the paper (False when either is missing)."""
    if _is_missing(ours) or _is_missing(paper):
        return False
    return round(float(ours), digits) >= round(float(paper), digits) - 1e-9


def _metric_order(metrics: Iterable[str]) -> list[str]:
    present = set(metrics)
    return [m for m in METRIC_NAMES if m in present] + sorted(present - set(METRIC_NAMES))


def _dataset_order(datasets: Iterable[str]) -> list[str]:
    present = list(dict.fromkeys(datasets))
    return [d for d in DATASET_LABELS if d in present] + [d for d in present if d not in DATASET_LABELS]


def _category_order(dataset: str, categories: Iterable[str]) -> list[str]:
    present = list(dict.fromkeys(categories))
    known = CATEGORIES.get(dataset, ())
    return [c for c in known if c in present] + sorted(c for c in present if c not in known)


# ------------------------------------------------------------------------------------------ main table


def _with_reference(rows: pd.DataFrame, paper: pd.DataFrame, paper_alias: Mapping[str, str] | None,
                    columns: Sequence[str] = ("value", "std", "source")) -> pd.DataFrame:
    """``rows`` (with dataset, category, k, metric) joined with the paper's value/std/source (as paper,
    paper_std, paper_source) and the 2024 course report's value (course_report). ``paper_alias`` maps a dataset to the
    dataset whose published numbers it is compared with (the demo compares "synthetic" with "mvtec"); that
    dataset is the ``paper_dataset`` column."""
    alias = dict(paper_alias or {})
    rows = rows.assign(_ref=rows["dataset"].map(lambda d: alias.get(d, d)))
    names = {"value": "paper", "std": "paper_std", "source": "paper_source"}
    ref = _reference(paper, course_report=False)[[*_KEY, *columns]].rename(columns={**names, "dataset": "_ref"})
    course = _reference(paper, course_report=True)[[*_KEY, "value"]].rename(
        columns={"value": "course_report", "dataset": "_ref"})
    keys = ["_ref", "category", "k", "metric"]
    out = rows.merge(ref, on=keys, how="left").merge(course, on=keys, how="left")
    return out.rename(columns={"_ref": "paper_dataset"})


def comparison(summary: pd.DataFrame, paper: pd.DataFrame | None = None,
               paper_alias: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Ours beside the paper and the 2024 course report, numeric, in %.

    Args:
        summary: the runner's summary (dataset, k, metric, mean, std, n_seeds[, n_categories]); values 0-1.
        paper: :func:`paper_results` (default).
        paper_alias: {dataset: dataset of the published numbers to compare with} (the demo: {"synthetic": "mvtec"}).

    Returns:
        One row per (dataset, k, metric) of ``summary``, datasets/k/metrics in the paper's order, with columns
        dataset, k, metric, ours, ours_std (NaN for a single seed), n_seeds, paper_dataset (whose published
        numbers), paper, paper_std, paper_source, course_report, delta (ours - paper) and at_or_above (ours as
        displayed >= paper).
    """
    paper = paper_results() if paper is None else paper
    need = {"dataset", "k", "metric", "mean", "std"}
    if missing := need - set(summary.columns):
        raise ValueError(f"summary lacks columns {sorted(missing)}")
    ours = summary.copy()
    ours["k"] = ours["k"].astype(int)
    ours["ours"] = ours["mean"].astype(float) * 100.0
    n_seeds = ours["n_seeds"] if "n_seeds" in ours else pd.Series(2, index=ours.index)
    ours["n_seeds"] = n_seeds.astype(int)
    ours["ours_std"] = (ours["std"].astype(float) * 100.0).where(ours["n_seeds"] > 1)
    ours["category"] = "mean"
    out = _with_reference(ours[[*_KEY, "ours", "ours_std", "n_seeds"]], paper, paper_alias)
    out["delta"] = out["ours"] - out["paper"]
    out["at_or_above"] = [_at_or_above(o, p) for o, p in zip(out["ours"], out["paper"], strict=True)]
    ds_rank = {d: i for i, d in enumerate(_dataset_order(out["dataset"]))}
    m_rank = {m: i for i, m in enumerate(_metric_order(out["metric"]))}
    out = out.sort_values(["dataset", "k", "metric"], key=lambda s: s.map(ds_rank) if s.name == "dataset"
                          else s.map(m_rank) if s.name == "metric" else s)
    return out.drop(columns="category").reset_index(drop=True)


def comparison_table(comp: pd.DataFrame, paper_alias: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The report's main table from :func:`comparison`: Dataset, Setting, Metric, Ours (mean ± std, ↑ where at or
    above the paper), Paper (value ± std), 2024 course report, Paper source. The 2024 course report column is left
    out when no row has one."""
    rows = []
    for r in comp.itertuples(index=False):
        rows.append({
            "Dataset": dataset_label(r.dataset, paper_alias),
            "Setting": setting_label(r.k),
            "Metric": METRIC_LABELS.get(r.metric, r.metric),
            "Ours": format_value(r.ours, r.ours_std, up=bool(r.at_or_above)),
            "Paper": format_value(r.paper, r.paper_std),
            "2024 course report": format_value(r.course_report),
            "Paper source": "" if _is_missing(r.paper_source) else r.paper_source,
        })
    columns = ["Dataset", "Setting", "Metric", "Ours", "Paper", "2024 course report", "Paper source"]
    table = pd.DataFrame(rows, columns=columns)
    if not comp.empty and comp["course_report"].isna().all():
        table = table.drop(columns="2024 course report")
    return table


# ------------------------------------------------------------------------------------ per-category table


def per_category_comparison(
    per_category: pd.DataFrame,
    dataset: str,
    metric: str = "image_auroc",
    paper: pd.DataFrame | None = None,
    summary: pd.DataFrame | None = None,
    paper_alias: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per-category numbers of one dataset and metric, ours beside the paper and the 2024 course report, numeric, in %.

    Args:
        per_category: dataset, category, k, metric, mean, std (0-1), mean and std over seeds per category.
        summary: the runner's summary; when given, the "mean" row takes its mean and std over seeds (the paper's
            convention), else the mean row is the mean of the category means.
        paper_alias: as in :func:`comparison`.

    Returns:
        Columns category, k, ours, ours_std, paper, course_report, at_or_above; categories in the dataset's canonical
        order, then a "mean" row per k.
    """
    paper = paper_results() if paper is None else paper
    sel = per_category[(per_category["dataset"] == dataset) & (per_category["metric"] == metric)].copy()
    if sel.empty:
        return pd.DataFrame(columns=["category", "k", "ours", "ours_std", "paper", "course_report", "at_or_above"])
    sel["k"] = sel["k"].astype(int)
    sel["ours"] = sel["mean"].astype(float) * 100.0
    sel["ours_std"] = sel["std"].astype(float) * 100.0
    if "n_seeds" in sel:
        single = sel["n_seeds"].astype(int) <= 1
    elif summary is not None and "n_seeds" in summary:  # seeds per k from the summary
        runs = summary[summary["dataset"] == dataset].groupby(summary["k"].astype(int))["n_seeds"].max()
        single = sel["k"].map(runs).fillna(1).astype(int) <= 1
    else:
        single = sel["k"] == 0  # zero-shot runs once
    sel["ours_std"] = sel["ours_std"].mask(single)
    rows = sel[["category", "k", "ours", "ours_std"]]
    means = []
    for k, grp in rows.groupby("k", sort=True):
        mean, std = grp["ours"].mean(), math.nan
        if summary is not None:
            hit = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)
                          & (summary["k"].astype(int) == int(k))]
            if len(hit) == 1:
                mean = float(hit["mean"].iloc[0]) * 100.0
                n = int(hit["n_seeds"].iloc[0]) if "n_seeds" in hit else 2
                std = float(hit["std"].iloc[0]) * 100.0 if n > 1 else math.nan
        means.append({"category": "mean", "k": int(k), "ours": mean, "ours_std": std})
    order = {c: i for i, c in enumerate(_category_order(dataset, rows["category"]))}
    rows = rows.sort_values(["category", "k"], key=lambda s: s.map(order) if s.name == "category" else s)
    rows = pd.concat([rows, pd.DataFrame(means)], ignore_index=True)
    rows["dataset"], rows["metric"] = dataset, metric
    out = _with_reference(rows, paper, paper_alias, columns=("value",))
    out["at_or_above"] = [_at_or_above(o, p) for o, p in zip(out["ours"], out["paper"], strict=True)]
    return out[["category", "k", "ours", "ours_std", "paper", "course_report", "at_or_above"]].reset_index(drop=True)


def per_category_table(comp: pd.DataFrame) -> pd.DataFrame:
    """Display form of :func:`per_category_comparison`: one row per category (then "mean"), for each k an
    ``"<k>-shot ours"`` column (mean ± std, ↑ where at or above the paper) and, where such numbers exist,
    ``"<k>-shot paper"`` and ``"<k>-shot 2024 course report"`` columns."""
    if comp.empty:
        return pd.DataFrame(columns=["Category"])
    cats = list(dict.fromkeys(comp["category"]))
    table = pd.DataFrame({"Category": cats})
    for k in sorted(comp["k"].unique()):
        sub = comp[comp["k"] == k].set_index("category").reindex(cats)
        label = setting_label(k)
        table[f"{label} ours"] = [
            format_value(r.ours, r.ours_std, up=bool(r.at_or_above)) if not _is_missing(r.ours) else "—"
            for r in sub.itertuples()
        ]
        if sub["paper"].notna().any():
            table[f"{label} paper"] = [format_value(v) for v in sub["paper"]]
        if sub["course_report"].notna().any():
            table[f"{label} 2024 course report"] = [format_value(v) for v in sub["course_report"]]
    return table


# ------------------------------------------------------------------------------------------------ output


def _md_cell(x: Any) -> str:
    return "" if _is_missing(x) else str(x).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame, title: str | None = None, banner: str | None = None) -> str:
    """A GitHub-flavoured Markdown table, preceded by ``### title`` and, for a demo, the banner in bold (a quote line
    right above the table)."""
    lines: list[str] = []
    if title:
        lines += [f"### {title}", ""]
    if banner:
        lines += [f"> **{banner}**", ""]
    cols = [str(c) for c in df.columns]
    lines.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out_dir: str | Path, name: str, title: str | None = None,
                banner: str | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.md`` and ``<out_dir>/<name>.csv``; with a banner the CSV gets a leading ``banner``
    column. Returns the two paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / f"{name}.md", out / f"{name}.csv"
    md.write_text(markdown_table(df, title, banner), encoding="utf-8")
    frame = df.copy()
    if banner:
        frame.insert(0, "banner", banner)
    frame.to_csv(csv, index=False)
    return md, csv


def write_report(
    summary: pd.DataFrame,
    per_category: pd.DataFrame,
    out_dir: str | Path,
    *,
    banner: str | None,
    paper: pd.DataFrame | None = None,
    per_category_metrics: Sequence[str] = ("image_auroc", "pixel_auroc"),
    paper_alias: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write every table of the report under ``out_dir``.

    Files: ``comparison.{md,csv}`` (the main table), ``comparison_values.csv`` (its numbers),
    ``per_category_<dataset>_<metric>.{md,csv}`` for each dataset of the run and each of ``per_category_metrics``,
    ``per_category_all.csv`` (every metric, ours, in %) and ``report.md`` (all tables in one file).

    Args:
        summary, per_category: the runner's tables (values 0-1).
        out_dir: the tables folder (created).
        banner: the run's label (:func:`run_banner`), put on every table; None for real weights on real data.
        paper: :func:`paper_results` (default).
        per_category_metrics: metrics that get a per-category table.
        paper_alias: as in :func:`comparison`.

    Returns:
        {table name: Markdown path} plus "comparison_values", "per_category_all" and "report" paths.
    """
    paper = paper_results() if paper is None else paper
    out = Path(out_dir)
    comp = comparison(summary, paper, paper_alias)
    written: dict[str, Path] = {}
    sections: list[str] = []
    title = "Ours vs the paper (mean over categories; ours mean ± std over seeds, %; ↑ ours ≥ paper)"
    main = comparison_table(comp, paper_alias)
    written["comparison"], _ = write_table(main, out, "comparison", title, banner)
    sections.append(markdown_table(main, title, banner))
    values = comp.copy()
    if banner:
        values.insert(0, "banner", banner)
    values.to_csv(out / "comparison_values.csv", index=False)
    written["comparison_values"] = out / "comparison_values.csv"
    for dataset in _dataset_order(per_category["dataset"]):
        for metric in per_category_metrics:
            pc = per_category_comparison(per_category, dataset, metric, paper, summary, paper_alias)
            if pc.empty:
                continue
            name = f"per_category_{dataset}_{metric}"
            t = (f"{dataset_label(dataset, paper_alias)} per category: {METRIC_LABELS.get(metric, metric)} "
                 "(%; ours mean ± std over seeds; ↑ ours ≥ paper)")
            table = per_category_table(pc)
            written[name], _ = write_table(table, out, name, t, banner)
            sections.append(markdown_table(table, t, banner))
    full = per_category.copy()
    full["mean"] = full["mean"].astype(float) * 100.0
    full["std"] = full["std"].astype(float) * 100.0
    if banner:
        full.insert(0, "banner", banner)
    full.to_csv(out / "per_category_all.csv", index=False)
    written["per_category_all"] = out / "per_category_all.csv"
    head = "# WinCLIP / WinCLIP+ reproduction: tables\n\n" + (f"> **{banner}**\n\n" if banner else "")
    (out / "report.md").write_text(head + "\n".join(sections), encoding="utf-8")
    written["report"] = out / "report.md"
    return written


# ------------------------------------------------------------------------------------- the notebooks' tables


def prompt_probabilities_table(p: Sequence[float], normal_states: Sequence[str], anomalous_states: Sequence[str],
                               n_templates: int) -> pd.DataFrame:
    """p(anomalous) of every prompt (state-major, as ``build_prompts`` orders them) summarised per state: group,
    state ("[c]" for the class), mean, min and max over the templates, to three decimals."""
    states = [*normal_states, *anomalous_states]
    values = pd.Series(list(p), dtype=float)
    if len(values) != len(states) * n_templates:
        raise ValueError(f"expected {len(states)} x {n_templates} probabilities, got {len(values)}")
    rows = []
    for i, state in enumerate(states):
        chunk = values.iloc[i * n_templates : (i + 1) * n_templates]
        rows.append({"group": "normal" if i < len(normal_states) else "anomalous",
                     "state": state.replace("{}", "[c]"), "mean": chunk.mean(), "min": chunk.min(),
                     "max": chunk.max()})
    return pd.DataFrame(rows).round(3)


_OTHER_METRICS = ("pixel_auroc", "pixel_aupro", "pixel_f1_max", "image_auroc")


def with_paper_ablation(results: pd.DataFrame, paper: pd.DataFrame | None = None,
                        paper_alias: Mapping[str, str] | None = None) -> pd.DataFrame:
    """:func:`winclip_lib.experiments.ablations.run_ablations`' rows with a ``paper`` column (%): the paper's number
    for the row's ablation, paper row, dataset (or the dataset it is compared with), k and metric; NaN where the
    paper reports none."""
    paper = paper_ablations() if paper is None else paper
    alias = dict(paper_alias or {})
    ref = paper.rename(columns={"row": "paper_row", "dataset": "_ref", "value": "paper"})
    out = results.assign(_ref=results["dataset"].map(lambda d: alias.get(d, d)), k=results["k"].astype(int))
    out = out.merge(ref[["ablation", "paper_row", "_ref", "k", "metric", "paper"]],
                    on=["ablation", "paper_row", "_ref", "k", "metric"], how="left")
    return out.drop(columns="_ref")


def ablation_table(results: pd.DataFrame, ablation: str, metric: str, paper: pd.DataFrame | None = None,
                   paper_alias: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One ablation of :func:`winclip_lib.experiments.ablations.run_ablations`' results as the report shows it: a row
    per (dataset, variant, k), ours for the ablation's metric (mean ± std over seeds, %) beside the paper's number
    (:func:`with_paper_ablation`; "—" where there is none), then ours for the other metrics that apply."""
    sub = with_paper_ablation(results[results["ablation"] == ablation], paper, paper_alias)
    others = [m for m in _OTHER_METRICS if m != metric and m in set(sub["metric"])]
    rows = []
    for (dataset, variant, k), grp in sub.groupby(["dataset", "variant", "k"], sort=False):
        values = grp.set_index("metric")
        ref = values["paper"].get(metric, math.nan)
        row = {"Dataset": dataset_label(dataset, paper_alias), "Variant": variant, "Setting": setting_label(k),
               f"{METRIC_LABELS.get(metric, metric)} (ours)": _cell(values, metric), "Paper": format_value(ref)}
        row.update({METRIC_LABELS.get(m, m): _cell(values, m) for m in others})
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(values: pd.DataFrame, metric: str) -> str:
    if metric not in values.index:
        return "—"
    r = values.loc[metric]
    std = r["ours_std"] if int(r.get("n_seeds", 2)) > 1 else None
    return format_value(float(r["ours"]), std)


def presets_table(results: pd.DataFrame, shots: Sequence[int] = (0, 1, 4)) -> pd.DataFrame:
    """:func:`winclip_lib.experiments.ablations.run_presets`' results: a row per (dataset, preset, k), the seven
    metrics as columns (mean ± std over seeds, %)."""
    sub = results[results["k"].astype(int).isin([int(k) for k in shots])]
    rows = []
    for (dataset, preset, k), grp in sub.groupby(["dataset", "preset", "k"], sort=False):
        values = grp.set_index("metric")
        rows.append({"Dataset": DATASET_LABELS.get(dataset, dataset), "Preset": preset, "Setting": setting_label(k),
                     **{METRIC_LABELS.get(m, m): _cell(values, m) for m in METRIC_NAMES}})
    return pd.DataFrame(rows)


def compute_stages(bench: Mapping[str, Any], row: str | None = None) -> dict[str, float | None]:
    """Seconds per image of each stage, from ``make bench``'s JSON: encoding, zero-shot and few-shot ``predict``,
    the few-shot association and the zero-shot scoring of one row (default: the row of the precision "auto" picked,
    else "ours fp32"), the text ensemble per class (cold) and AUPRO per image."""
    rows = {r["name"]: r for r in bench.get("rows", [])}
    name = row or (bench.get("auto") or {}).get("auto_row") or "ours fp32"
    r = rows.get(name, {})
    text = (bench.get("stages") or {}).get("text") or {}
    aupro = (bench.get("stages") or {}).get("aupro") or {}
    per_image = aupro["seconds"] / aupro["n_images"] if aupro.get("n_images") else None
    precision = name.split()[-1] if name.startswith("ours") else "fp32"
    return {
        "encode (image + windows + patches)": r.get("encode_s_per_image"),
        "zero-shot predict": r.get("zero_shot_s_per_image"),
        "few-shot predict": r.get("few_shot_s_per_image"),
        "few-shot association": r.get("association_s_per_image"),
        "zero-shot scoring": r.get("zero_shot_scoring_s_per_image"),
        "text ensemble, per class (cold)": (text.get(precision) or {}).get("cold_s"),
        "exact AUPRO, per image": per_image,
    }


def discussion(comp: pd.DataFrame, per_category: pd.DataFrame, banner: str | None,
               paper_alias: Mapping[str, str] | None = None, top: int = 3) -> str:
    """A short written discussion generated from the numbers (Markdown): for each dataset and setting, where ours is
    above or below the paper and by how much (image and pixel AUROC), and the categories that differ most; for a
    demo run, first and plainly, that nothing can be concluded from it."""
    lines = ["## Discussion", ""]
    if banner:
        lines += [f"**{banner}.** The numbers below come from random weights and/or synthetic images: they show that "
                  "the pipeline runs end to end, and nothing about WinCLIP can be concluded from them. Run "
                  "`make reproduce` with the real weights and datasets for the reproduction.", ""]
    with_paper = comp.dropna(subset=["paper"])
    if with_paper.empty:
        return "\n".join(lines + ["No published number to compare with for these datasets and settings."]) + "\n"
    for (dataset, k), grp in with_paper.groupby(["dataset", "k"], sort=False):
        parts = []
        for metric in ("image_auroc", "pixel_auroc", "pixel_aupro"):
            hit = grp[grp["metric"] == metric]
            if len(hit):
                d = float(hit["delta"].iloc[0])
                parts.append(f"{METRIC_LABELS.get(metric, metric)} {float(hit['ours'].iloc[0]):.1f} vs "
                             f"{float(hit['paper'].iloc[0]):.1f} ({'+' if d >= 0 else '−'}{abs(d):.1f})")
        if parts:
            lines.append(f"- **{dataset_label(dataset, paper_alias)}, {setting_label(k)}**: " + "; ".join(parts) + ".")
    for dataset in _dataset_order(per_category["dataset"]):
        pc = per_category_comparison(per_category, dataset, "image_auroc", paper_alias=paper_alias)
        pc = pc[(pc["category"] != "mean") & pc["paper"].notna()].assign(gap=lambda f: f["ours"] - f["paper"])
        if pc.empty:
            continue
        worst = pc.reindex(pc["gap"].abs().sort_values(ascending=False).index).head(top)
        items = ", ".join(f"{r.category} ({setting_label(r.k)}: {r.gap:+.1f})" for r in worst.itertuples())
        lines.append(f"- Largest image-AUROC differences from the paper on "
                     f"{dataset_label(dataset, paper_alias)}: {items}.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ every dataset beside the published numbers
#
# The WinCLIP numbers later papers publish on more industrial benchmarks (winclip_lib/report/published_results.csv:
# the AnomalyCLIP authors' zero-shot runs, ResAD's few-shot runs at 224 px, each marked confirmed or not against its
# paper's text) joined with the WinCLIP paper's own (paper_results.csv), as one reference beside every dataset a
# run covers.

#: Display name of each published source, by the start of its ``source`` in the CSVs, in order of preference (the
#: first with a number for a (dataset, k, metric) is the one a figure draws).
PUBLISHED_SOURCES: dict[str, str] = {
    "WinCLIP paper": "WinCLIP paper (CVPR 2023)",
    "secondary copy of the paper's table": "WinCLIP paper (CVPR 2023)",
    "AnomalyCLIP": "AnomalyCLIP (ICLR 2024) Table 1, zero-shot",
    "ResAD": "ResAD (NeurIPS 2024) Table 1, 224 px",
}
#: Short names of the published sources, for the "n/a — ..." explanations.
_SOURCE_SHORT = {"WinCLIP paper (CVPR 2023)": "the WinCLIP paper", "AnomalyCLIP (ICLR 2024) Table 1, zero-shot":
                 "AnomalyCLIP", "ResAD (NeurIPS 2024) Table 1, 224 px": "ResAD"}
#: Appended to a published number that was not checked against its paper's text.
UNCONFIRMED = "*"
_PUBLISHED_COLUMNS = ("source", "table", "dataset", "category", "k", "metric", "value", "check", "note")


def published_results() -> pd.DataFrame:
    """WinCLIP as later papers report it on more benchmarks, tidy, values in %: columns source, table, dataset,
    category ("mean"), k, metric, value, check ("confirmed" against the paper's text, or "unconfirmed": read from a
    copy of the table), note."""
    with resources.files("winclip_lib.report").joinpath("published_results.csv").open("r", encoding="utf-8") as f:
        df = pd.read_csv(f, dtype={"source": str, "table": str, "dataset": str, "category": str, "metric": str,
                                   "check": str, "note": str})
    if tuple(df.columns) != _PUBLISHED_COLUMNS:
        raise ValueError(f"published_results.csv has columns {list(df.columns)}, expected {list(_PUBLISHED_COLUMNS)}")
    if bad := sorted(set(df["check"]) - {"confirmed", "unconfirmed"}):
        raise ValueError(f"published_results.csv: check must be confirmed or unconfirmed, got {bad}")
    return df.assign(k=df["k"].astype(int), value=df["value"].astype(float))


def _source_label(source: str) -> str | None:
    return next((label for start, label in PUBLISHED_SOURCES.items() if source.startswith(start)), None)


def published_reference(paper: pd.DataFrame | None = None, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every published WinCLIP mean over categories, one row per (dataset, k, metric, source): columns dataset, k,
    metric, value, std (%; NaN where none is published), source (a name of :data:`PUBLISHED_SOURCES`), confirmed
    (False for a number read from a copy of a table: the paper's secondary few-shot cells, the unconfirmed rows of
    published_results.csv). A number in both files (MPDD from AnomalyCLIP) is taken from published_results.csv,
    which records its check. The 2024 course report is a reproduction, not a published number: left out."""
    paper = paper_results() if paper is None else paper
    published = published_results() if published is None else published
    ours = paper[paper["category"].eq("mean")].assign(
        source=paper["source"].map(_source_label), confirmed=~paper["source"].str.startswith("secondary copy"))
    later = published[published["category"].eq("mean")].assign(
        source=published["source"].map(_source_label), std=math.nan, confirmed=published["check"].eq("confirmed"))
    columns = ["dataset", "k", "metric", "value", "std", "source", "confirmed"]
    ref = pd.concat([ours[columns], later[columns]], ignore_index=True).dropna(subset=["source"])
    ref = ref.drop_duplicates(["dataset", "k", "metric", "source"], keep="last")
    rank = {label: i for i, label in enumerate(dict.fromkeys(PUBLISHED_SOURCES.values()))}
    ref = ref.assign(_rank=ref["source"].map(rank)).sort_values(["dataset", "k", "_rank"], kind="stable")
    return ref.drop(columns="_rank").reset_index(drop=True)


def _settings_text(ks: Iterable[int]) -> str:
    labels = [setting_label(k) for k in sorted(set(ks))]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def missing_reason(reference: pd.DataFrame, dataset: str, k: int, metric: str) -> str:
    """Why no published number stands beside ours for (dataset, k, metric), as the figures write it: "n/a — ..."
    (no published WinCLIP number for the dataset; published at other settings only; the source reports no such
    metric); "" when there is one. ``reference``: :func:`published_reference`; ``dataset``: the dataset whose
    published numbers apply (after any alias)."""
    if dataset == "folder":
        return f"{NOT_AVAILABLE} — your own images: nothing published"
    rows = reference[reference["dataset"] == dataset]
    if rows.empty:
        return f"{NOT_AVAILABLE} — no published WinCLIP number"
    at_k = rows[rows["k"] == int(k)]
    if at_k.empty:
        return f"{NOT_AVAILABLE} — published at {_settings_text(rows['k'])} only"
    if (at_k["metric"] == metric).any():
        return ""
    names = " or ".join(_SOURCE_SHORT.get(s, s) for s in dict.fromkeys(at_k["source"]))
    return f"{NOT_AVAILABLE} — {names} reports no {METRIC_LABELS.get(metric, metric)}"



def _ours_missing(metric: str, n_categories: float) -> str:
    if metric in METRIC_NAMES[3:] and (n_categories == 0 or _is_missing(n_categories)):
        return f"{NOT_AVAILABLE} — no masks: image metrics only"
    return f"{NOT_AVAILABLE} — not computed"


def benchmark_comparison(summary: pd.DataFrame, reference: pd.DataFrame | None = None,
                         paper_alias: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Ours on every dataset of a run beside the preferred published number, numeric, in %.

    Args:
        summary: the runner's summary (dataset, k, metric, mean, std, n_seeds, n_categories; values 0-1), of one
            run or of several concatenated.
        reference: :func:`published_reference` (default).
        paper_alias: {dataset: dataset whose published numbers it is compared with} (the demo: synthetic -> mvtec).

    Returns:
        One row per (dataset, k, metric): dataset, k, metric, ours, ours_std (NaN for one seed), ours_missing ("n/a
        — ..." where ours is NaN), paper_dataset, published, published_std, published_source, published_confirmed,
        published_missing ("n/a — ..." where there is no published number); datasets in the report's order.
    """
    reference = published_reference() if reference is None else reference
    alias = dict(paper_alias or {})
    rows = []
    best = reference.drop_duplicates(["dataset", "k", "metric"], keep="first").set_index(["dataset", "k", "metric"])
    for r in summary.to_dict("records"):
        k, ref_ds = int(r["k"]), alias.get(r["dataset"], r["dataset"])
        n_seeds = int(r.get("n_seeds", 1))
        ours = float(r["mean"]) * 100.0
        hit = best.loc[(ref_ds, k, r["metric"])] if (ref_ds, k, r["metric"]) in best.index else None
        rows.append({
            "dataset": r["dataset"], "k": k, "metric": r["metric"], "ours": ours,
            "ours_std": float(r["std"]) * 100.0 if n_seeds > 1 else math.nan,
            "ours_missing": _ours_missing(r["metric"], r.get("n_categories", math.nan)) if math.isnan(ours) else "",
            "paper_dataset": ref_ds,
            "published": math.nan if hit is None else float(hit["value"]),
            "published_std": math.nan if hit is None else float(hit["std"]),
            "published_source": None if hit is None else hit["source"],
            "published_confirmed": None if hit is None else bool(hit["confirmed"]),
            "published_missing": missing_reason(reference, ref_ds, k, r["metric"]) if hit is None else "",
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    ds_rank = {d: i for i, d in enumerate(_dataset_order(out["dataset"]))}
    m_rank = {m: i for i, m in enumerate(_metric_order(out["metric"]))}
    return out.sort_values(["dataset", "k", "metric"], kind="stable", key=lambda s: s.map(ds_rank)
                           if s.name == "dataset" else s.map(m_rank) if s.name == "metric" else s
                           ).reset_index(drop=True)


def benchmark_table(summary: pd.DataFrame, reference: pd.DataFrame | None = None,
                    paper_alias: Mapping[str, str] | None = None, shots: Sequence[int] | None = None
                    ) -> pd.DataFrame:
    """The report's table of every dataset: for each dataset and setting, a row of ours (mean ± std over seeds)
    and under it a row per published source with numbers for that dataset and setting, its name in the Source
    column; the seven metrics as columns ("—" where a row has no number, :data:`UNCONFIRMED` after a published
    number read from a copy of its table, not checked against the paper's text).

    Args:
        summary, reference, paper_alias: as in :func:`benchmark_comparison`.
        shots: the settings k to show (default: every k of ``summary``).
    """
    reference = published_reference() if reference is None else reference
    alias = dict(paper_alias or {})
    ours = summary.assign(k=summary["k"].astype(int))
    if shots is not None:
        ours = ours[ours["k"].isin([int(k) for k in shots])]
    metrics = _metric_order(ours["metric"])
    rows = []
    for dataset in _dataset_order(ours["dataset"]):
        ref_ds = alias.get(dataset, dataset)
        for k in sorted(ours.loc[ours["dataset"] == dataset, "k"].unique()):
            sub = ours[(ours["dataset"] == dataset) & (ours["k"] == k)].set_index("metric")
            row = {"Dataset": dataset_label(dataset, alias), "Setting": setting_label(k), "Source": "ours"}
            for m in metrics:
                if m not in sub.index or _is_missing(sub.loc[m, "mean"]):
                    row[METRIC_LABELS.get(m, m)] = "—"
                    continue
                one_seed = int(sub.loc[m].get("n_seeds", 1)) <= 1
                row[METRIC_LABELS.get(m, m)] = format_value(100.0 * float(sub.loc[m, "mean"]),
                                                            None if one_seed else 100.0 * float(sub.loc[m, "std"]))
            rows.append(row)
            pub = reference[(reference["dataset"] == ref_ds) & (reference["k"] == k)]
            for source, grp in pub.groupby("source", sort=False):
                values = grp.set_index("metric")
                row = {"Dataset": dataset_label(dataset, alias), "Setting": setting_label(k), "Source": source}
                for m in metrics:
                    if m not in values.index:
                        row[METRIC_LABELS.get(m, m)] = "—"
                        continue
                    v = values.loc[m]
                    mark = "" if bool(v["confirmed"]) else UNCONFIRMED
                    row[METRIC_LABELS.get(m, m)] = format_value(float(v["value"]), v["std"]) + mark
                rows.append(row)
    columns = ["Dataset", "Setting", "Source", *(METRIC_LABELS.get(m, m) for m in metrics)]
    return pd.DataFrame(rows, columns=columns)
