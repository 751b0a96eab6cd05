"""The DEMO label: every table, figure, CSV and page made with random weights or on synthetic data carries it.

Numbers of unknown provenance are never presented as a reproduction: a run without information is labelled as
random weights. Real weights that are not the paper's checkpoint (another tag, or a file whose SHA-256 no public
source lists: :class:`~winclip_lib.core.checkpoints.WeightsVerdict`) are labelled with the verdict, e.g.
"weights: laion400m_e32 — not the paper's". Work done with the tiny test model says so too, where the caller names
the model (the notebooks do: "DEMO — tiny model, random weights, synthetic data: not a reproduction").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.core.checkpoints import WeightsVerdict
from winclip_lib.datasets.synthetic import read_manifest

__all__ = ["DEMO_BANNER", "demo_label", "is_synthetic_root", "label_for", "run_label", "weights_label"]


def weights_label(weights: WeightsVerdict | Mapping[str, Any] | None) -> str | None:
    """The verdict of real weights that are not the paper's ("weights: laion400m_e32 — not the paper's ...",
    "weights: unverified checkpoint (...)"); None for the paper's weights, random weights (the DEMO label says so)
    or no verdict. ``weights``: a verdict, or its ``as_dict()`` from a ``run.json``."""
    if weights is None:
        return None
    verdict = weights if isinstance(weights, WeightsVerdict) else WeightsVerdict.from_dict(weights)
    return None if verdict.status in ("paper", "random") else verdict.describe()


def demo_label(random_weights: bool, synthetic_data: bool,
               weights: WeightsVerdict | Mapping[str, Any] | None = None, tiny_model: bool = False) -> str | None:
    """"DEMO — <what>: not a reproduction", or None for real weights on real data; for real weights that are not the
    paper's (``weights``, see :func:`weights_label`) their verdict is added. ``tiny_model``: the work ran on the tiny
    test model, not the paper's architecture ("DEMO — tiny model, ...")."""
    what = [w for w, on in (("tiny model", tiny_model), ("random weights", random_weights),
                            ("synthetic data", synthetic_data)) if on]
    demo = f"DEMO — {', '.join(what)}: not a reproduction" if what else None
    note = None if random_weights else weights_label(weights)
    return "; ".join(text for text in (demo, note) if text) or None


#: The label of the demo: random weights on the synthetic set.
DEMO_BANNER = demo_label(True, True)


def is_synthetic_root(root: str | Path) -> bool:
    """True when ``root`` holds a synthetic dataset written by :func:`winclip_lib.datasets.synthetic.make_synthetic`."""
    try:
        return read_manifest(root) is not None
    except (OSError, ValueError):
        return False


def run_label(info: Mapping[str, Any] | None, *, name_model: bool = False) -> str | None:
    """The label of a run from its ``run.json`` (``is_random``, ``synthetic_data``, ``weights``); None info counts
    as random weights. ``name_model``: also say "tiny model" when the run's ``model_name`` is the tiny test model
    (the notebooks' labels do; the label stored in ``run.json`` does not)."""
    info = {"is_random": True} if info is None else info
    return demo_label(bool(info.get("is_random")), any(dict(info.get("synthetic_data") or {}).values()),
                      info.get("weights"), tiny_model=name_model and info.get("model_name") == TINY_MODEL)


def label_for(is_random: bool, datasets: Mapping[str, str | Path] | None = None,
              weights: WeightsVerdict | None = None, model_name: str | None = None) -> str | None:
    """The label of work done outside a run (a notebook's own figures, a prediction): random weights, synthetic
    data when a dataset root holds a synthetic set, the verdict of real weights that are not the paper's
    (``weights``: e.g. ``backbone.weights``), and "tiny model" when ``model_name`` is the tiny test model."""
    return demo_label(bool(is_random), any(is_synthetic_root(root) for root in (datasets or {}).values()), weights,
                      tiny_model=model_name == TINY_MODEL)
