"""The compute figure: time per image of each stage of the pipeline, from the speed benchmark's table."""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from winclip_lib.report.figures.style import NOT_AVAILABLE, add_caption, add_header

__all__ = ["NOT_MEASURED", "plot_compute"]

#: What a stage without a time says at its bar's place (the caption says why).
NOT_MEASURED = f"{NOT_AVAILABLE} — not measured"


def _duration(value: float, unit: str) -> str:
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"


def plot_compute(stages: Mapping[str, float | None], banner: str | None = None, title: str | None = None,
                 unit: str = "auto") -> Figure:
    """Time per image of each stage as horizontal bars (top to bottom in the order of ``stages``), the value
    written on each bar; a stage whose time is None (or NaN) is drawn as "n/a — not measured", and the caption says
    why.

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
            ax.text(0.01 * top, yi, NOT_MEASURED, ha="left", va="center", fontsize=8, style="italic", color="0.4")
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
    if len(measured) < len(values):
        add_caption(fig, f"{NOT_MEASURED}: the benchmark's table has no time for this stage (it did not run it on "
                         "this machine, e.g. a precision this CPU cannot run).")
    return add_header(fig, title or "Compute: time per image of each stage", banner)
