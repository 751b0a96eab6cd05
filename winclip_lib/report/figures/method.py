"""Illustrations of the method: the sliding windows on the patch grid, one window's masked forward pass, and the
similarity of the prompt ensemble's embeddings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from winclip_lib.core.encoder import window_indices, window_masks
from winclip_lib.report.figures.style import add_caption, add_header, as_image, hide_ticks, to_numpy

__all__ = ["plot_prompt_similarity", "plot_window_grid", "plot_window_pass"]


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
    hide_ticks(ax)
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
    return add_header(fig, f"Sliding windows on the {grid}×{grid} patch grid (stride 1)", banner)


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
    img = as_image(image).astype(np.float64)
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
    add_caption(fig, f"Only these {n_tok} tokens go through the transformer: the class token and the window's "
                  f"{len(patches)} patch tokens, each with the position embedding of its place $p$ in the "
                  f"{grid}×{grid} grid (row-major from 0; (row, col) beneath). The class token's output is the "
                  "window's embedding; all windows of a scale run as one batch.")
    return add_header(fig, title or f"One window's forward pass ({grid}×{grid} patch grid)", banner)


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
    return add_header(fig, title or "Compositional prompt ensemble: similarity of the prompt embeddings", banner)
