"""The few-shot reference draws: deterministic per seed, without replacement, nested across k."""

from __future__ import annotations

import numpy as np
import pytest

from tests.datasets.trees import make_mvtec_tree
from winclip_lib.datasets.catalog import DatasetError
from winclip_lib.datasets.references import sample_references
from winclip_lib.datasets.scan import load_split


def test_sample_references_deterministic_without_replacement(tmp_path):
    root = make_mvtec_tree(tmp_path / "r", categories=("bottle",), n_train=10)
    normal = load_split("mvtec", root, "bottle", "train")
    draws = {seed: sample_references("mvtec", root, "bottle", 4, seed) for seed in (0, 1, 2, 3, 4)}
    for seed, refs in draws.items():
        assert len({r.image_path for r in refs}) == 4
        assert refs == sample_references("mvtec", root, "bottle", 4, seed)
        perm = np.random.default_rng(seed).permutation(10)[:4]
        assert refs == [normal[i] for i in perm]
        assert sample_references("mvtec", root, "bottle", 2, seed) == refs[:2]  # nested across k
    assert len({tuple(r.image_path for r in refs) for refs in draws.values()}) == 5
    assert [r.image_path.name for r in draws[0]] == [normal[i].image_path.name for i in [4, 6, 2, 7]]  # pinned draw


def test_sample_references_bad_k(tmp_path):
    root = make_mvtec_tree(tmp_path / "r", categories=("bottle",), n_train=3)
    with pytest.raises(DatasetError, match="only 3 normal training images"):
        sample_references("mvtec", root, "bottle", 4, 0)
    with pytest.raises(ValueError, match="positive"):
        sample_references("mvtec", root, "bottle", 0, 0)
    assert len(sample_references("mvtec", root, "bottle", 3, 0)) == 3
