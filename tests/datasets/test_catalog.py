"""The datasets' names, categories, official counts and class names."""

from __future__ import annotations

import pytest

from winclip_lib.datasets.catalog import (
    CATEGORIES,
    DATASETS,
    MPDD_CATEGORIES,
    MVTEC_CATEGORIES,
    VISA_CATEGORIES,
    class_name,
)
from winclip_lib.datasets.counts import EXPECTED_COUNTS, EXPECTED_TOTALS, Counts


def test_constants_and_expected_counts():
    assert DATASETS[:3] == ("mvtec", "visa", "mpdd")
    assert (len(MVTEC_CATEGORIES), len(VISA_CATEGORIES), len(MPDD_CATEGORIES)) == (15, 12, 6)
    for name, cats in CATEGORIES.items():
        if name not in EXPECTED_TOTALS:
            continue
        assert tuple(EXPECTED_COUNTS[name]) == cats
        total = sum(EXPECTED_COUNTS[name].values(), Counts(0, 0, 0))
        assert total == EXPECTED_TOTALS[name]
    assert EXPECTED_TOTALS["mvtec"] == Counts(3629, 467, 1258) and EXPECTED_TOTALS["mvtec"].test == 1725
    assert EXPECTED_TOTALS["visa"].test == 2162 and EXPECTED_TOTALS["visa"].train == 8659
    assert EXPECTED_TOTALS["mpdd"].test == 458 and EXPECTED_TOTALS["mpdd"].train == 888


def test_class_names():
    expected = {
        "metal_nut": "metal nut", "pcb1": "printed circuit board", "pcb4": "printed circuit board",
        "macaroni1": "macaroni", "macaroni2": "macaroni", "pipe_fryum": "pipe fryum", "chewinggum": "chewing gum",
        "bracket_black": "black bracket", "bracket_white": "white bracket", "metal_plate": "metal plate",
        "bottle": "bottle", "capsules": "capsules", "tubes": "tubes", "some_new_thing": "some new thing",
    }  # fmt: skip
    for folder, word in expected.items():
        assert class_name(folder) == word
    assert class_name("pcb1", "visa", overrides={"pcb1": "circuit board"}) == "circuit board"
    assert class_name("bottle", "mvtec", overrides={"pcb1": "x"}) == "bottle"
    with pytest.raises(ValueError):
        class_name("bottle", "nope")
