"""The decision threshold: the rules, and the references' leave-one-out threshold computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from winclip_lib.core.model import WinCLIP
from winclip_lib.inspection.threshold import choose_threshold, decide, loo_threshold


def test_threshold_rules():
    assert loo_threshold([0.2, 0.4]) == pytest.approx(0.4 + 0.1)
    assert choose_threshold(None, [0.3]).value is None and "only one normal reference" in choose_threshold(
        None, [0.3]).explanation
    assert choose_threshold(0.5, [0.1, 0.2]).value == 0.5 and choose_threshold(0.5, [0.1, 0.2]).source == "given"
    assert decide([0.1, 0.5, 0.7], 0.5) == ["normal", "normal", "anomalous"]
    assert decide([0.1, 0.9], None) == ["n/a", "n/a"]
    with pytest.raises(ValueError, match="finite"):
        choose_threshold(float("nan"))


def test_the_leave_one_out_threshold_by_hand(photos, few_shot, tiny):
    """Each reference scored by WinCLIP+ fitted on the other two; threshold = max + population std."""
    refs = photos["ref_files"]
    loo = []
    with torch.inference_mode():
        for i, ref in enumerate(refs):
            model = WinCLIP(tiny, "metal disc").fit([r for j, r in enumerate(refs) if j != i])
            loo.append(float(model.predict([ref]).score[0]))
    mean = sum(loo) / 3
    by_hand = max(loo) + math.sqrt(sum((s - mean) ** 2 for s in loo) / 3)
    recorded = few_shot["first"]["threshold"]
    assert recorded["source"] == "leave-one-out"
    assert recorded["value"] == pytest.approx(by_hand, abs=1e-5)
    assert sorted(recorded["loo_scores"]) == pytest.approx(sorted(loo), abs=1e-5)
    decisions = few_shot["scores"].set_index("name")
    for row in decisions.itertuples():
        assert row.decision == ("anomalous" if row.score > recorded["value"] else "normal")
