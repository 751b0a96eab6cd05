"""The small stand-ins of the later benchmarks (winclip_lib.datasets.standins.make_standins) that the demo and the
notebook tests use: each in its official layout with the counts asked for, labelled as synthetic data, rewritten
only when the counts change, and never written over a folder that is not a stand-in."""

from __future__ import annotations

import pytest

from winclip_lib.datasets.layout import list_categories
from winclip_lib.datasets.scan import load_split
from winclip_lib.datasets.standins import make_standins
from winclip_lib.experiments.labels import is_synthetic_root

SMALL = ("btad", "ksdd2", "dagm", "dtd", "loco", "mvtec2", "realiad", "folder")


def test_each_small_stand_in_lists_its_counts_and_is_labelled_synthetic(tmp_path):
    roots = make_standins(tmp_path, SMALL, n_train=3, n_good=2, n_bad=3)
    assert list(roots) == list(SMALL)
    for dataset, root in roots.items():
        categories = list_categories(dataset, root)
        assert len(categories) == (2 if dataset == "loco" else 1), (dataset, categories)
        for category in categories:
            test = load_split(dataset, root, category, "test", require_masks=dataset != "folder")
            train = load_split(dataset, root, category, "train", require_masks=False)
            assert (len(train), len(test), sum(s.label for s in test)) == (3, 5, 3), (dataset, category)
            assert all(s.mask_path is None for s in test) == (dataset == "folder"), dataset
        assert is_synthetic_root(root), dataset


def test_a_stand_in_is_kept_or_rewritten_and_never_written_over_other_data(tmp_path):
    root = make_standins(tmp_path, ["btad"], n_train=2)["btad"]
    first = sorted(p.name for p in (root / "01" / "train" / "ok").iterdir())
    marker = root / "01" / "kept.txt"
    marker.write_text("x")
    make_standins(tmp_path, ["btad"], n_train=2)
    assert marker.is_file()  # same counts: kept
    make_standins(tmp_path, ["btad"], n_train=4)
    assert not marker.exists() and len(list((root / "01" / "train" / "ok").iterdir())) == 4 > len(first)
    (tmp_path / "dtd").mkdir()
    (tmp_path / "dtd" / "mine.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a stand-in"):
        make_standins(tmp_path, ["dtd"])
    assert (tmp_path / "dtd" / "mine.png").is_file()
    with pytest.raises(ValueError, match="no small stand-in for \\['ksdd'\\]"):
        make_standins(tmp_path, ["ksdd"])
