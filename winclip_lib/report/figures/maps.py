"""Anomaly maps: per-scale maps beside an image, the heatmap rows of test images with their ground truth, the
few-shot reference images."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from winclip_lib.report.figures.style import (
    NOT_AVAILABLE,
    add_caption,
    add_header,
    as_image,
    draw_contours,
    hide_ticks,
    math_label,
    to_numpy,
    wrap_text,
)

__all__ = ["choose_examples", "heatmap_figure", "plot_heatmaps", "plot_reference_images", "plot_scale_maps"]


def plot_scale_maps(image: np.ndarray, maps: Mapping[str, Any], mask: np.ndarray | None = None,
                    banner: str | None = None, title: str | None = None, vmin: float | None = None,
                    vmax: float | None = None, max_cols: int = 4, cbar_label: str | None = None) -> Figure:
    """An image (with its ground-truth contour) beside named maps, each on its own grid (e.g. the per-scale maps
    M_2, M_3 and the zero-shot map), in rows of at most ``max_cols`` panels. Maps are (G, G) or (H, W) arrays or
    tensors (a leading batch dim of 1 is dropped) drawn over the image extent; with ``vmin``/``vmax`` unset each map
    has its own colour scale (``cbar_label`` names the colour bars' quantity, if given).

    Map names are passed through :func:`math_label`: plain ``"M_2 (eq. 1)"`` or ``"V_R2"`` are shown as mathtext
    ($M_2$, $V_{R_2}$); names with ``$`` are taken as mathtext already."""
    img = as_image(image)
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
    draw_contours(flat[0], mask)
    flat[0].set_title("image" + (" + ground truth" if mask is not None and np.any(mask) else ""), fontsize=10)
    hide_ticks(flat[0])
    for ax, (name, m) in zip(flat[1:n], maps.items(), strict=True):
        arr = to_numpy(m)
        arr = arr[0] if arr.ndim == 3 else arr
        im = ax.imshow(arr, cmap="jet", extent=(0, w, h, 0), vmin=vmin, vmax=vmax, interpolation="nearest")
        draw_contours(ax, mask, color="white")
        ax.set_title(f"{math_label(str(name))}\n{arr.shape[0]}×{arr.shape[1]} map", fontsize=10)
        hide_ticks(ax)
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        cb.ax.tick_params(labelsize=8)
        if cbar_label:
            cb.set_label(math_label(cbar_label), fontsize=8)
    return add_header(fig, title, banner)


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
        img = as_image(images[i])
        h, w = img.shape[:2]
        mask = None if masks[i] is None else np.asarray(masks[i])
        axes[i, 0].imshow(img)
        axes[i, 1].imshow(img)
        draw_contours(axes[i, 1], mask, color="lime", lw=1.5)
        for j, name in enumerate(names):
            ax = axes[i, 2 + j]
            lo, hi = ranges[name]
            ax.imshow(img)
            last[name] = ax.imshow(to_numpy(columns[name][i]), cmap="jet", alpha=alpha, extent=(0, w, h, 0),
                                   vmin=lo, vmax=hi)
            draw_contours(ax, mask, color="white", lw=1.0)
        for j, ax in enumerate(axes[i]):
            hide_ticks(ax)
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
        add_caption(fig, caption)
    return add_header(fig, title, banner)


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
        few_shot: the few-shot prediction (k > 0), or None (the caption then says why there is no WinCLIP+ column).
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
    else:
        caption += (f". No WinCLIP+ column ({NOT_AVAILABLE} — zero-shot only): the run has no few-shot setting "
                    "(k > 0)")
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
        img = as_image(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        hide_ticks(ax)
        ax.set_title(wrap_text(str(titles[i]), panel * 0.95, 8), fontsize=8)
    default = f"The {n} reference images" if n > 1 else "The reference image"
    default += " (few-shot memory, normal images)"
    return add_header(fig, title or default, banner)
