"""Ground-truth masks: every encoding of a mask file read as bool, and a mask of the wrong size named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.datasets.trees import H, W, box_mask, rand_rgb, write_mask, write_rgb
from winclip_lib.datasets.catalog import DatasetError, Sample
from winclip_lib.datasets.masks import load_mask


def test_load_mask_variants(tmp_path):
    m = box_mask(2, 3)
    write_mask(tmp_path / "m255.png", m)
    write_mask(tmp_path / "m1.png", m, value=1)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[m] = (0, 0, 9)  # only the blue channel is set
    Image.fromarray(rgb).save(tmp_path / "mrgb.png")
    for name in ("m255.png", "m1.png", "mrgb.png"):
        out = load_mask(tmp_path / name)
        assert out.dtype == bool
        np.testing.assert_array_equal(out, m)
    sample = Sample(
        "mvtec", "x", "test", 0, "good", write_rgb(tmp_path / "n.png", rand_rgb(np.random.default_rng())), None
    )
    normal = load_mask(sample)
    assert normal.shape == (H, W) and not normal.any()
    assert load_mask(None, image_shape=(5, 6)).shape == (5, 6)
    with pytest.raises(ValueError, match="image_shape"):
        load_mask(None)


def test_mask_of_different_size_names_both_files(tmp_path):
    img = write_rgb(tmp_path / "img.png", rand_rgb(np.random.default_rng(), H, W))
    mask = write_mask(tmp_path / "img_mask.png", np.ones((H + 1, W), bool))
    s = Sample("mvtec", "x", "test", 1, "d", img, mask)
    with pytest.raises(DatasetError) as info:
        load_mask(s)
    assert str(img) in str(info.value) and str(mask) in str(info.value)
    with pytest.raises(DatasetError, match=str(mask)):
        load_mask(mask, image_shape=(H, W))
