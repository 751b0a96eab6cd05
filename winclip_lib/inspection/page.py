"""The inspection page of ``winclip predict``: overlays of the anomaly maps on your photos, and one HTML page.

:func:`inspect_images` is the whole command — what ``winclip predict`` and notebook 07 call: it collects and
checks the inputs, scores them (:mod:`winclip_lib.experiments.predict`), writes the tables, one overlay PNG per image
(:func:`overlay_figure`: the photo at its own aspect ratio, the map as a translucent heatmap in the run's one colour
scale, a colour bar in score units, the score in the title) and ``report.html`` (:func:`inspection_html`): every
image sorted by score with its overlay, score and decision; the threshold and how it was chosen; the skipped files
and why; the settings; the DEMO label when the weights are random.

Output folder::

    scores.csv  errors.csv  maps.npz  run.json       (winclip_lib.experiments.predict.write_outputs)
    overlays/<name>.png                              one per scored image
    score_histogram.png
    report.html                                      the page (overlays embedded, or linked relative to it)
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

import winclip_lib
from winclip_lib.core.imageio import load_image
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.files import atomic_write_text
from winclip_lib.experiments.predict import (
    DEFAULT_OUT,
    MIN_IMAGE_SIDE,
    PREDICT_SETTINGS,
    THRESHOLD_RULE,
    PredictionRun,
    choose_threshold,
    collect_inputs,
    explain_image,
    predict_images,
    prepare_out_dir,
    write_outputs,
)
from winclip_lib.experiments.progress import bar
from winclip_lib.report.figures import BANNER_COLOR, save_figure, stamp_banner

__all__ = [
    "EMBED_LIMIT_BYTES",
    "OVERLAY_DPI",
    "OVERLAY_LONG_SIDE",
    "OVERLAY_MARGIN",
    "OVERLAY_MIN_WIDTH",
    "PHOTO_BOX_KEY",
    "Inspection",
    "inspect_images",
    "inspection_html",
    "overlay_figure",
    "overlay_layout",
    "plot_overlay_grid",
    "plot_score_histogram",
    "plot_what_winclip_saw",
    "write_inspection_page",
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
#: PNG text entry of an overlay holding its photo's box in pixels: "left,top,width,height".
PHOTO_BOX_KEY = "Photo box"
_MIN_BOX_HEIGHT = 120
#: Overlays are embedded in report.html (base64) up to this total size; above it they are linked relative to it.
EMBED_LIMIT_BYTES = 20_000_000
HEAT_ALPHA = 0.45
HEAT_CMAP = "jet"


# ------------------------------------------------------------------------------------------------ overlays


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


def _photo_and_heat(run: PredictionRun, i: int, box: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The photo resized to ``box`` (w, h) and its map carried onto those pixels by the model's geometry (NaN where
    the model does not see the photo)."""
    bw, bh = box
    photo = np.asarray(Image.fromarray(load_image(run.images[i])).resize((bw, bh), Image.Resampling.LANCZOS))
    heat = run.model.maps_on_photo(torch.from_numpy(run.maps[i : i + 1]), bh, bw)[0].numpy()
    return photo, heat


def _draw_overlay(ax: plt.Axes, photo: np.ndarray, heat: np.ndarray, vmin: float, vmax: float):
    ax.imshow(photo, interpolation="nearest")
    im = ax.imshow(heat, cmap=HEAT_CMAP, alpha=HEAT_ALPHA, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]


def overlay_figure(run: PredictionRun, image: str | Path | int, banner: str | None = None) -> Figure:
    """The overlay of one scored image: the photo at its own aspect ratio (:func:`overlay_layout`) with its anomaly
    map as a translucent heatmap in the run's colour scale (:meth:`PredictionRun.color_range`), a colour bar in
    score units, and its rank, name, score and decision in the title; ``banner`` stamped on top."""
    i = run.index(image)
    h, w = run.sizes[i]
    (fw, fh), (left, top, bw, bh) = overlay_layout(h, w)
    photo, heat = _photo_and_heat(run, i, (bw, bh))
    vmin, vmax = run.color_range()
    fig = plt.figure(figsize=(fw / OVERLAY_DPI, fh / OVERLAY_DPI), dpi=OVERLAY_DPI)
    ax = fig.add_axes((left / fw, 1 - (top + bh) / fh, bw / fw, bh / fh))
    im = _draw_overlay(ax, photo, heat, vmin, vmax)
    ax.set_axis_off()
    cax = fig.add_axes(((left + bw + 14) / fw, 1 - (top + max(bh, _MIN_BOX_HEIGHT)) / fh, 14 / fw,
                        max(bh, _MIN_BOX_HEIGHT) / fh))
    fig.colorbar(im, cax=cax).set_label("anomaly score", fontsize=8)
    cax.tick_params(labelsize=7)
    table = run.table().set_index("name")
    row = table.loc[run.names[i]]
    decision = "" if row["decision"] == "n/a" else f" · {row['decision']}"
    title = f"#{row['rank']}  {_short(Path(run.images[i]).name, 28)}  score {row['score']:.3f}{decision}"
    fig.text(0.5, 1 - 48 / fh, title, ha="center", va="center", fontsize=9)
    return stamp_banner(fig, banner)


def write_overlays(run: PredictionRun, out_dir: str | Path, progress: bool | None = None) -> dict[str, Path]:
    """One overlay PNG per scored image, ``<out_dir>/overlays/<name>.png``; returns {name: path}."""
    folder = Path(out_dir) / "overlays"
    written = {}
    for name in bar(run.names, enabled=progress, desc="overlays", unit="img", leave=False):
        fig = overlay_figure(run, name, banner=run.label)
        h, w = run.sizes[run.names.index(name)]
        box = ",".join(map(str, overlay_layout(h, w)[1]))
        written[name] = save_figure(fig, folder / f"{name}.png", dpi=OVERLAY_DPI, metadata={PHOTO_BOX_KEY: box})
        plt.close(fig)
    return written


# ------------------------------------------------------------------------------------------------ figures


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
        im = _draw_overlay(ax, photo, heat, vmin, vmax)
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
    leave-one-out scores as ticks; the run's DEMO label stamped."""
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


# ------------------------------------------------------------------------------------------------ the page

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px; color: #222; }
h1 { margin: 0 0 8px 0; } h2 { margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.demo { border: 2px solid #c0001a; background: #fff0f0; color: #c0001a; font-weight: bold; padding: 8px 12px;
        margin-bottom: 14px; border-radius: 4px; }
.summary { font-size: 15px; } .muted { color: #666; font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 14px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px; background: #fafafa; }
.card img { width: 100%; height: auto; display: block; }
.card .path { font-family: monospace; font-size: 12px; word-break: break-all; color: #444; }
.tag { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: bold; }
.anomalous { background: #c0001a; color: white; } .normal { background: #2a7d2e; color: white; }
.na { background: #bbb; color: #222; }
.cut { grid-column: 1 / -1; border-top: 3px dashed #c0001a; color: #c0001a; padding-top: 4px; font-weight: bold; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ddd; padding: 3px 8px;
text-align: left; vertical-align: top; } th { background: #f0f0f0; }
"""


def _tag(decision: str) -> str:
    cls = {"anomalous": "anomalous", "normal": "normal"}.get(decision, "na")
    return f'<span class="tag {cls}">{html.escape(decision)}</span>'


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "" if np.isnan(x) else f"{x:g}"
    if isinstance(x, list | tuple):
        return " ".join(map(str, x)) or "none"
    return "none" if x is None else str(x)


def _rows(pairs: Sequence[tuple[str, Any]]) -> str:
    return "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in pairs)


def _common_folder(paths: Sequence[Path]) -> Path | None:
    """The deepest folder holding every path (None for no path)."""
    if not paths:
        return None
    return Path(os.path.commonpath([str(Path(p).parent) for p in paths]))


def _shown_path(path: str, folder: Path | None) -> str:
    return path if folder is None else Path(path).relative_to(folder).as_posix()


def inspection_html(run: PredictionRun, overlay_src: dict[str, str], histogram_src: str | None = None) -> str:
    """The page (a complete HTML document) for a run, with each overlay's ``src`` (a relative link or a data URL)
    given by image name."""
    e = html.escape
    table = run.table()
    t = run.threshold
    n_bad = int((table["decision"] == "anomalous").sum())
    head = f"WinCLIP inspection: {run.class_name}" + (f" — {run.label}" if run.label else "")
    parts = [f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{e(head)}</title>\n'
             f"<style>{_CSS}</style>\n</head>\n<body>"]
    if run.label:
        parts.append(f'<div class="demo" id="demo-label">{e(run.label)}. The scores and maps below come from '
                     "random weights and say nothing about these images.</div>")
    threshold_text = "none" if t.value is None else f"{t.value:.4f} ({t.source})"
    parts.append(f"<h1>WinCLIP inspection: “{e(run.class_name)}”</h1>")
    parts.append(f'<p class="summary"><b>{len(run.images)}</b> image(s) scored, <b>{len(run.skipped)}</b> file(s) '
                 f"skipped · {e(run.mode)} · threshold {e(threshold_text)}"
                 + (f" · <b>{n_bad}</b> above it (anomalous)" if t.value is not None else "") + "</p>")
    folder = _common_folder(run.images)
    if folder is not None:
        parts.append(f'<p class="muted">Images under <code>{e(str(folder))}</code>.</p>')
    if run.k:
        refs = ", ".join(e(Path(p).name) for p in run.references)
        parts.append(f'<p class="muted">WinCLIP+ uses all {run.k} usable normal reference(s): {refs}.</p>')
    else:
        parts.append('<p class="muted">Zero-shot: no normal reference was used; the scores come from the text '
                     "prompts alone.</p>")

    parts.append("<h2>Threshold</h2>")
    parts.append(f"<p>{e(t.explanation)}</p>")
    if t.source == "leave-one-out" or t.loo_scores:
        parts.append(f'<p class="muted">Rule: {e(THRESHOLD_RULE)}</p>')
    if t.loo_scores:
        parts.append('<p class="muted">Leave-one-out scores of the references: '
                     + ", ".join(f"{s:.4f}" for s in t.loo_scores) + "</p>")

    lo, hi = run.color_range()
    parts.append("<h2>Images, highest score first</h2>")
    parts.append(f'<p class="muted">Every overlay uses the same colour scale, {lo:.4f} to {hi:.4f} (anomaly '
                 "score); the score is the image's final score "
                 + ("(s0 + max of the visual map) / 2" if run.k else "s0, the zero-shot image score") + ".</p>")
    parts.append('<div class="grid" id="images">')
    cut_done = t.value is None
    for r in table.itertuples(index=False):
        (fig_w, fig_h), _ = overlay_layout(r.height, r.width)
        if not cut_done and r.score <= t.value:
            parts.append(f'<div class="cut">threshold {t.value:.4f}: above, anomalous; below, normal</div>')
            cut_done = True
        extra = "" if np.isnan(r.visual_max) else f" · visual max {r.visual_max:.4f}"
        parts.append(
            f'<div class="card" id="{e(r.name)}"><img src="{e(overlay_src[r.name])}" alt="overlay of {e(r.name)}" '
            f'width="{fig_w}" height="{fig_h}">'
            f"<div><b>#{r.rank}</b> score <b>{r.score:.4f}</b> {_tag(r.decision)}</div>"
            f'<div class="muted">s0 {r.s0:.4f}{extra} · {r.width} x {r.height} px</div>'
            f'<div class="path" title="{e(r.path)}">{e(_shown_path(r.path, folder))}</div></div>')
    if not cut_done:
        parts.append(f'<div class="cut">threshold {t.value:.4f}: every image is above it</div>')
    if not len(table):
        parts.append("<p>No image could be scored: see the skipped files below.</p>")
    parts.append("</div>")

    if histogram_src:
        parts.append(f'<h2>Score distribution</h2>\n<img src="{e(histogram_src)}" alt="histogram of the scores" '
                     'style="max-width: 720px; width: 100%">')

    parts.append(f'<h2 id="skipped">Skipped files ({len(run.skipped)})</h2>')
    if run.skipped:
        parts.append("<p class=\"muted\">These files were not scored; the others were. The reasons are also in "
                     f"errors.csv. Images must be {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} px or larger.</p>")
        parts.append("<table><tr><th>file</th><th>role</th><th>problem</th><th>reason</th></tr>" + "".join(
            f"<tr><td>{e(s.path)}</td><td>{e(s.role)}</td><td>{e(s.problem)}</td><td>{e(s.reason)}</td></tr>"
            for s in run.skipped) + "</table>")
    else:
        parts.append("<p>None: every file was scored.</p>")
    if run.excluded:
        parts.append('<p class="muted">Not scored because they are normal references: '
                     + ", ".join(e(str(p)) for p in run.excluded) + "</p>")

    settings = {name: getattr(run.config, name) for name in PREDICT_SETTINGS}
    counts = run.encode_counts
    n = len(run.images)
    parts.append("<h2>Settings</h2><table>" + _rows([
        ("class name", run.class_name), ("mode", run.mode),
        ("normal references", [str(p) for p in run.references]),
        ("backbone", run.backbone), ("precision used", run.precision),
        *settings.items(),
        ("images encoded / read from the cache", f"{counts.get('encoded', 0)} / {counts.get('hits', 0)}"),
        ("scoring time", f"{run.seconds:.1f} s" + (f" ({run.seconds / n:.3f} s per image)" if n else "")),
    ]) + "</table>")
    parts.append(f'<p class="muted">Written by winclip_lib {e(winclip_lib.__version__)} on '
                 f"{e(time.strftime('%Y-%m-%d %H:%M'))}.</p>\n</body>\n</html>\n")
    return "\n".join(parts)


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_inspection_page(run: PredictionRun, out_dir: str | Path, overlays: dict[str, Path],
                          histogram: Path | None = None, embed: bool | None = None) -> Path:
    """Write ``report.html`` into ``out_dir``: the overlays embedded as base64 (``embed=True``; the default when
    they total at most :data:`EMBED_LIMIT_BYTES`) or linked relative to the page."""
    out = Path(out_dir)
    files = [*overlays.values(), *([histogram] if histogram else [])]
    if embed is None:
        embed = sum(p.stat().st_size for p in files) <= EMBED_LIMIT_BYTES

    def src(p: Path) -> str:
        return _data_url(p) if embed else p.relative_to(out).as_posix()

    page = out / "report.html"
    atomic_write_text(page, inspection_html(run, {n: src(p) for n, p in overlays.items()},
                                            src(histogram) if histogram else None))
    return page


# ------------------------------------------------------------------------------------------------ the command


@dataclass
class Inspection:
    """What :func:`inspect_images` did: the run, the output folder, the files written (``overlays``: by image
    name), the page."""

    run: PredictionRun
    out_dir: Path
    files: dict[str, Path]
    overlays: dict[str, Path] = field(default_factory=dict)

    @property
    def page(self) -> Path:
        return self.files["page"]

    @property
    def exit_status(self) -> int:
        return self.run.exit_status


def inspect_images(cfg: RunConfig, class_name: str, images: Sequence[str | Path] | str | Path,
                   normal: Sequence[str | Path] | str | Path | None = (), out_dir: str | Path = DEFAULT_OUT,
                   threshold: float | None = None, *, embed: bool | None = None, progress: bool | None = None,
                   log: Callable[[str], Any] | None = print, backbone: Any = None) -> Inspection:
    """Score your images and write everything (``winclip predict``; notebook 07): see the module docstring.

    Args:
        cfg: the settings (a :class:`RunConfig`: model, weights, precision, device, cache, method settings).
        class_name: the object's name in words ("metal nut").
        images, normal: files, folders or glob patterns (:func:`~winclip_lib.experiments.predict.collect_inputs`).
        out_dir: the output folder (new, empty, or an earlier output, whose files are replaced).
        threshold: the decision threshold; None: the references' leave-one-out rule (k >= 2), else no decision.
        embed: overlays in the page as base64 (None: when small enough). progress: progress bars. log: where the
            messages go (None: silent). backbone: an already loaded backbone matching ``cfg``.

    Raises:
        NoInputError: nothing matched IMAGES (or --normal). ValueError / FileExistsError: bad settings or an
            output folder holding other files — all before anything is scored.
    """
    say = log or (lambda _msg: None)
    cfg.check_runnable()
    choose_threshold(threshold)
    out = Path(out_dir).expanduser()
    inputs = collect_inputs(images, normal, out_dir=out, progress=progress)
    out = prepare_out_dir(out)
    n_normal = len(inputs.normal)
    say(f"inputs: {len(inputs.images)} image(s) to score, {n_normal} normal reference(s), {len(inputs.skipped)} "
        "file(s) skipped")
    if normal and not n_normal and inputs.images:
        say("no normal reference could be read: scoring zero-shot")
    run = predict_images(cfg, class_name, inputs, threshold, backbone=backbone, progress=progress)
    if run.images:
        say(f"mode: {run.mode}" + (f": all {run.k} usable normal references" if run.k else ""))
        say(f"backbone: {run.backbone}")
        counts = run.encode_counts
        say(f"images encoded: {counts['encoded']}, read from the feature cache: {counts['hits']}")
        say(f"scored {len(run.images)} image(s) in {run.seconds:.1f} s ({run.seconds / len(run.images):.3f} s per "
            "image)")
    say(f"threshold: {run.threshold.explanation}")
    files = write_outputs(run, out)
    overlays = write_overlays(run, out, progress) if run.images else {}
    histogram = None
    if run.images:
        fig = plot_score_histogram(run)
        histogram = save_figure(fig, out / "score_histogram.png", dpi=100)
        plt.close(fig)
        files["histogram"] = histogram
    files["page"] = write_inspection_page(run, out, overlays, histogram, embed)
    for s in run.skipped:
        say(f"skipped ({s.role}): {s.reason}")
    if run.images:
        top = run.table().head(3)
        say("highest scores: " + ", ".join(f"{Path(p).name} {v:.3f}" for p, v in zip(top["path"], top["score"],
                                                                                    strict=True)))
    say(f"wrote {files['page']} (and scores.csv, errors.csv, maps.npz, run.json, overlays/ in {out})")
    if run.label:
        say(run.label)
    return Inspection(run, out, files, overlays)
