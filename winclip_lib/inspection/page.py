"""The inspection page of ``winclip predict``, ``report.html``: every image sorted by score with its overlay, score and
decision; the threshold and how it was chosen; the skipped files and why; the settings; the DEMO label when the
weights are random.

The page is the Jinja2 template ``templates/report.html.j2`` shipped with the package (HTML escaping on);
:func:`page_context` computes what it shows, :func:`inspection_html` renders it.
"""

from __future__ import annotations

import base64
import math
import os
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

import winclip_lib
from winclip_lib.experiments.files import atomic_write_text
from winclip_lib.inspection.figures import overlay_layout
from winclip_lib.inspection.inputs import MIN_IMAGE_SIDE
from winclip_lib.inspection.scoring import PREDICT_SETTINGS, PredictionRun
from winclip_lib.inspection.threshold import THRESHOLD_RULE

__all__ = ["EMBED_LIMIT_BYTES", "TEMPLATE", "inspection_html", "page_context", "write_inspection_page"]

#: Overlays are embedded in report.html (base64) up to this total size; above it they are linked relative to it.
EMBED_LIMIT_BYTES = 20_000_000
#: The page's template, in the package's ``templates/`` folder.
TEMPLATE = "report.html.j2"
_TAGS = {"anomalous": "anomalous", "normal": "normal"}


def _fixed4(x: float) -> str:
    return f"{x:.4f}"


def _setting(x: Any) -> str:
    """A setting's value as the page shows it: lists space-separated ("none" when empty), None as "none"."""
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:g}"
    if isinstance(x, list | tuple):
        return " ".join(map(str, x)) or "none"
    return "none" if x is None else str(x)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("winclip_lib.inspection", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["fixed4"] = _fixed4
    return env


def _common_folder(paths: Sequence[Path]) -> Path | None:
    """The deepest folder holding every path (None for no path)."""
    if not paths:
        return None
    return Path(os.path.commonpath([str(Path(p).parent) for p in paths]))


def page_context(run: PredictionRun, overlay_src: dict[str, str], histogram_src: str | None = None
                 ) -> dict[str, Any]:
    """What the page shows (the template's variables), with each overlay's ``src`` (a relative link or a data URL)
    given by image name."""
    t = run.threshold
    table = run.table()
    folder = _common_folder(run.images)
    cards, cut_done = [], t.value is None
    for r in table.itertuples(index=False):
        (fig_w, fig_h), _ = overlay_layout(r.height, r.width)
        cut = None
        if not cut_done and r.score <= t.value:
            cut, cut_done = f"threshold {t.value:.4f}: above, anomalous; below, normal", True
        cards.append({
            "cut": cut, "name": r.name, "src": overlay_src[r.name], "fig_width": fig_w, "fig_height": fig_h,
            "rank": r.rank, "score": r.score, "decision": r.decision, "tag": _TAGS.get(r.decision, "na"),
            "s0": r.s0, "visual_max": None if math.isnan(r.visual_max) else r.visual_max, "width": r.width,
            "height": r.height, "path": r.path,
            "shown_path": r.path if folder is None else Path(r.path).relative_to(folder).as_posix(),
        })
    counts, n = run.encode_counts, len(run.images)
    settings = [
        ("class name", run.class_name), ("mode", run.mode),
        ("normal references", [str(p) for p in run.references]),
        ("backbone", run.backbone),
        ("weights", run.weights["verdict"] if run.weights else "none loaded"), ("precision used", run.precision),
        *((name, getattr(run.config, name)) for name in PREDICT_SETTINGS),
        ("images encoded / read from the cache", f"{counts.get('encoded', 0)} / {counts.get('hits', 0)}"),
        ("scoring time", f"{run.seconds:.1f} s" + (f" ({run.seconds / n:.3f} s per image)" if n else "")),
    ]
    return {
        "title": f"WinCLIP inspection: {run.class_name}" + (f" — {run.label}" if run.label else ""),
        "label": run.label,
        "label_note": ("The scores and maps below come from random weights and say nothing about these images."
                       if run.is_random else "The scores and maps below are not those of the paper's model on real "
                       "parts." if run.label else None),
        "class_name": run.class_name,
        "n_scored": n,
        "mode": run.mode,
        "threshold": t,
        "threshold_text": "none" if t.value is None else f"{t.value:.4f} ({t.source})",
        "n_anomalous": None if t.value is None else int((table["decision"] == "anomalous").sum()),
        "folder": None if folder is None else str(folder),
        "references": [Path(p).name for p in run.references],
        "rule": THRESHOLD_RULE if t.source == "leave-one-out" or t.loo_scores else None,
        "color_range": run.color_range(),
        "score_meaning": "(s0 + max of the visual map) / 2" if run.k else "s0, the zero-shot image score",
        "cards": cards,
        "last_cut": None if cut_done else f"threshold {t.value:.4f}: every image is above it",
        "histogram_src": histogram_src,
        "skipped": run.skipped,
        "min_side": MIN_IMAGE_SIDE,
        "excluded": [str(p) for p in run.excluded],
        "settings": [(name, _setting(value)) for name, value in settings],
        "version": winclip_lib.__version__,
        "written": time.strftime("%Y-%m-%d %H:%M"),
    }


def inspection_html(run: PredictionRun, overlay_src: dict[str, str], histogram_src: str | None = None) -> str:
    """The page (a complete HTML document) for a run: :data:`TEMPLATE` rendered with :func:`page_context`."""
    return _environment().get_template(TEMPLATE).render(page_context(run, overlay_src, histogram_src))


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
