"""The figures of ``winclip predict``: one overlay PNG per scored image (the photo at its own aspect ratio, the map as
a translucent heatmap in the run's one colour scale, a colour bar in score units, the score in the title), and the
figures notebook 07 shows (an overlay grid, the score histogram, what WinCLIP computed for one image)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator
from PIL import Image

from winclip_lib.core.cpus import usable_cpus
from winclip_lib.core.imageio import load_image
from winclip_lib.experiments.files import writing
from winclip_lib.experiments.progress import bar
from winclip_lib.inspection.scoring import PredictionRun, explain_image
from winclip_lib.report.figures.style import BANNER_COLOR, NOT_AVAILABLE, add_caption, save_figure, stamp_banner

__all__ = [
    "LAYOUTS_KEPT",
    "NO_THRESHOLD",
    "OVERLAY_COMPRESS_LEVEL",
    "OVERLAY_DPI",
    "OVERLAY_LONG_SIDE",
    "OVERLAY_MARGIN",
    "OVERLAY_MIN_WIDTH",
    "PHOTOS_AHEAD",
    "PHOTO_BOX_KEY",
    "overlay_figure",
    "overlay_layout",
    "plot_overlay_grid",
    "plot_score_histogram",
    "plot_what_winclip_saw",
    "write_overlays",
]

#: Pixels of the longer side of the photo in an overlay PNG.
OVERLAY_LONG_SIDE = 480
#: Fixed margins of an overlay PNG around the photo, in pixels: (left, top, right, bottom). The top holds the DEMO
#: line and the title, the right the colour bar. The PNG is (left + w' + right) x (top + h' + bottom) pixels where
#: w' x h' is the photo scaled to :data:`OVERLAY_LONG_SIDE` (its aspect ratio kept); a narrow photo is centred in
#: :data:`OVERLAY_MIN_WIDTH`, a flat one gets more bottom margin. The box is in the PNG's :data:`PHOTO_BOX_KEY`.
OVERLAY_MARGIN = (8, 64, 104, 8)
#: Overlays narrower than this many pixels get the photo centred in a wider figure (room for the DEMO line).
OVERLAY_MIN_WIDTH = 600
OVERLAY_DPI = 100
#: zlib level of the overlay PNGs: the fastest, lossless like every level (an overlay of a 1024 x 1024 photo in 23 ms
#: and 409 KB against 127 ms and 346 KB at PIL's default 6 on the 2-core EPYC; benchmarks/bench_predict.py times the
#: whole command).
OVERLAY_COMPRESS_LEVEL = 1
#: Photos decoded and resized ahead of the overlay being drawn.
PHOTOS_AHEAD = 4
#: Overlay figures kept for reuse, one per layout (a folder's photos mostly share one size).
LAYOUTS_KEPT = 4
#: PNG text entry of an overlay holding its photo's box in pixels: "left,top,width,height".
PHOTO_BOX_KEY = "Photo box"
#: What the score histogram says when the run has no threshold (no line drawn), followed by why.
NO_THRESHOLD = f"threshold: {NOT_AVAILABLE}"
_MIN_BOX_HEIGHT = 120
HEAT_ALPHA = 0.45
HEAT_CMAP = "jet"


def overlay_layout(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """((figure width, figure height), (left, top, box width, box height)) in pixels of the overlay of an
    ``height`` x ``width`` photo (see :data:`OVERLAY_MARGIN`)."""
    scale = OVERLAY_LONG_SIDE / max(height, width)
    bw, bh = max(1, round(width * scale)), max(1, round(height * scale))
    left, top, right, bottom = OVERLAY_MARGIN
    extra = max(0, OVERLAY_MIN_WIDTH - (left + bw + right))
    left, right = left + extra // 2, right + extra - extra // 2
    bottom += max(0, _MIN_BOX_HEIGHT - bh)
    return (left + bw + right, top + bh + bottom), (left, top, bw, bh)


def _photo(run: PredictionRun, i: int, box: tuple[int, int]) -> np.ndarray:
    """Image i's photo resized to ``box`` (w, h)."""
    return np.asarray(Image.fromarray(load_image(run.images[i])).resize(box, Image.Resampling.LANCZOS))


def _photo_and_heat(run: PredictionRun, i: int, box: tuple[int, int], photo: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The photo resized to ``box`` (w, h) (``photo``: already made by :func:`_photo`) and its map carried onto those
    pixels by the model's geometry (NaN where the model does not see the photo)."""
    bw, bh = box
    photo = _photo(run, i, box) if photo is None else photo
    heat = run.model.maps_on_photo(torch.from_numpy(run.maps[i : i + 1]), bh, bw)[0].numpy()
    return photo, heat


def _draw_overlay(ax: plt.Axes, photo: np.ndarray, heat: np.ndarray, vmin: float, vmax: float
                  ) -> tuple[AxesImage, AxesImage]:
    """The photo and, over it, its heatmap on ``ax``; returns (photo's artist, heatmap's artist)."""
    shown = ax.imshow(photo, interpolation="nearest")
    im = ax.imshow(heat, cmap=HEAT_CMAP, alpha=HEAT_ALPHA, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return shown, im


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]


def overlay_figure(run: PredictionRun, image: str | Path | int, banner: str | None = None) -> Figure:
    """The overlay of one scored image: the photo at its own aspect ratio (:func:`overlay_layout`) with its anomaly
    map as a translucent heatmap in the run's colour scale (:meth:`PredictionRun.color_range`), a colour bar in
    score units, and its rank, name, score and decision in the title; ``banner`` stamped on top."""
    i = run.index(image)
    return _overlay(run, i, run.table().set_index("name").loc[run.names[i]], run.color_range(), banner).fig


@dataclass
class _Overlay:
    """An overlay's figure and the artists that change from one image to the next of the same layout."""

    fig: Figure
    photo: AxesImage
    heat: AxesImage
    title: Text

    def show(self, run: PredictionRun, i: int, row: pd.Series, photo: np.ndarray | None = None) -> None:
        """Image i in this figure (whose layout must be image i's): its photo, heatmap and title."""
        _, (_, _, bw, bh) = overlay_layout(*run.sizes[i])
        photo, heat = _photo_and_heat(run, i, (bw, bh), photo)
        self.photo.set_data(photo)
        self.heat.set_data(heat)
        self.title.set_text(_title(run, i, row))


def _title(run: PredictionRun, i: int, row: pd.Series) -> str:
    decision = "" if row["decision"] == "n/a" else f" · {row['decision']}"
    return f"#{row['rank']}  {_short(Path(run.images[i]).name, 28)}  score {row['score']:.3f}{decision}"


def _overlay(run: PredictionRun, i: int, row: pd.Series, color_range: tuple[float, float], banner: str | None,
             photo: np.ndarray | None = None) -> _Overlay:
    """:func:`overlay_figure` of image i, given its row of :meth:`PredictionRun.table`, the run's colour range and
    (optionally) its photo already resized (:func:`_photo`)."""
    h, w = run.sizes[i]
    (fw, fh), (left, top, bw, bh) = overlay_layout(h, w)
    photo, heat = _photo_and_heat(run, i, (bw, bh), photo)
    vmin, vmax = color_range
    fig = plt.figure(figsize=(fw / OVERLAY_DPI, fh / OVERLAY_DPI), dpi=OVERLAY_DPI)
    ax = fig.add_axes((left / fw, 1 - (top + bh) / fh, bw / fw, bh / fh))
    shown, im = _draw_overlay(ax, photo, heat, vmin, vmax)
    ax.set_axis_off()
    cax = fig.add_axes(((left + bw + 14) / fw, 1 - (top + max(bh, _MIN_BOX_HEIGHT)) / fh, 14 / fw,
                        max(bh, _MIN_BOX_HEIGHT) / fh))
    fig.colorbar(im, cax=cax).set_label("anomaly score", fontsize=8)
    cax.tick_params(labelsize=7)
    title = fig.text(0.5, 1 - 48 / fh, _title(run, i, row), ha="center", va="center", fontsize=9)
    return _Overlay(stamp_banner(fig, banner), shown, im, title)


def write_overlays(run: PredictionRun, out_dir: str | Path, progress: bool | None = None) -> dict[str, Path]:
    """One overlay PNG per scored image, ``<out_dir>/overlays/<name>.png``; returns {name: path}.

    What every overlay shares (the run's table and colour range) is computed once; a figure is built once per layout
    (:data:`LAYOUTS_KEPT` at a time) and only its photo, heatmap and title change from one image of that layout to the
    next — building one (axes, colour bar, banner) took 40 ms an image, more than a third of the drawing; the photos are
    decoded and resized :data:`PHOTOS_AHEAD` ahead on threads (PIL works without the GIL) while matplotlib draws on
    this one; the PNGs are compressed at zlib's fastest level (:data:`OVERLAY_COMPRESS_LEVEL`). Each PNG has the pixels
    of :func:`overlay_figure` saved on its own."""
    folder = Path(out_dir) / "overlays"
    table = run.table().set_index("name")
    color_range = run.color_range()
    layouts = [overlay_layout(h, w) for h, w in run.sizes]
    written = {}
    figures: dict[tuple, _Overlay] = {}  # by layout, the oldest first
    try:
        with ThreadPoolExecutor(max(1, min(PHOTOS_AHEAD, usable_cpus())), thread_name_prefix="winclip-photo") as pool:
            photos: dict[int, Future[np.ndarray]] = {}
            for i, name in enumerate(bar(run.names, enabled=progress, desc="overlays", unit="img", leave=False)):
                for j in range(i, min(i + PHOTOS_AHEAD + 1, len(run.names))):
                    if j not in photos:
                        photos[j] = pool.submit(_photo, run, j, layouts[j][1][2:])
                photo = photos.pop(i).result()
                drawn = figures.get(layouts[i])
                if drawn is None:
                    if len(figures) >= LAYOUTS_KEPT:
                        plt.close(figures.pop(next(iter(figures))).fig)
                    drawn = figures[layouts[i]] = _overlay(run, i, table.loc[name], color_range, run.label, photo)
                else:
                    drawn.show(run, i, table.loc[name], photo)
                with writing(folder / f"{name}.png"):
                    written[name] = save_figure(drawn.fig, folder / f"{name}.png", dpi=OVERLAY_DPI,
                                                metadata={PHOTO_BOX_KEY: ",".join(map(str, layouts[i][1]))},
                                                compress_level=OVERLAY_COMPRESS_LEVEL)
    finally:
        for drawn in figures.values():
            plt.close(drawn.fig)
    return written


def plot_overlay_grid(run: PredictionRun, images: Sequence[str | Path | int], ncols: int = 5,
                      title: str | None = None) -> Figure:
    """Overlays of several images (names, paths or ranks) in a grid, each at its own aspect ratio, in the run's
    one colour scale with a shared colour bar; the run's DEMO label stamped."""
    n = len(images)
    if n == 0:
        raise ValueError("plot_overlay_grid needs at least one image")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols + 0.8, 2.7 * nrows + 0.4), layout="constrained",
                             squeeze=False)
    vmin, vmax = run.color_range()
    table = run.table().set_index("name")
    im = None
    for ax, image in zip(axes.flat, images, strict=False):
        i = run.index(image)
        h, w = run.sizes[i]
        _, (_, _, bw, bh) = overlay_layout(h, w)
        photo, heat = _photo_and_heat(run, i, (bw, bh))
        _, im = _draw_overlay(ax, photo, heat, vmin, vmax)
        row = table.loc[run.names[i]]
        decision = "" if row["decision"] == "n/a" else f"\n{row['decision']}"
        ax.set_title(f"#{row['rank']} {_short(Path(run.images[i]).name, 20)}\nscore {row['score']:.3f}{decision}",
                     fontsize=8)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, shrink=0.8, label="anomaly score")
    if title:
        fig.suptitle(title)
    return stamp_banner(fig, run.label)


def plot_score_histogram(run: PredictionRun, title: str | None = None) -> Figure:
    """Histogram of the image scores with the threshold (and how it was chosen) and the references'
    leave-one-out scores as ticks; the run's DEMO label stamped. Without a threshold the caption says
    :data:`NO_THRESHOLD` and why."""
    fig, ax = plt.subplots(figsize=(7.0, 3.6), layout="constrained")
    scores = np.asarray(run.score, dtype=np.float64)
    if scores.size:
        ax.hist(scores, bins=max(5, min(40, scores.size)), color="#4c72b0", alpha=0.85, label="images")
    loo = np.asarray(run.threshold.loo_scores)
    if loo.size:
        ax.plot(loo, np.zeros_like(loo), "|", color="green", markersize=22, mew=2,
                label="normal references (leave-one-out)")
    if run.threshold.value is not None:
        ax.axvline(run.threshold.value, color=BANNER_COLOR, lw=2,
                   label=f"threshold {run.threshold.value:.3f} ({run.threshold.source})")
    ax.set_xlabel("image score")
    ax.set_ylabel("images")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="upper left")
    if run.threshold.value is None:
        add_caption(fig, f"{NO_THRESHOLD} — {run.threshold.explanation}.")
    fig.suptitle(title or f"Scores of {scores.size} images — {run.mode}")
    return stamp_banner(fig, run.label)


def plot_what_winclip_saw(run: PredictionRun, image: str | Path | int) -> Figure:
    """What WinCLIP computed for one image, on the model's input: the zero-shot per-scale maps M_k (eq. 1) and the
    zero-shot map and, few-shot, the visual per-scale maps, the patch map, the visual map and the final map; each
    map with its own colour bar (the values differ in range)."""
    i = run.index(image)
    pred = explain_image(run, i)
    model_input = run.model.geometry.image(load_image(run.images[i]))
    s = model_input.shape[0]
    first = {"model input": None, **{f"zero-shot M{k} ({k}x{k} windows)": m for k, m in pred.scale_maps.items()},
             f"zero-shot map (s0 = {float(pred.image_score[0]):.3f})": pred.zero_shot_map}
    rows = [first]
    if pred.visual_map is not None:
        rows.append({**{f"visual V{k} ({k}x{k} windows)": m for k, m in pred.visual_scale_maps.items()},
                     "visual patch map": pred.visual_patch_map, "visual map": pred.visual_map,
                     f"final map (score {float(pred.score[0]):.3f})": pred.map})
    else:
        first[f"final map (score {float(pred.score[0]):.3f})"] = pred.map
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.9 * ncols, 2.8 * len(rows) + 0.5), layout="constrained",
                             squeeze=False)
    for r, maps in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(maps):
                ax.set_axis_off()
                continue
            name, m = list(maps.items())[c]
            ax.set_title(name, fontsize=8)
            if m is None:
                ax.imshow(model_input)
                continue
            arr = m[0].detach().float().cpu().numpy()
            im = ax.imshow(arr, cmap=HEAT_CMAP, extent=(0, s, s, 0), interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.75).ax.tick_params(labelsize=6)
    fig.suptitle(f"What WinCLIP saw: {Path(run.images[i]).name} — {run.mode}")
    return stamp_banner(fig, run.label)
