"""The synthetic dataset: exact MVTec layout, exact masks, determinism, safety of the output folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from winclip_lib.core.imageio import load_image
from winclip_lib.datasets import synthetic as syn
from winclip_lib.datasets.layout import list_categories
from winclip_lib.datasets.masks import load_mask
from winclip_lib.datasets.scan import load_split


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return syn.make_synthetic(tmp_path_factory.mktemp("syn") / "set", size=64, n_train=3, n_test_good=2, n_test_bad=4)


def test_exact_mvtec_layout(small):
    expected = set()
    for c in ("tiles", "disc"):
        expected |= {f"{c}/train/good/{i:03d}.png" for i in range(3)}
        expected |= {f"{c}/test/good/{i:03d}.png" for i in range(2)}
        # 4 anomalous images round-robin over scratch, spot, missing -> 2, 1, 1
        for d, n in (("scratch", 2), ("spot", 1), ("missing", 1)):
            expected |= {f"{c}/test/{d}/{i:03d}.png" for i in range(n)}
            expected |= {f"{c}/ground_truth/{d}/{i:03d}_mask.png" for i in range(n)}
    assert set(_files(small)) == expected | {syn.MANIFEST_NAME}
    manifest = json.loads((small / syn.MANIFEST_NAME).read_text())
    assert manifest["categories"]["tiles"]["kind"] == "texture" and manifest["categories"]["disc"]["kind"] == "object"
    assert manifest["categories"]["disc"]["defects"] == {"scratch": 2, "spot": 1, "missing": 1}
    assert syn.read_manifest(small) == manifest and syn.read_manifest(small / "tiles") is None


def test_loads_with_the_mvtec_loader(small):
    assert list_categories("mvtec", small) == ["disc", "tiles"]
    for c in ("tiles", "disc"):
        train = load_split("mvtec", small, c, "train")
        test = load_split("mvtec", small, c, "test")
        assert len(train) == 3 and [s.label for s in test].count(1) == 4
        for s in test:
            img = load_image(s.image_path)
            assert img.shape == (64, 64, 3)
            mask = load_mask(s)
            assert mask.any() == bool(s.label)
            if s.mask_path is not None:
                raw = np.unique(np.asarray(__import__("PIL.Image").Image.open(s.mask_path)))
                assert set(raw.tolist()) == {0, 255}


def test_masks_are_exactly_the_changed_pixels(small):
    for c in ("tiles", "disc"):
        for d in syn.DEFECT_TYPES:
            path = small / c / "test" / d / "000.png"
            rng = syn._rng(0, c, d, 0)  # the generator's stream for this image
            clean, _, _ = syn.render_normal(c, rng, 64)
            bad = load_image(path)
            mask = load_mask(small / c / "ground_truth" / d / "000_mask.png")
            changed = (bad != clean).any(axis=2)
            np.testing.assert_array_equal(changed, mask)
            assert mask.sum() >= 4


@pytest.mark.parametrize("category", sorted(syn.SYNTHETIC_CATEGORIES))
@pytest.mark.parametrize("defect", syn.DEFECT_TYPES)
def test_add_defect_changes_exactly_its_mask(category, defect):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        img, obj, bg = syn.render_normal(category, rng, 96)
        bad, mask = syn.add_defect(img, obj, bg, defect, rng)
        diff = np.abs(bad.astype(int) - img.astype(int)).max(axis=2)
        np.testing.assert_array_equal(diff > 0, mask)
        assert (diff[mask] >= 30).all() and not (mask & ~obj).any()
        if defect == "missing" and category == "disc":  # the bite shows the background
            assert (bad[mask] == bg[mask]).all(axis=1).mean() > 0.95
            assert np.abs(bad[mask].astype(int) - bg[mask]).max() <= 45


def test_deterministic_bytes_and_seed_dependence(tmp_path):
    kw = dict(size=48, n_train=2, n_test_good=1, n_test_bad=3)
    a = _files(syn.make_synthetic(tmp_path / "a", seed=3, **kw))
    b = _files(syn.make_synthetic(tmp_path / "b", seed=3, **kw))
    c = _files(syn.make_synthetic(tmp_path / "c", seed=4, **kw))
    assert a == b
    assert a.keys() == c.keys() and a["disc/test/spot/000.png"] != c["disc/test/spot/000.png"]
    # normal images vary within a set
    assert a["tiles/train/good/000.png"] != a["tiles/train/good/001.png"]


def test_default_size_is_fast(tmp_path):
    t0 = time.perf_counter()
    syn.make_synthetic(tmp_path / "d")
    assert time.perf_counter() - t0 < 10.0
    assert load_image(tmp_path / "d" / "disc" / "train" / "good" / "000.png").shape == (256, 256, 3)


def test_output_folder_safety(tmp_path):
    real = tmp_path / "real"
    (real / "bottle").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        syn.make_synthetic(real, size=32, n_train=1, n_test_good=1, n_test_bad=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real"]  # no temp folder left behind
    out = syn.make_synthetic(tmp_path / "s", categories=("disc",), size=32, n_train=1, n_test_good=1, n_test_bad=1)
    out = syn.make_synthetic(out, categories=("tiles",), size=32, n_train=2, n_test_good=1, n_test_bad=1)
    assert list_categories("mvtec", out) == ["tiles"]  # earlier synthetic set replaced, not merged
    assert len(load_split("mvtec", out, "tiles", "train")) == 2
    with pytest.raises(ValueError, match="categories"):
        syn.make_synthetic(tmp_path / "x", categories=("bottle",))
    with pytest.raises(ValueError, match="size"):
        syn.make_synthetic(tmp_path / "x", size=16)
