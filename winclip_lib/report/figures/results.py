"""Figures of the notebooks and the report (matplotlib / seaborn).

Plotting only: every number drawn here comes from :mod:`winclip_lib` (windows from :mod:`~winclip_lib.core.encoder`,
maps from :class:`~winclip_lib.core.model.Prediction` or :func:`~winclip_lib.experiments.rescore.predict_samples`,
tables from :mod:`~winclip_lib.report.tables`). Every figure function takes ``banner``: a label such as
:data:`winclip_lib.experiments.labels.DEMO_BANNER` that is stamped on the figure (a red line above the axes and a faint
diagonal watermark) and written into the PNG's metadata by :func:`save_figure`. Figures use matplotlib's constrained
layout, and are returned (not shown or closed) so that a notebook displays them.

Names of maps and scores may be given as plain text with subscripts written ``M_2``, ``V_R2``, ``V_Rp`` or ``s_0``:
:func:`math_label` turns them into matplotlib mathtext (``$M_2$``, ``$V_{R_2}$``, ``$V_{R_p}$``, ``$s_0$``) wherever a
figure shows a caller's name. Text that already holds a ``$`` is taken as mathtext and left alone.

Every text of a figure lies inside it (the banner, titles and watermark shrink to fit; ``tests/test_figures.py``
checks each figure function for clipped text).
"""

from __future__ import annotations

import math
import re
import textwrap
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
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from winclip_lib.core.encoder import window_indices, window_masks
from winclip_lib.report.tables import DATASET_LABELS, METRIC_LABELS, setting_label

__all__ = [
    "BANNER_COLOR",
    "COURSE_REPORT_LABEL",
    "NOT_AVAILABLE",
    "stamp_banner",
    "figure_banner",
    "save_figure",
    "to_numpy",
    "mask_contours",
    "math_label",
    "plot_window_grid",
    "plot_window_pass",
    "plot_prompt_similarity",
    "plot_scale_maps",
    "plot_heatmaps",
    "heatmap_figure",
    "choose_examples",
    "plot_reference_images",
    "plot_ours_vs_paper",
    "plot_ours_vs_paper_scatter",
    "plot_shots_curve",
    "plot_per_category",
    "plot_compute",
    "plot_ablation",
]

BANNER_COLOR = "#c0001a"
#: How the figures name the earlier reproduction whose numbers ``paper_results.csv`` carries besides the paper's.
COURSE_REPORT_LABEL = "2024 course report"
#: Written at a bar's place where the paper has no number.
NOT_AVAILABLE = "n/a"
_BANNER_ATTR = "_winclip_banner"
_BANNER_HEIGHT_IN = 0.32
_SOURCES = ("ours", "paper", COURSE_REPORT_LABEL)
#: Columns of the comparison tables that hold the course report's numbers (newest name first).
_COURSE_COLUMNS = ("course_report", "seed_report")
_BAR_WIDTH = 0.8  # seaborn's default bar width (all hue levels of one category together)


# ------------------------------------------------------------------------------------------------- text helpers


def _renderer(fig: Figure):
    """A renderer to measure text with before the figure is drawn."""
    get = getattr(fig.canvas, "get_renderer", None)
    return get() if get is not None else fig._get_renderer()


def _fit_width(fig: Figure, text: Any, frac: float = 0.98, min_size: float = 6.0) -> None:
    """Shrink ``text`` (a figure-level Text) until it is at most ``frac`` of the figure's width."""
    width = text.get_window_extent(_renderer(fig)).width
    limit = frac * fig.bbox.width
    if width > limit:
        text.set_fontsize(max(min_size, text.get_fontsize() * limit / width))


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``fontsize`` points (paragraphs kept)."""
    chars = max(12, int(width_in * 72 / (0.56 * fontsize)))
    return "\n".join(textwrap.fill(p, chars) for p in text.split("\n"))


_SUBSCRIPT = re.compile(
    r"(?<![A-Za-z0-9\\{}_^])([A-Za-z])_(\{[^{}$]+\}|[0-9]+|[A-Z](?:[0-9]+|[a-z])|[A-Za-z])(?![A-Za-z0-9])")


def _subscript(m: re.Match) -> str:
    base, sub = m.group(1), m.group(2)
    if sub.startswith("{") or len(sub) == 1:
        inner = sub
    elif sub.isdigit():
        inner = "{" + sub + "}"
    else:  # V_R2 -> V_{R_2}, V_Rp -> V_{R_p}
        rest = sub[1:] if len(sub) == 2 else "{" + sub[1:] + "}"
        inner = "{" + sub[0] + "_" + rest + "}"
    return f"${base}_{inner}$"


def math_label(text: str) -> str:
    """``text`` with plain subscripts written as matplotlib mathtext: ``"M_2 (eq. 1)"`` -> ``"$M_2$ (eq. 1)"``,
    ``"V_R2"`` -> ``"$V_{R_2}$"``, ``"V_Rp"`` -> ``"$V_{R_p}$"``, ``"s_0"`` -> ``"$s_0$"``, ``"M_{12}"`` ->
    ``"$M_{12}$"``.

    Only a single letter standing alone (not the end of a word, so ``zero_shot`` is kept) followed by ``_`` and a
    short subscript (digits, one letter, an upper-case letter with digits or one lower-case letter, or a braced
    group) is converted. Text that already contains ``$`` is returned unchanged (it is mathtext already)."""
    if "$" in text:
        return text
    return _SUBSCRIPT.sub(_subscript, text)


# ------------------------------------------------------------------------------------------------- banner, I/O


def _header(fig: Figure, title: str | None, banner: str | None) -> Figure:
    """Reserve bands at the top of ``fig`` (constrained layout's ``rect``) and draw the banner (bold red, boxed)
    and then the title in them, each shrunk to fit the width; add a faint diagonal watermark with the banner's first
    word, sized to fit inside the figure."""
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
            t = fig.text(0.5, y, text, ha="center", va="center", fontsize=10, fontweight="bold", color=BANNER_COLOR,
                         bbox={"boxstyle": "round,pad=0.25", "fc": "#fff0f0", "ec": BANNER_COLOR, "lw": 1})
            _fit_width(fig, t, frac=0.95)
        else:
            _fit_width(fig, fig.text(0.5, y, text, ha="center", va="center", fontsize=12))
    if banner:
        mark = fig.text(0.5, 0.5, banner.split(" ")[0], ha="center", va="center",
                        fontsize=min(90, 14 * fig.get_figwidth()), fontweight="bold", color=BANNER_COLOR, alpha=0.07,
                        rotation=25, zorder=0)
        ext = mark.get_window_extent(_renderer(fig))
        scale = min(1.0, 0.9 * fig.bbox.width / max(ext.width, 1.0), 0.9 * fig.bbox.height / max(ext.height, 1.0))
        mark.set_fontsize(mark.get_fontsize() * scale)
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


def _as_image(x: Any) -> np.ndarray:
    """An image to draw: (H, W) or (H, W, 3); a channels-first (C, H, W) array or tensor is moved to channels-last,
    and floats outside [0, 1] (e.g. a normalised tensor) are rescaled to [0, 1]."""
    img = to_numpy(x)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if np.issubdtype(img.dtype, np.floating) and img.size and (img.min() < 0 or img.max() > 1):
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img


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


def _caption(fig: Figure, text: str, fontsize: float = 8) -> None:
    """A caption under the axes (``supxlabel``, so constrained layout makes room), wrapped to the figure width."""
    fig.supxlabel(_wrap(text, 0.96 * fig.get_figwidth(), fontsize), fontsize=fontsize, color="0.25")


# ------------------------------------------------------------------------------------------------ windows


def _count_heatmap(ax: plt.Axes, counts: np.ndarray, label: str, annotate: bool) -> None:
    """An integer (G, G) array as a heatmap with one colour per value that occurs (evenly spaced on the colour bar)
    and integer tick labels: the values themselves, not a continuous 1.0, 1.5, ... scale."""
    values = np.unique(counts)
    level = np.searchsorted(values, counts)
    m = len(values)
    cmap = plt.get_cmap("viridis").resampled(m)
    im = ax.imshow(level, cmap=cmap, vmin=-0.5, vmax=m - 0.5, interpolation="nearest")
    if annotate:
        for (r, c), v in np.ndenumerate(counts):
            red, green, blue, _ = cmap(int(level[r, c]))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(c, r, str(int(v)), ha="center", va="center", fontsize=6, color="white" if dark else "black")
    _off(ax)
    ticks = list(range(m)) if m <= 12 else sorted({int(round(t)) for t in np.linspace(0, m - 1, 8)})
    cb = ax.figure.colorbar(im, ax=ax, ticks=ticks, shrink=0.85)
    cb.set_ticklabels([str(int(values[t])) for t in ticks])
    cb.set_label(label)


def plot_window_grid(grid: int = 15, scales: Sequence[int] = (2, 3), examples: Sequence[int] | None = None,
                     banner: str | None = None) -> Figure:
    """The windows of each scale on the G x G patch grid (top row: a few windows, drawn from
    :func:`~winclip_lib.core.encoder.window_masks`) and, below, how many windows cover each patch, |W_p| in eq. 1
    (one colour per count that occurs, the counts as the colour bar's ticks).

    Args:
        grid: G, patches per side (15 for ViT-B/16+ at 240 px).
        scales: window sizes k in patches.
        examples: indices of the windows to draw (default: the first, one in the middle and the last).
    """
    n = len(scales)
    fig, axes = plt.subplots(2, n, figsize=(max(6.0, 4.3 * n), 8.6), layout="constrained", squeeze=False)
    colors = sns.color_palette("tab10")
    for col, k in enumerate(scales):
        masks = window_masks(grid, k).numpy()
        n_k = masks.shape[0]
        side = grid - k + 1
        chosen = list(examples) if examples is not None else list(dict.fromkeys(
            [0, (side // 2) * side + side // 2, n_k - 1]))
        ax = axes[0, col]
        ax.imshow(np.zeros((grid, grid)), cmap="Greys", vmin=0, vmax=1, extent=(-0.5, grid - 0.5, grid - 0.5, -0.5))
        for i, w in enumerate(chosen):
            rows, cols = np.nonzero(masks[w])
            color = colors[i % len(colors)]
            ax.add_patch(Rectangle((cols.min() - 0.5, rows.min() - 0.5), k, k, fc=(*color, 0.35), ec=color, lw=2))
            ax.text(cols.min() - 0.3, rows.min() - 0.3, str(w), color="black", fontsize=8, va="top", ha="left")
        ax.set_xticks(np.arange(-0.5, grid, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, grid, 1), minor=True)
        ax.grid(which="minor", color="0.75", lw=0.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(f"$k = {k}$: {n_k} windows ({side}×{side})\nwindows {', '.join(map(str, chosen))} drawn",
                     fontsize=10)
        ax = axes[1, col]
        _count_heatmap(ax, masks.sum(axis=0).astype(int), "$|W_p|$ (windows)", annotate=grid <= 16)
        ax.set_title(f"$k = {k}$: windows per patch, $|W_p|$", fontsize=10)
    return _header(fig, f"Sliding windows on the {grid}×{grid} patch grid (stride 1)", banner)


def plot_window_pass(image: Any, grid: int, k: int, window_index: int, banner: str | None = None,
                     title: str | None = None, stride: int = 1, tokens_per_row: int = 10,
                     show_indices: bool = False) -> Figure:
    """What one window's masked forward pass sees: the image with the window's k x k patches kept and the rest
    greyed out (left), beside the window's token sequence (right) — the class token, then the window's patch
    tokens in the order of :func:`~winclip_lib.core.encoder.window_indices`, each box labelled with its patch
    index p (row-major in the G x G grid, from 0; the position embedding it carries) and, beneath, its (row, col);
    the image's axes are ticked with the patch rows and columns.

    Args:
        image: (H, W, 3) or (H, W) image (uint8 or float; a (3, H, W) tensor is accepted) at the model's input size.
        grid: G, patches per side. k: window size in patches. window_index: which window of that scale.
        stride: the windows' stride (1 in the paper). tokens_per_row: boxes per row of the sequence before wrapping.
        show_indices: also write each kept patch's index p on the image (windows of up to 6 x 6 patches).
    """
    idx = window_indices(grid, k, stride)
    if not 0 <= window_index < idx.shape[0]:
        raise ValueError(f"window_index {window_index} out of range: scale k={k} has {idx.shape[0]} windows")
    patches = [int(p) for p in idx[window_index]]
    img = _as_image(image).astype(np.float64)
    if np.issubdtype(np.asarray(image).dtype, np.integer) or img.max() > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    keep = np.zeros((grid, grid), dtype=np.uint8)
    keep.flat[patches] = 1
    keep_px = cv2.resize(keep, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    grey = 0.86 + 0.1 * img.mean(axis=2, keepdims=True)
    shown = np.where(keep_px[..., None], img, np.repeat(grey, 3, axis=2))

    n_tok = 1 + len(patches)
    per_row = max(1, min(tokens_per_row, n_tok))
    n_rows = math.ceil(n_tok / per_row)
    fig, (ax_img, ax_seq) = plt.subplots(1, 2, figsize=(11.5, 4.4 + 0.5 * max(0, n_rows - 2)), layout="constrained",
                                         gridspec_kw={"width_ratios": [1, 1.5]})
    accent, cls_color = sns.color_palette("deep")[0], sns.color_palette("deep")[1]
    ax_img.imshow(shown, extent=(0, w, h, 0))
    ph, pw = h / grid, w / grid
    for i in range(1, grid):
        ax_img.axhline(i * ph, color="white", lw=0.4, alpha=0.6)
        ax_img.axvline(i * pw, color="white", lw=0.4, alpha=0.6)
    r0, c0 = divmod(patches[0], grid)
    ax_img.add_patch(Rectangle((c0 * pw, r0 * ph), k * pw, k * ph, fill=False, ec=accent, lw=2.0))
    if show_indices and k <= 6:
        for p in patches:
            r, c = divmod(p, grid)
            ax_img.text((c + 0.5) * pw, (r + 0.5) * ph, str(p), ha="center", va="center", fontsize=6, color="white",
                        bbox={"boxstyle": "round,pad=0.1", "fc": accent, "ec": "none", "alpha": 0.55})
    ax_img.set_xlim(0, w)
    ax_img.set_ylim(h, 0)
    step = max(1, math.ceil(grid / 16))
    ax_img.set_xticks((np.arange(0, grid, step) + 0.5) * pw, [str(c) for c in range(0, grid, step)], fontsize=6)
    ax_img.set_yticks((np.arange(0, grid, step) + 0.5) * ph, [str(r) for r in range(0, grid, step)], fontsize=6)
    ax_img.tick_params(length=0, pad=2)
    ax_img.set_xlabel("patch column", fontsize=8)
    ax_img.set_ylabel("patch row", fontsize=8)
    ax_img.set_title(f"window {window_index} of {idx.shape[0]} ($k = {k}$):\nits {k}×{k} patches kept, "
                     "the rest masked out", fontsize=10)

    labels = ["CLS", *[f"$p_{{{p}}}$" for p in patches]]
    below = ["class", *[f"({p // grid}, {p % grid})" for p in patches]]
    step_x, step_y = 1.25, 1.9
    for t, (label, sub) in enumerate(zip(labels, below, strict=True)):
        row, col = divmod(t, per_row)
        x, y = col * step_x, -row * step_y
        face = (*cls_color, 0.3) if t == 0 else (*accent, 0.25)
        edge = cls_color if t == 0 else accent
        ax_seq.add_patch(FancyBboxPatch((x, y), 1.0, 1.0, boxstyle="round,pad=0,rounding_size=0.12", fc=face,
                                        ec=edge, lw=1.2))
        ax_seq.text(x + 0.5, y + 0.5, label, ha="center", va="center", fontsize=9)
        ax_seq.text(x + 0.5, y - 0.12, sub, ha="center", va="top", fontsize=6, color="0.35")
    ax_seq.set_xlim(-0.15, per_row * step_x - 0.1)
    ax_seq.set_ylim(-(n_rows - 1) * step_y - 0.6, 1.15)
    ax_seq.set_aspect("equal")
    ax_seq.axis("off")
    ax_seq.set_title(f"its token sequence: 1 + $k^2$ = {n_tok} tokens", fontsize=10)
    _caption(fig, f"Only these {n_tok} tokens go through the transformer: the class token and the window's "
                  f"{len(patches)} patch tokens, each with the position embedding of its place $p$ in the "
                  f"{grid}×{grid} grid (row-major from 0; (row, col) beneath). The class token's output is the "
                  "window's embedding; all windows of a scale run as one batch.")
    return _header(fig, title or f"One window's forward pass ({grid}×{grid} patch grid)", banner)


# ------------------------------------------------------------------------------------------------ prompts


def _state_label(state: str) -> str:
    """A state word as a tick label: the object placeholder ``{}`` drawn as ``·``."""
    label = state.replace("{}", "·").strip()
    return label if label != "·" else "· (bare)"


def _group_axis(ax: plt.Axes, centres: Sequence[float], labels: Sequence[str]) -> None:
    """Labels of the normal / anomalous groups above a matrix (a secondary x axis, so the layout makes room)."""
    top = ax.secondary_xaxis("top")
    top.set_xticks(list(centres), list(labels), fontsize=9, fontweight="bold")
    top.tick_params(length=0)


def plot_prompt_similarity(embeddings: torch.Tensor | np.ndarray, states: Sequence[str], n_templates: int,
                           n_normal_states: int, banner: str | None = None, title: str | None = None) -> Figure:
    """Cosine similarity of the prompt embeddings: all prompts (left, state-major as
    :func:`~winclip_lib.core.prompts.build_prompts` orders them; each state's block of templates labelled at its
    centre, thin lines between the blocks, the normal/anomalous border in cyan) and averaged per pair of states
    (right). ``·`` stands for the object's name in the state labels.

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
    n_anom = s - n_normal_states
    by_state = sim.reshape(s, n_templates, s, n_templates).mean(axis=(1, 3))
    labels = [_state_label(st) for st in states]
    fig, axes = plt.subplots(1, 2, figsize=(15, 7.4), layout="constrained", gridspec_kw={"width_ratios": [1, 1]})

    ax = axes[0]
    sns.heatmap(sim, ax=ax, cmap="rocket", square=True, xticklabels=False, yticklabels=False,
                cbar_kws={"label": "cosine similarity", "shrink": 0.8})
    border = n_normal_states * n_templates
    for b in range(1, s):
        if b != n_normal_states:
            ax.axhline(b * n_templates, color="white", lw=0.4, alpha=0.5)
            ax.axvline(b * n_templates, color="white", lw=0.4, alpha=0.5)
    ax.axhline(border, color="cyan", lw=1.5)
    ax.axvline(border, color="cyan", lw=1.5)
    centres = (np.arange(s) + 0.5) * n_templates
    ax.set_yticks(centres, labels, fontsize=8, rotation=0)
    ax.set_xticks(centres, labels, fontsize=8, rotation=60, ha="right", rotation_mode="anchor")
    ax.tick_params(length=0)
    ax.set_xlabel(f"each state's block: its {n_templates} templates", fontsize=9)
    _group_axis(ax, [border / 2, border + n_anom * n_templates / 2],
                [f"normal ({n_normal_states} × {n_templates})", f"anomalous ({n_anom} × {n_templates})"])
    ax.set_title(f"all {e.shape[0]} prompts ({border} normal | {e.shape[0] - border} anomalous)", fontsize=11)

    ax = axes[1]
    sns.heatmap(by_state, ax=ax, cmap="rocket", square=True, annot=s <= 16, fmt=".2f", annot_kws={"fontsize": 7},
                xticklabels=labels, yticklabels=labels, cbar_kws={"label": "mean cosine similarity", "shrink": 0.8})
    ax.axhline(n_normal_states, color="cyan", lw=1.5)
    ax.axvline(n_normal_states, color="cyan", lw=1.5)
    ax.tick_params(axis="y", rotation=0, labelsize=8)
    ax.set_xticks(np.arange(s) + 0.5, labels, fontsize=8, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_xlabel("state (· = the object's name)", fontsize=9)
    _group_axis(ax, [n_normal_states / 2, n_normal_states + n_anom / 2], ["normal", "anomalous"])
    ax.set_title("averaged over templates, per pair of states", fontsize=11)
    return _header(fig, title or "Compositional prompt ensemble: similarity of the prompt embeddings", banner)


# ------------------------------------------------------------------------------------------------ maps


def plot_scale_maps(image: np.ndarray, maps: Mapping[str, Any], mask: np.ndarray | None = None,
                    banner: str | None = None, title: str | None = None, vmin: float | None = None,
                    vmax: float | None = None, max_cols: int = 4, cbar_label: str | None = None) -> Figure:
    """An image (with its ground-truth contour) beside named maps, each on its own grid (e.g. the per-scale maps
    M_2, M_3 and the zero-shot map), in rows of at most ``max_cols`` panels. Maps are (G, G) or (H, W) arrays or
    tensors (a leading batch dim of 1 is dropped) drawn over the image extent; with ``vmin``/``vmax`` unset each map
    has its own colour scale (``cbar_label`` names the colour bars' quantity, if given).

    Map names are passed through :func:`math_label`: plain ``"M_2 (eq. 1)"`` or ``"V_R2"`` are shown as mathtext
    ($M_2$, $V_{R_2}$); names with ``$`` are taken as mathtext already."""
    img = _as_image(image)
    h, w = img.shape[:2]
    n = 1 + len(maps)
    ncol = max(1, min(max_cols, n))
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(6.0, 3.6 * ncol), 3.3 * nrow + 0.8), layout="constrained",
                             squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    flat[0].imshow(img, cmap="gray" if img.ndim == 2 else None)
    _draw_contours(flat[0], mask)
    flat[0].set_title("image" + (" + ground truth" if mask is not None and np.any(mask) else ""), fontsize=10)
    _off(flat[0])
    for ax, (name, m) in zip(flat[1:n], maps.items(), strict=True):
        arr = to_numpy(m)
        arr = arr[0] if arr.ndim == 3 else arr
        im = ax.imshow(arr, cmap="jet", extent=(0, w, h, 0), vmin=vmin, vmax=vmax, interpolation="nearest")
        _draw_contours(ax, mask, color="white")
        ax.set_title(f"{math_label(str(name))}\n{arr.shape[0]}×{arr.shape[1]} map", fontsize=10)
        _off(ax)
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        cb.ax.tick_params(labelsize=8)
        if cbar_label:
            cb.set_label(math_label(cbar_label), fontsize=8)
    return _header(fig, title, banner)


def plot_heatmaps(images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None],
                  columns: Mapping[str, Sequence[np.ndarray]], row_titles: Sequence[str] | None = None,
                  banner: str | None = None, title: str | None = None, alpha: float = 0.5,
                  cbar_labels: Mapping[str, str] | None = None, caption: str | None = None) -> Figure:
    """The 2024 course report's Fig. 7 layout: one row per image — the image, the ground-truth contour, then each
    map column (e.g. zero-shot and few-shot) overlaid on the image with the contour.

    Each map column shares one colour scale over its rows (its own min and max), so rows are comparable; its colour
    bar sits under the column, labelled with ``cbar_labels[column]`` (default "anomaly score").

    Args:
        images: (H, W, 3) uint8 images. masks: (H, W) bool masks or None (normal images).
        columns: {column title: one (H, W) map per image} (titles pass through :func:`math_label`).
        row_titles: a caption per row (e.g. "disc / scratch\\nscore 0.71"), written left of the row.
        caption: a note under the figure saying what the columns and numbers are.
    """
    n = len(images)
    if n == 0:
        raise ValueError("plot_heatmaps needs at least one image")
    names = list(columns)
    ncol = 2 + len(names)
    extra = 0.9 + (0.5 if caption else 0.0)
    fig = plt.figure(figsize=(max(6.0, 2.6 * ncol + 0.5), 2.55 * n + extra + 0.3), layout="constrained")
    gs = fig.add_gridspec(n + 1, ncol, height_ratios=[1.0] * n + [0.06])
    axes = np.array([[fig.add_subplot(gs[i, j]) for j in range(ncol)] for i in range(n)])
    ranges = {}
    for name, maps in columns.items():
        stack = np.stack([to_numpy(m) for m in maps])
        ranges[name] = (float(np.nanmin(stack)), float(np.nanmax(stack)))
    last: dict[str, Any] = {}
    for i in range(n):
        img = _as_image(images[i])
        h, w = img.shape[:2]
        mask = None if masks[i] is None else np.asarray(masks[i])
        axes[i, 0].imshow(img)
        axes[i, 1].imshow(img)
        _draw_contours(axes[i, 1], mask, color="lime", lw=1.5)
        for j, name in enumerate(names):
            ax = axes[i, 2 + j]
            lo, hi = ranges[name]
            ax.imshow(img)
            last[name] = ax.imshow(to_numpy(columns[name][i]), cmap="jet", alpha=alpha, extent=(0, w, h, 0),
                                   vmin=lo, vmax=hi)
            _draw_contours(ax, mask, color="white", lw=1.0)
        for j, ax in enumerate(axes[i]):
            _off(ax)
            if i == 0:
                ax.set_title(math_label(["image", "ground truth", *names][j]), fontsize=10)
        if row_titles is not None:
            axes[i, 0].set_ylabel(math_label(row_titles[i]), fontsize=8)
    for j, name in enumerate(names):
        cb = fig.colorbar(last[name], cax=fig.add_subplot(gs[n, 2 + j]), orientation="horizontal")
        cb.set_label(math_label((cbar_labels or {}).get(name, "anomaly score")), fontsize=8)
        cb.ax.tick_params(labelsize=7)
        cb.ax.xaxis.set_major_locator(MaxNLocator(4))
    if caption:
        _caption(fig, caption)
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
                   size: int = 240, banner: str | None = None, title: str | None = None,
                   geometry: Any | None = None) -> Figure:
    """:func:`plot_heatmaps` for dataset samples and their predictions; each row says its category / defect type,
    the zero-shot image score $s_0$ and (few-shot) the WinCLIP+ image score, and a caption explains them.

    Args:
        samples: :class:`~winclip_lib.datasets.catalog.Sample` objects (images and masks are read and put through
            ``geometry`` — the model's :class:`~winclip_lib.core.geometry.Geometry`, so that they line up with the
            maps; by default a plain resize to ``size``).
        zero_shot: the zero-shot :class:`~winclip_lib.core.model.Prediction` of the samples (k = 0).
        few_shot: the few-shot prediction (k > 0), or None.
    """
    from winclip_lib.core.geometry import Geometry
    from winclip_lib.core.imageio import load_image
    from winclip_lib.datasets.masks import load_mask

    geometry = geometry or Geometry(size, "resize")
    images = [geometry.image(load_image(s.image_path)) for s in samples]
    masks = [geometry.mask(load_mask(s)) if s.mask_path is not None else None for s in samples]
    zs_name = "zero-shot (WinCLIP)"
    columns: dict[str, list[np.ndarray]] = {zs_name: list(to_numpy(zero_shot.map))}
    labels = {zs_name: "zero-shot anomaly score"}
    titles = [f"{s.category} / {s.defect}\nzero-shot score $s_0$ {float(zero_shot.score[i]):.3f}"
              for i, s in enumerate(samples)]
    caption = ("Columns: the test image, its ground truth (green contour; none for a good image), then the anomaly "
               "maps over the image (white contour: ground truth); each map column has one colour scale, its bar "
               "below. Left of each row: category / defect type and the zero-shot image score $s_0$")
    if few_shot is not None:
        name = f"few-shot (WinCLIP+, k={few_shot_k})" if few_shot_k else "few-shot (WinCLIP+)"
        columns[name] = list(to_numpy(few_shot.map))
        labels[name] = "WinCLIP+ anomaly score"
        titles = [f"{t}\nWinCLIP+ score {float(few_shot.score[i]):.3f}" for i, t in enumerate(titles)]
        caption += " and the WinCLIP+ image score, ($s_0$ + max of the visual map) / 2"
    return plot_heatmaps(images, masks, columns, titles, banner=banner, title=title, cbar_labels=labels,
                         caption=caption + ".")


def plot_reference_images(images: Sequence[Any], titles: Sequence[str] | None = None, banner: str | None = None,
                          title: str | None = None, max_cols: int = 5) -> Figure:
    """The few-shot reference images (the normal images of the memory bank), in a row — or in rows of at most
    ``max_cols`` when there are many — each titled (e.g. with its file name; long titles are wrapped).

    Args:
        images: (H, W, 3) or (H, W) images (uint8 or float; (3, H, W) tensors are accepted).
        titles: one title per image (default "reference 1", "reference 2", ...).
    """
    n = len(images)
    if n == 0:
        raise ValueError("plot_reference_images needs at least one image")
    titles = list(titles) if titles is not None else [f"reference {i + 1}" for i in range(n)]
    if len(titles) != n:
        raise ValueError(f"{n} images but {len(titles)} titles")
    ncol = max(1, min(max_cols, n))
    nrow = math.ceil(n / ncol)
    panel = 2.5
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(6.0, panel * ncol + 0.3), (panel + 0.35) * nrow + 0.8),
                             layout="constrained", squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.remove()
            continue
        img = _as_image(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        _off(ax)
        ax.set_title(_wrap(str(titles[i]), panel * 0.95, 8), fontsize=8)
    default = f"The {n} reference images" if n > 1 else "The reference image"
    default += " (few-shot memory, normal images)"
    return _header(fig, title or default, banner)


# ------------------------------------------------------------------------------------------ ours vs paper


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


def _mark_missing(ax: plt.Axes, data: pd.DataFrame, key: str, order: Sequence[str], sources: Sequence[str],
                  vertical: bool, source: str = "paper") -> None:
    """:data:`NOT_AVAILABLE` at the place of each ``source`` bar that has no value."""
    have = set(data.loc[data["source"] == source, key])
    offset = _dodge(sources)[source]
    for i, cat in enumerate(order):
        if cat in have:
            continue
        if vertical:
            ax.text(i + offset, 1.5, NOT_AVAILABLE, ha="center", va="bottom", fontsize=8, color="0.25")
        else:
            ax.text(1.0, i + offset, NOT_AVAILABLE, ha="left", va="center", fontsize=8, color="0.25")


def _sources(long: pd.DataFrame) -> list[str]:
    """Hue levels of the bar charts: ours and the paper always (a missing paper value is marked n/a), the course
    report where it has numbers."""
    present = set(long["source"])
    return [s for s in _SOURCES if s in ("ours", "paper") or s in present]


def plot_ours_vs_paper(comp: pd.DataFrame, dataset: str, banner: str | None = None, title: str | None = None
                       ) -> Figure:
    """Bars of ours (± std over seeds), the paper (± its std) and the 2024 course report per metric, one panel per
    k; "n/a" marks the place of a paper bar where the paper has no number.

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
    for ax, k in zip(axes[:, 0], ks, strict=True):
        data = long[long["k"] == k]
        sns.barplot(data=data, x="metric", y="value", hue="source", order=metrics, hue_order=sources, ax=ax,
                    palette=palette, errorbar=None, legend=ax is axes[0, 0])
        _error_bars(ax, data, "metric", metrics, sources, vertical=True)
        _mark_missing(ax, data, "metric", metrics, sources, vertical=True)
        ax.set_title(setting_label(k), fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
    axes[0, 0].legend(fontsize=8, title="Source", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].tick_params(axis="x", rotation=30)
    for label in axes[-1, 0].get_xticklabels():
        label.set_ha("right")
        label.set_rotation_mode("anchor")
    _caption(fig, f"{NOT_AVAILABLE}: the paper reports no number for this metric and setting; "
                  "error bars: std over seeds (ours) and as published (paper).")
    default = f"{DATASET_LABELS.get(dataset, dataset)}: ours vs the paper (mean over categories)"
    return _header(fig, title or default, banner)


def plot_shots_curve(comp: pd.DataFrame, metrics: Sequence[str] = ("image_auroc", "pixel_auroc"),
                     banner: str | None = None, title: str | None = None, datasets: Sequence[str] | None = None,
                     ks: Sequence[int] | None = None, show_paper: bool = True) -> Figure:
    """Ours (mean ± std over seeds) against k, one panel per metric and a line per dataset, with the paper's
    numbers as dashed lines of the same colour.

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
    few_only = bool(len(sel)) and int(sel["k"].min()) > 0
    default = ("Few-shot: ours vs the paper as k grows" if few_only else "Ours vs the paper as k grows") + \
        " (mean ± std over seeds)"
    return _header(fig, title or default, banner)


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
        offset += leg.get_window_extent(_renderer(fig)).height / fig.dpi + gap_in
    return legends


def plot_ours_vs_paper_scatter(comp: pd.DataFrame, banner: str | None = None, title: str | None = None) -> Figure:
    """Ours against the paper, one point per (dataset, k, metric) with a published number, the diagonal marking
    equality (points above it: ours ≥ paper); error bars are ours' std over seeds. Colour: the metric, size: the
    setting, marker: the dataset (legends "Metric", "Setting", "Dataset")."""
    sub = comp.dropna(subset=["paper"]).copy()
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
    return _header(fig, title or "Ours vs the paper: every metric and setting", banner)


def plot_per_category(pc: pd.DataFrame, k: int, dataset: str, metric: str, banner: str | None = None) -> Figure:
    """Horizontal bars per category of one k: ours (± std over seeds) beside the paper and the 2024 course report;
    "n/a" marks the place of a paper bar where the paper has no number for the category.

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
    _mark_missing(ax, data, "category", cats, sources, vertical=False)
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
    ax.set_ylabel("")
    ax.legend(fontsize=8, title="Source", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _caption(fig, f"{NOT_AVAILABLE}: the paper reports no number for this category.")
    title = f"{DATASET_LABELS.get(dataset, dataset)}, {k}-shot: {METRIC_LABELS.get(metric, metric)} per category"
    return _header(fig, title, banner)


def plot_ablation(rows: pd.DataFrame, metric: str, banner: str | None = None, title: str | None = None) -> Figure:
    """One ablation as horizontal bars: ours for each variant (and k), beside the paper's number where it reports one
    ("n/a" where it does not).

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
    _mark_missing(ax, data, "row", order, sources, vertical=False)
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
    ax.set_ylabel("")
    ax.set_yticks(range(len(order)), [_wrap(o, 3.2, 8) for o in order], fontsize=8)
    ax.legend(fontsize=8, title="Source", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _caption(fig, f"{NOT_AVAILABLE}: the paper reports no number for this row. The paper's numbers come from a "
                  "secondary copy of its tables.")
    return _header(fig, title or f"Ablation: {METRIC_LABELS.get(metric, metric)}", banner)


# ------------------------------------------------------------------------------------------------ compute


def _duration(value: float, unit: str) -> str:
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"


def plot_compute(stages: Mapping[str, float | None], banner: str | None = None, title: str | None = None,
                 unit: str = "auto") -> Figure:
    """Time per image of each stage as horizontal bars (top to bottom in the order of ``stages``), the value
    written on each bar; a stage whose time is None (or NaN) is drawn as "not measured".

    Args:
        stages: {stage name: seconds per image or None}, built by the caller from the benchmark's JSON (e.g.
            ``{"encode": r["encode_s_per_image"], "zero-shot": r["zero_shot_s_per_image"], ...}``).
        unit: "ms", "s", or "auto" (seconds when the longest stage takes at least one second, else ms).
    """
    if not stages:
        raise ValueError("plot_compute needs at least one stage")
    names = [str(n) for n in stages]
    values = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in stages.values()]
    measured = [v for v in values if v is not None]
    if unit == "auto":
        unit = "s" if measured and max(measured) >= 1.0 else "ms"
    if unit not in ("ms", "s"):
        raise ValueError(f"unit must be 'ms', 's' or 'auto', got {unit!r}")
    scale = 1000.0 if unit == "ms" else 1.0
    xs = [v * scale if v is not None else 0.0 for v in values]
    top = max(xs) if measured and max(xs) > 0 else 1.0
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 2.0), layout="constrained")
    y = np.arange(len(names))
    color = sns.color_palette("deep")[0]
    ax.barh(y, xs, color=color, height=0.6)
    for yi, v, x in zip(y, values, xs, strict=True):
        if v is None:
            ax.text(0.01 * top, yi, "not measured", ha="left", va="center", fontsize=8, style="italic", color="0.4")
        elif x >= 0.55 * top:
            ax.text(x - 0.01 * top, yi, _duration(x, unit), ha="right", va="center", fontsize=8, color="white",
                    fontweight="bold")
        else:
            ax.text(x + 0.01 * top, yi, _duration(x, unit), ha="left", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel(f"time per image ({unit})")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return _header(fig, title or "Compute: time per image of each stage", banner)
