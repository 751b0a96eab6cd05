"""Drawing infrastructure shared by every figure: the DEMO banner and the title band, text that fits, captions,
image and mask helpers, and saving a figure as PNG with its banner in the metadata.

Every figure function takes ``banner``: a label such as :data:`winclip_lib.experiments.labels.DEMO_BANNER` that is
stamped on the figure (a red line above the axes and a faint diagonal watermark, :func:`add_header`) and written into
the PNG's metadata by :func:`save_figure`. Names of maps and scores may be given as plain text with subscripts written
``M_2``, ``V_R2``, ``V_Rp`` or ``s_0``: :func:`math_label` turns them into matplotlib mathtext.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "BANNER_COLOR",
    "NOT_AVAILABLE",
    "add_caption",
    "add_header",
    "as_image",
    "draw_contours",
    "figure_banner",
    "hide_ticks",
    "mask_contours",
    "math_label",
    "renderer",
    "save_figure",
    "stamp_banner",
    "to_numpy",
    "wrap_text",
]

BANNER_COLOR = "#c0001a"
#: Written where a figure has no value to draw, always followed by why ("n/a — not measured").
NOT_AVAILABLE = "n/a"
_BANNER_ATTR = "_winclip_banner"
_BANNER_HEIGHT_IN = 0.32


def renderer(fig: Figure):
    """A renderer to measure text with before the figure is drawn."""
    get = getattr(fig.canvas, "get_renderer", None)
    return get() if get is not None else fig._get_renderer()


def _fit_width(fig: Figure, text: Any, frac: float = 0.98, min_size: float = 6.0) -> None:
    """Shrink ``text`` (a figure-level Text) until it is at most ``frac`` of the figure's width."""
    width = text.get_window_extent(renderer(fig)).width
    limit = frac * fig.bbox.width
    if width > limit:
        text.set_fontsize(max(min_size, text.get_fontsize() * limit / width))


def wrap_text(text: str, width_in: float, fontsize: float) -> str:
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


def add_header(fig: Figure, title: str | None, banner: str | None) -> Figure:
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
        ext = mark.get_window_extent(renderer(fig))
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
    return add_header(fig, title, banner)


def figure_banner(fig: Figure) -> str | None:
    """The banner stamped on ``fig`` by :func:`stamp_banner` (None if none)."""
    return getattr(fig, _BANNER_ATTR, None)


def save_figure(fig: Figure, path: str | Path, dpi: int = 130, metadata: Mapping[str, str] | None = None,
                compress_level: int | None = None) -> Path:
    """Write ``fig`` as PNG (parent folders created). The banner, if any, goes into the PNG's ``Description``
    metadata too, so a stray figure file still says it is a demo; ``metadata`` adds other text entries;
    ``compress_level``: zlib's level 0-9 (None: PIL's default, 6) — the pixels are the same at every level. Returns
    the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    banner = figure_banner(fig)
    metadata = {**dict(metadata or {}), "Software": "winclip_lib",
                "Description": banner or "WinCLIP reproduction figure"}
    fig.savefig(path, dpi=dpi, format="png", metadata=metadata,
                pil_kwargs=None if compress_level is None else {"compress_level": int(compress_level)})
    return path


def to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device/dtype) or array as a float32 or original-dtype NumPy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def as_image(x: Any) -> np.ndarray:
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


def draw_contours(ax: plt.Axes, mask: np.ndarray | None, color: str = "lime", lw: float = 1.2) -> None:
    if mask is None:
        return
    for c in mask_contours(mask):
        closed = np.vstack([c, c[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color=color, lw=lw)


def hide_ticks(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def add_caption(fig: Figure, text: str, fontsize: float = 8) -> None:
    """A caption under the axes (``supxlabel``, so constrained layout makes room), wrapped to the figure width."""
    fig.supxlabel(wrap_text(text, 0.96 * fig.get_figwidth(), fontsize), fontsize=fontsize, color="0.25")
