"""The decision threshold of ``winclip predict``: ``--threshold`` when given; else, with k >= 2 normal references,
their own leave-one-out rule (:data:`THRESHOLD_RULE`); else no decision."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from winclip_lib.core.features import Features
from winclip_lib.core.model import WinCLIP

__all__ = ["THRESHOLD_RULE", "Threshold", "choose_threshold", "decide", "leave_one_out_scores", "loo_threshold"]

#: The decision rule when no ``--threshold`` is given, as documented on the page and in ``--help``.
THRESHOLD_RULE = (
    "threshold = max(s) + std(s), where s are the normal references' leave-one-out scores (each reference scored "
    "by WinCLIP+ fitted on the other k-1 references) and std is the population standard deviation (ddof = 0); an "
    "image whose score is above the threshold is called anomalous. k reference images are a small sample: this "
    "threshold is a starting point, to be checked against the ranked images and set with --threshold."
)


@dataclass(frozen=True)
class Threshold:
    """The decision threshold and how it was chosen.

    Attributes:
        value: the threshold, or None (no decision).
        source: "given" (``--threshold``), "leave-one-out" (:data:`THRESHOLD_RULE`) or "none".
        explanation: one sentence for people (the page, the command's output).
        loo_scores: the references' leave-one-out scores (k >= 2), also when the threshold was given.
    """

    value: float | None
    source: str
    explanation: str
    loo_scores: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "explanation": self.explanation,
                "rule": THRESHOLD_RULE if self.source == "leave-one-out" else None,
                "loo_scores": list(self.loo_scores),
                "loo_threshold": loo_threshold(self.loo_scores) if len(self.loo_scores) >= 2 else None}


def leave_one_out_scores(model: WinCLIP, references: Features) -> np.ndarray:
    """The WinCLIP+ score of each of k >= 2 references with the model fitted on the other k - 1 (the model's own
    memory is restored afterwards)."""
    k = len(references)
    if k < 2:
        raise ValueError(f"leave-one-out needs at least 2 references, got {k}")
    memory = model.memory
    try:
        scores = []
        for i in range(k):
            others = torch.tensor([j for j in range(k) if j != i])
            model.fit(references[others])
            scores.append(float(model.predict_features(references[i]).score[0]))
    finally:
        model.memory = memory
    return np.asarray(scores, dtype=np.float64)


def loo_threshold(scores: Sequence[float]) -> float:
    """:data:`THRESHOLD_RULE`: max + population std of the leave-one-out scores."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size < 2:
        raise ValueError(f"the leave-one-out threshold needs at least 2 scores, got {s.size}")
    return float(s.max() + s.std(ddof=0))


def choose_threshold(given: float | None, loo_scores: Sequence[float] = ()) -> Threshold:
    """``given`` when not None; else the leave-one-out rule on ``loo_scores`` (k >= 2); else no threshold."""
    loo = tuple(float(s) for s in loo_scores)
    if given is not None:
        if not math.isfinite(given):
            raise ValueError(f"--threshold must be a finite number, got {given}")
        return Threshold(float(given), "given", f"given with --threshold: {given:g}", loo)
    if len(loo) >= 2:
        value = loo_threshold(loo)
        return Threshold(value, "leave-one-out",
                         f"{value:.4f} = max + std of the {len(loo)} references' leave-one-out scores (a starting "
                         "point from a small sample; set --threshold to change it)", loo)
    have = "no normal reference" if not loo else "only one normal reference"
    return Threshold(None, "none", f"no decision: {have} and no --threshold; give --threshold T, or at least two "
                                   "--normal references (the threshold is then computed from their leave-one-out "
                                   "scores)", loo)


def decide(scores: Sequence[float] | np.ndarray, threshold: float | None) -> list[str]:
    """"anomalous" where score > threshold, else "normal"; "n/a" for every image when there is no threshold."""
    if threshold is None:
        return ["n/a"] * len(scores)
    return ["anomalous" if s > threshold else "normal" for s in np.asarray(scores, dtype=np.float64)]
