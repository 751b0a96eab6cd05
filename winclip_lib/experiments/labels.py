"""The DEMO label: every table, figure, CSV and page made with random weights or on synthetic data carries it.

Numbers of unknown provenance are never presented as a reproduction: a run without information is labelled as
random weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from winclip_lib.datasets.synthetic import read_manifest

__all__ = ["DEMO_BANNER", "demo_label", "is_synthetic_root", "label_for", "run_label"]


def demo_label(random_weights: bool, synthetic_data: bool) -> str | None:
    """"DEMO — <what>: not a reproduction", or None for real weights on real data."""
    what = [w for w, on in (("random weights", random_weights), ("synthetic data", synthetic_data)) if on]
    return f"DEMO — {', '.join(what)}: not a reproduction" if what else None


#: The label of the demo: random weights on the synthetic set.
DEMO_BANNER = demo_label(True, True)


def is_synthetic_root(root: str | Path) -> bool:
    """True when ``root`` holds a synthetic dataset written by :func:`winclip_lib.datasets.synthetic.make_synthetic`."""
    try:
        return read_manifest(root) is not None
    except (OSError, ValueError):
        return False


def run_label(info: Mapping[str, Any] | None) -> str | None:
    """The label of a run from its ``run.json`` (``is_random``, ``synthetic_data``); None info counts as random
    weights."""
    info = {"is_random": True} if info is None else info
    return demo_label(bool(info.get("is_random")), any(dict(info.get("synthetic_data") or {}).values()))


def label_for(is_random: bool, datasets: Mapping[str, str | Path] | None = None) -> str | None:
    """The label of work done outside a run (a notebook's own figures, a prediction): random weights, and synthetic
    data when a dataset root holds a synthetic set."""
    return demo_label(bool(is_random), any(is_synthetic_root(root) for root in (datasets or {}).values()))
