"""Figures of the notebooks and the report (matplotlib / seaborn).

Plotting only: every number drawn here comes from :mod:`winclip_lib` (windows from :mod:`~winclip_lib.core.encoder`,
maps from :class:`~winclip_lib.core.model.Prediction` or :func:`~winclip_lib.experiments.rescore.predict_samples`,
tables from :mod:`~winclip_lib.report.tables`). Every figure function takes ``banner``: a label such as
:data:`winclip_lib.experiments.labels.DEMO_BANNER` that is stamped on the figure (a red line above the axes and a faint
diagonal watermark) and written into the PNG's metadata by :func:`save_figure`. Figures use matplotlib's constrained
layout, and are returned (not shown or closed) so that a notebook displays them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from winclip_lib.core.encoder import window_masks
from winclip_lib.report.tables import DATASET_LABELS, METRIC_LABELS, setting_label

__all__ = [
    "BANNER_COLOR",
    "stamp_banner",
    "figure_banner",
    "save_figure",
    "to_numpy",
    "mask_contours",
    "plot_window_grid",
    "plot_prompt_similarity",
    "plot_scale_maps",
    "plot_heatmaps",
    "heatmap_figure",
    "choose_examples",
    "plot_ours_vs_paper",
    "plot_ours_vs_paper_scatter",
    "plot_shots_curve",
    "plot_per_category",
]

BANNER_COLOR = "#c0001a"
_BANNER_ATTR = "_winclip_banner"
_BANNER_HEIGHT_IN = 0.32


# ------------------------------------------------------------------------------------------------- banner, I/O


def _header(fig: Figure, title: str | None, banner: str | None) -> Figure:
    """Reserve bands at the top of ``fig`` (constrained layout's ``rect``) and draw the banner (bold red, boxed)
    and then the title in them; add a faint diagonal watermark with the banner's first word."""
    setattr(fig, _BANNER_ATTR, banner)
    bands = [(kind, text) for kind, text in (("banner", banner), ("title", title)) if text]
    if not bands:
        return fig
    height = fig.get_figheight()
    step = _BANNER_HEIGHT_IN / height
    top = max(0.5, 1.0 - step * len(bands))
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set") and "rect" in engine.get():
        engine.set(rect=(0.0, 0.0, 1.0, top))
    else:
        fig.subplots_adjust(top=min(top, fig.subplotpars.top))
    for i, (kind, text) in enumerate(bands):
        y = 1.0 - step * (i + 0.5)
        if kind == "banner":
            fig.text(0.5, y, text, ha="center", va="center", fontsize=10, fontweight="bold", color=BANNER_COLOR,
                     bbox={"boxstyle": "round,pad=0.25", "fc": "#fff0f0", "ec": BANNER_COLOR, "lw": 1})
        else:
            fig.text(0.5, y, text, ha="center", va="center", fontsize=12)
    if banner:
        fig.text(0.5, 0.5, banner.split(" ")[0], ha="center", va="center", fontsize=min(90, 14 * fig.get_figwidth()),
                 fontweight="bold", color=BANNER_COLOR, alpha=0.07, rotation=25, zorder=0)
    return fig


def stamp_banner(fig: Figure, banner: str | None) -> Figure:
    """Stamp ``banner`` on any figure: a bold red line across the top (room is reserved for it in the constrained
    layout; a suptitle is moved below it) and a faint diagonal "DEMO" watermark. ``None`` leaves the figure
    unchanged. Returns ``fig``."""
    if not banner:
        setattr(fig, _BANNER_ATTR, None)
        return fig
    title = fig.get_suptitle() or None
    if title:
        fig.suptitle("")
    return _header(fig, title, banner)


def figure_banner(fig: Figure) -> str | None:
    """The banner stamped on ``fig`` by :func:`stamp_banner` (None if none)."""
    return getattr(fig, _BANNER_ATTR, None)


def save_figure(fig: Figure, path: str | Path, dpi: int = 130, metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``fig`` as PNG (parent folders created). The banner, if any, goes into the PNG's ``Description``
    metadata too, so a stray figure file still says it is a demo; ``metadata`` adds other text entries. Returns the
    path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    banner = figure_banner(fig)
    metadata = {**dict(metadata or {}), "Software": "winclip_lib",
                "Description": banner or "WinCLIP reproduction figure"}
    fig.savefig(path, dpi=dpi, format="png", metadata=metadata)
    return path


def to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device/dtype) or array as a float32 or original-dtype NumPy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Outer and inner borders of a bool mask as (N, 2) arrays of (x, y), from ``cv2.findContours``."""
    m = np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return [c[:, 0, :] for c in contours if len(c) >= 2]


def _draw_contours(ax: plt.Axes, mask: np.ndarray | None, color: str = "lime", lw: float = 1.2) -> None:
    if mask is None:
        return
    for c in mask_contours(mask):
        closed = np.vstack([c, c[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color=color, lw=lw)


def _off(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ------------------------------------------------------------------------------------------------ windows


def plot_window_grid(grid: int = 15, scales: Sequence[int] = (2, 3), examples: Sequence[int] | None = None,
                     banner: str | None = None) -> Figure:
    """The windows of each scale on the G x G patch grid (top row: a few windows, drawn from
    :func:`~winclip_lib.core.encoder.window_masks`) and, below, how many windows cover each patch, |W_p| in eq. 1.

    Args:
        grid: G, patches per side (15 for ViT-B/16+ at 240 px).
        scales: window sizes k in patches.
        examples: indices of the windows to draw (default: the first, one in the middle and the last).
    """
    n = len(scales)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 8.4), layout="constrained", squeeze=False)
    colors = sns.color_palette("tab10")
    for col, k in enumerate(scales):
        masks = window_masks(grid, k).numpy()
        n_k = masks.shape[0]
        side = grid - k + 1
        chosen = list(examples) if examples is not None else [0, (side // 2) * side + side // 2, n_k - 1]
        ax = axes[0, col]
        ax.imshow(np.zeros((grid, grid)), cmap="Greys", vmin=0, vmax=1, extent=(-0.5, grid - 0.5, grid - 0.5, -0.5))
        for i, w in enumerate(chosen):
            rows, cols = np.nonzero(masks[w])
            color = colors[i % len(colors)]
            ax.add_patch(Rectangle((cols.min() - 0.5, rows.min() - 0.5), k, k, fc=(*color, 0.35), ec=color, lw=2))
            ax.text(cols.min(), rows.min(), str(w), color="black", fontsize=8, va="top", ha="left")
        ax.set_xticks(np.arange(-0.5, grid, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, grid, 1), minor=True)
        ax.grid(which="minor", color="0.75", lw=0.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(f"k = {k}: {n_k} windows ({side}×{side})\nwindows {', '.join(map(str, chosen))} drawn")
        cover = masks.sum(axis=0)
        ax = axes[1, col]
        sns.heatmap(cover, ax=ax, cmap="viridis", annot=grid <= 16, fmt="d", annot_kws={"fontsize": 6},
                    cbar_kws={"label": "|W_p|"}, square=True, xticklabels=False, yticklabels=False)
        ax.set_title(f"k = {k}: windows covering each patch, |W_p|")
    return _header(fig, f"Sliding windows on the {grid}×{grid} patch grid (stride 1)", banner)


# ------------------------------------------------------------------------------------------------ prompts


def plot_prompt_similarity(embeddings: torch.Tensor | np.ndarray, states: Sequence[str], n_templates: int,
                           n_normal_states: int, banner: str | None = None, title: str | None = None) -> Figure:
    """Cosine similarity of the prompt embeddings: all prompts (left, state-major as
    :func:`~winclip_lib.core.prompts.build_prompts` orders them, the normal/anomalous border marked) and averaged per
    pair of states (right).

    Args:
        embeddings: (N, D) text embeddings, N = len(states) * n_templates, normal states first.
        states: the state words, in the same order (e.g. ``NORMAL_STATES + ANOMALOUS_STATES``).
        n_templates: templates per state. n_normal_states: how many of ``states`` are normal.
    """
    e = to_numpy(embeddings).astype(np.float64)
    if e.shape[0] != len(states) * n_templates:
        raise ValueError(f"expected {len(states)} x {n_templates} embeddings, got {e.shape[0]}")
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    s = len(states)
    by_state = sim.reshape(s, n_templates, s, n_templates).mean(axis=(1, 3))
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.2), layout="constrained", gridspec_kw={"width_ratios": [1, 1.1]})
    sns.heatmap(sim, ax=axes[0], cmap="rocket", square=True, xticklabels=False, yticklabels=False,
                cbar_kws={"label": "cosine similarity"})
    border = n_normal_states * n_templates
    for ax in axes[:1]:
        ax.axhline(border, color="cyan", lw=1.5)
        ax.axvline(border, color="cyan", lw=1.5)
    axes[0].set_title(f"{e.shape[0]} prompts ({border} normal | {e.shape[0] - border} anomalous)")
    labels = [st.replace("{}", "·") for st in states]
    sns.heatmap(by_state, ax=axes[1], cmap="rocket", square=True, annot=True, fmt=".2f", annot_kws={"fontsize": 7},
                xticklabels=labels, yticklabels=labels, cbar_kws={"label": "mean cosine similarity"})
    axes[1].axhline(n_normal_states, color="cyan", lw=1.5)
    axes[1].axvline(n_normal_states, color="cyan", lw=1.5)
    axes[1].set_title("averaged over templates, per pair of states")
    axes[1].tick_params(axis="x", rotation=60)
    return _header(fig, title or "Compositional prompt ensemble: similarity of the prompt embeddings", banner)


# ------------------------------------------------------------------------------------------------ maps


def plot_scale_maps(image: np.ndarray, maps: Mapping[str, Any], mask: np.ndarray | None = None,
                    banner: str | None = None, title: str | None = None, vmin: float | None = None,
                    vmax: float | None = None) -> Figure:
    """An image (with its ground-truth contour) beside named maps, each on its own grid (e.g. the per-scale maps
    M_2, M_3 and the zero-shot map). Maps are (G, G) or (H, W) arrays or tensors (a leading batch dim of 1 is
    dropped) drawn over the image extent; with ``vmin``/``vmax`` unset each map has its own colour scale."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(3.4 * (1 + len(maps)), 3.8), layout="constrained",
                             squeeze=False)
    axes = axes[0]
    axes[0].imshow(img)
    _draw_contours(axes[0], mask)
    axes[0].set_title("image" + (" + ground truth" if mask is not None and np.any(mask) else ""))
    _off(axes[0])
    for ax, (name, m) in zip(axes[1:], maps.items(), strict=True):
        arr = to_numpy(m)
        arr = arr[0] if arr.ndim == 3 else arr
        im = ax.imshow(arr, cmap="jet", extent=(0, w, h, 0), vmin=vmin, vmax=vmax, interpolation="nearest")
        _draw_contours(ax, mask, color="white")
        ax.set_title(f"{name}  ({arr.shape[0]}×{arr.shape[1]})")
        _off(ax)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _header(fig, title, banner)


def plot_heatmaps(images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None],
                  columns: Mapping[str, Sequence[np.ndarray]], row_titles: Sequence[str] | None = None,
                  banner: str | None = None, title: str | None = None, alpha: float = 0.5) -> Figure:
    """The seed report's Fig. 7 layout: one row per image — the image, the ground-truth contour, then each map
    column (e.g. zero-shot and few-shot) overlaid on the image with the contour.

    Each map column shares one colour scale over its rows (its own min and max), so rows are comparable.

    Args:
        images: (H, W, 3) uint8 images. masks: (H, W) bool masks or None (normal images).
        columns: {column title: one (H, W) map per image}.
        row_titles: a caption per row (e.g. "disc / scratch  score 0.71").
    """
    n = len(images)
    if n == 0:
        raise ValueError("plot_heatmaps needs at least one image")
    ncol = 2 + len(columns)
    fig, axes = plt.subplots(n, ncol, figsize=(2.6 * ncol, 2.6 * n + 0.6), layout="constrained", squeeze=False)
    ranges = {}
    for name, maps in columns.items():
        stack = np.stack([to_numpy(m) for m in maps])
        ranges[name] = (float(np.nanmin(stack)), float(np.nanmax(stack)))
    for i in range(n):
        img = np.asarray(images[i])
        h, w = img.shape[:2]
        mask = None if masks[i] is None else np.asarray(masks[i])
        axes[i, 0].imshow(img)
        axes[i, 1].imshow(img)
        _draw_contours(axes[i, 1], mask, color="lime", lw=1.5)
        for j, (name, maps) in enumerate(columns.items()):
            ax = axes[i, 2 + j]
            heat = to_numpy(maps[i])
            lo, hi = ranges[name]
            ax.imshow(img)
            im = ax.imshow(heat, cmap="jet", alpha=alpha, extent=(0, w, h, 0), vmin=lo, vmax=hi)
            _draw_contours(ax, mask, color="white", lw=1.0)
            if i == n - 1:
                fig.colorbar(im, ax=axes[:, 2 + j], location="bottom", shrink=0.8, aspect=25)
        for j, ax in enumerate(axes[i]):
            _off(ax)
            if i == 0:
                ax.set_title(["image", "ground truth", *columns][j])
        if row_titles is not None:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=8)
    return _header(fig, title, banner)


def choose_examples(samples: Sequence[Any], n_anomalous: int = 3, n_normal: int = 1) -> list[Any]:
    """A few test samples to draw: anomalous ones of as many different defect types as possible (in list order),
    then normal ones. Works on :class:`~winclip_lib.datasets.catalog.Sample` (``label``, ``defect``)."""
    bad = [s for s in samples if s.label == 1]
    picked: list[Any] = []
    seen: set[str] = set()
    for s in bad:  # one per defect type first
        if len(picked) < n_anomalous and s.defect not in seen:
            picked.append(s)
            seen.add(s.defect)
    for s in bad:
        if len(picked) < n_anomalous and s not in picked:
            picked.append(s)
    return picked + [s for s in samples if s.label == 0][:n_normal]


def heatmap_figure(samples: Sequence[Any], zero_shot: Any, few_shot: Any | None = None, few_shot_k: int | None = None,
                   size: int = 240, banner: str | None = None, title: str | None = None) -> Figure:
    """:func:`plot_heatmaps` for dataset samples and their predictions.

    Args:
        samples: :class:`~winclip_lib.datasets.catalog.Sample` objects (images and masks are read and resized to
            ``size`` with :func:`~winclip_lib.core.geometry.resize_image` /
            :func:`~winclip_lib.core.geometry.resize_mask`).
        zero_shot: the zero-shot :class:`~winclip_lib.core.model.Prediction` of the samples (k = 0).
        few_shot: the few-shot prediction (k > 0), or None.
    """
    from winclip_lib.core.geometry import resize_image, resize_mask
    from winclip_lib.core.imageio import load_image
    from winclip_lib.datasets.masks import load_mask

    images = [resize_image(load_image(s.image_path), size) for s in samples]
    masks = [resize_mask(load_mask(s), size) if s.mask_path is not None else None for s in samples]
    columns: dict[str, list[np.ndarray]] = {"zero-shot (WinCLIP)": list(to_numpy(zero_shot.map))}
    titles = [f"{s.category} / {s.defect}\ns0={float(zero_shot.score[i]):.3f}" for i, s in enumerate(samples)]
    if few_shot is not None:
        name = f"few-shot (WinCLIP+, k={few_shot_k})" if few_shot_k else "few-shot (WinCLIP+)"
        columns[name] = list(to_numpy(few_shot.map))
        titles = [f"{t}  score={float(few_shot.score[i]):.3f}" for i, t in enumerate(titles)]
    return plot_heatmaps(images, masks, columns, titles, banner=banner, title=title)


# ------------------------------------------------------------------------------------------ ours vs paper


def _comparison_long(comp: pd.DataFrame, metric_labels: Mapping[str, str]) -> pd.DataFrame:
    rows = []
    for r in comp.itertuples(index=False):
        label = metric_labels.get(r.metric, r.metric)
        rows.append({"k": r.k, "metric": label, "source": "ours", "value": r.ours, "std": r.ours_std})
        if not pd.isna(r.paper):
            rows.append({"k": r.k, "metric": label, "source": "paper", "value": r.paper, "std": r.paper_std})
        if "seed_report" in comp and not pd.isna(r.seed_report):
            rows.append({"k": r.k, "metric": label, "source": "seed report", "value": r.seed_report, "std": np.nan})
    return pd.DataFrame(rows, columns=["k", "metric", "source", "value", "std"])


def _error_bars(ax: plt.Axes, data: pd.DataFrame, key: str, order: Sequence[str], sources: Sequence[str],
                vertical: bool) -> None:
    """Error bars (the ``std`` column) on the bars of a seaborn barplot with categorical axis ``key`` and hue
    ``source`` (in ``sources`` order; seaborn makes one bar container per hue level present).

    Bars are matched to rows by position: a bar centred at category position i belongs to ``order[i]`` (seaborn
    dodges hue levels by less than half a step)."""
    present = [s for s in sources if s in set(data["source"])]
    for source, container in zip(present, ax.containers, strict=False):
        rows = data[data["source"] == source].set_index(key)
        for bar in container:
            centre = bar.get_x() + bar.get_width() / 2 if vertical else bar.get_y() + bar.get_height() / 2
            i = int(round(centre))
            if not 0 <= i < len(order) or order[i] not in rows.index or pd.isna(rows.loc[order[i], "std"]):
                continue
            value, std = rows.loc[order[i], "value"], rows.loc[order[i], "std"]
            if vertical:
                ax.errorbar(centre, value, yerr=std, color="black", capsize=2, lw=1)
            else:
                ax.errorbar(value, centre, xerr=std, color="black", capsize=2, lw=1)


def plot_ours_vs_paper(comp: pd.DataFrame, dataset: str, banner: str | None = None, title: str | None = None
                       ) -> Figure:
    """Bars of ours (± std over seeds), the paper (± its std) and the seed report per metric, one panel per k.

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
    sources = [s for s in ("ours", "paper", "seed report") if s in set(long["source"])]
    palette = dict(zip(("ours", "paper", "seed report"), sns.color_palette("deep", 3), strict=True))
    fig, axes = plt.subplots(len(ks), 1, figsize=(max(7.0, 1.3 * len(metrics)), 2.6 * len(ks) + 1.2),
                             layout="constrained", squeeze=False, sharex=True)
    for ax, k in zip(axes[:, 0], ks, strict=True):
        data = long[long["k"] == k]
        sns.barplot(data=data, x="metric", y="value", hue="source", order=metrics, hue_order=sources, ax=ax,
                    palette=palette, errorbar=None, legend=ax is axes[0, 0])
        _error_bars(ax, data, "metric", metrics, sources, vertical=True)
        ax.set_title(setting_label(k), fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
    if ks:
        axes[0, 0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].tick_params(axis="x", rotation=30)
    default = f"{DATASET_LABELS.get(dataset, dataset)}: ours vs the paper (mean over categories)"
    return _header(fig, title or default, banner)


def plot_shots_curve(comp: pd.DataFrame, metrics: Sequence[str] = ("image_auroc", "pixel_auroc"),
                     banner: str | None = None, title: str | None = None) -> Figure:
    """Ours (mean ± std over seeds) against k, one panel per metric and a line per dataset, with the paper's
    numbers as dashed lines of the same colour.

    Args:
        comp: :func:`winclip_lib.report.tables.comparison` (values in %).
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.9), layout="constrained",
                             squeeze=False)
    colors = dict(zip(dict.fromkeys(comp["dataset"]), sns.color_palette("deep"), strict=False))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for dataset, color in colors.items():
            sub = comp[(comp["dataset"] == dataset) & (comp["metric"] == metric)].sort_values("k")
            if sub.empty:
                continue
            label = DATASET_LABELS.get(dataset, dataset)
            ax.errorbar(sub["k"], sub["ours"], yerr=sub["ours_std"].fillna(0), color=color, marker="o", capsize=3,
                        label=f"{label} ours")
            ref = sub.dropna(subset=["paper"])
            if not ref.empty:
                source = ref["paper_dataset"].iloc[0] if "paper_dataset" in ref else dataset
                ax.plot(ref["k"], ref["paper"], color=color, ls="--", marker="s", mfc="none",
                        label=f"{DATASET_LABELS.get(source, source)} paper")
        ax.set_xticks(sorted(comp["k"].unique()))
        ax.set_xlabel("k (reference images)")
        ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _header(fig, title or "Ours vs the paper as k grows (mean ± std over seeds)", banner)


def plot_ours_vs_paper_scatter(comp: pd.DataFrame, banner: str | None = None, title: str | None = None) -> Figure:
    """Ours against the paper, one point per (dataset, k, metric) with a published number, the diagonal marking
    equality (points above it: ours ≥ paper); error bars are ours' std over seeds."""
    sub = comp.dropna(subset=["paper"]).copy()
    fig, ax = plt.subplots(figsize=(6.4, 5.6), layout="constrained")
    if sub.empty:
        ax.text(0.5, 0.5, "no published numbers for these datasets", ha="center", va="center")
    else:
        sub["metric label"] = sub["metric"].map(lambda m: METRIC_LABELS.get(m, m))
        sub["dataset label"] = sub["dataset"].map(lambda d: DATASET_LABELS.get(d, d))
        sub["setting"] = sub["k"].map(lambda k: f"{k}-shot")
        ax.errorbar(sub["paper"], sub["ours"], yerr=sub["ours_std"].fillna(0), fmt="none", ecolor="0.6", lw=1)
        sns.scatterplot(data=sub, x="paper", y="ours", hue="metric label", style="dataset label", size="setting",
                        sizes=(30, 110), ax=ax)
        lo = float(min(sub["paper"].min(), sub["ours"].min(), 0))
        ax.plot([lo, 100], [lo, 100], color="0.3", ls="--", lw=1)
        ax.set_xlim(lo, 102)
        ax.set_ylim(lo, 102)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("paper (%)")
    ax.set_ylabel("ours (%)")
    return _header(fig, title or "Ours vs the paper: every metric and setting", banner)


def plot_per_category(pc: pd.DataFrame, k: int, dataset: str, metric: str, banner: str | None = None) -> Figure:
    """Horizontal bars per category of one k: ours (± std over seeds) beside the paper and the seed report.

    Args:
        pc: :func:`winclip_lib.report.tables.per_category_comparison` of ``dataset`` and ``metric`` (values in %).
    """
    sub = pc[pc["k"] == k]
    long = []
    for r in sub.itertuples(index=False):
        long.append({"category": r.category, "source": "ours", "value": r.ours, "std": r.ours_std})
        for col, name in (("paper", "paper"), ("seed_report", "seed report")):
            if not pd.isna(getattr(r, col)):
                long.append({"category": r.category, "source": name, "value": getattr(r, col), "std": np.nan})
    data = pd.DataFrame(long, columns=["category", "source", "value", "std"])
    cats = list(dict.fromkeys(data["category"]))
    sources = [s for s in ("ours", "paper", "seed report") if s in set(data["source"])]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(cats) * len(sources) + 1.6), layout="constrained")
    sns.barplot(data=data, y="category", x="value", hue="source", order=cats, hue_order=sources, errorbar=None,
                ax=ax, palette="deep", orient="h")
    _error_bars(ax, data, "category", cats, sources, vertical=False)
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
    ax.set_ylabel("")
    title = f"{DATASET_LABELS.get(dataset, dataset)}, {k}-shot: {METRIC_LABELS.get(metric, metric)} per category"
    return _header(fig, title, banner)

