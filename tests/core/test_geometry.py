"""Preprocessing geometry on non-square photos: image, mask and map pixels line up in both modes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.datasets.trees import rand_rgb
from winclip_lib import WinCLIP
from winclip_lib.core.geometry import Geometry, resize_image, resize_mask
from winclip_lib.core.preprocess import preprocess

H, W = 300, 520  # a non-square photo, as VisA's


def checkerboard(h: int = H, w: int = W, cell: int = 40, phase: int = 7) -> np.ndarray:
    """A bool pattern with no symmetry that a wrong crop or a squash would hide."""
    y, x = np.mgrid[:h, :w]
    return (((y + phase) // cell + (x // (cell + 3))) % 2 == 0) & (x > 30)


def photo_of(mask: np.ndarray) -> np.ndarray:
    return np.repeat(np.where(mask, 230, 20).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_mask_pixels_line_up_with_image_pixels(mode):
    """The photo's content is its mask: after the geometry, the input image thresholded is the input mask, except
    on the cell borders (bicubic vs area resampling)."""
    g = Geometry(240, mode)
    mask = checkerboard()
    image, mask_in = g.image(photo_of(mask)), g.mask(mask)
    assert image.shape == (240, 240, 3) and mask_in.shape == (240, 240)
    agree = ((image[:, :, 0] > 125) == mask_in).mean()
    assert agree > 0.985, f"{mode}: only {agree:.3f} of the pixels agree"
    if mode == "crop":  # a squashed mask (the old mistake) does not line up with a cropped image
        assert ((image[:, :, 0] > 125) == resize_mask(mask, 240)).mean() < 0.8


@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_maps_go_back_onto_the_photo_pixels_they_came_from(mode):
    """A map over the input (here: the input image itself) carried back to the photo's resolution lines up with the
    photo's mask on the covered region; outside it (crop only) the map is NaN."""
    g = Geometry(240, mode)
    mask = checkerboard()
    as_map = torch.from_numpy(g.image(photo_of(mask))[:, :, 0].astype(np.float32) / 255.0)[None]
    rows, cols = g.region(H, W)
    back = g.map_to_region(as_map, H, W)[0].numpy()
    assert back.shape == mask[rows, cols].shape
    assert ((back > 0.49) == mask[rows, cols]).mean() > 0.98
    full = g.map_to_image(as_map, H, W)[0].numpy()
    assert full.shape == (H, W)
    if mode == "resize":
        assert (rows, cols) == (slice(0, H), slice(0, W)) and not np.isnan(full).any()
        expected = torch.nn.functional.interpolate(as_map[:, None], size=(H, W), mode="bilinear",
                                                   align_corners=False)[0, 0].numpy()
        np.testing.assert_array_equal(full, expected)  # exactly the upsampling the runner has always used
    else:
        assert rows == slice(0, H) and cols.stop - cols.start == H  # the centre square of a landscape photo
        assert np.isnan(full[:, : cols.start]).all() and np.isnan(full[:, cols.stop :]).all()
        assert not np.isnan(full[:, cols]).any()


def test_resize_mode_is_pil_bicubic_and_crop_is_shorter_side_then_centre():
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    resized = np.asarray(Image.fromarray(rgb).resize((240, 240), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(Geometry(240, "resize").image(rgb), resized)
    g = Geometry(240, "crop")
    assert g.resized_shape(H, W) == (240, 416) and g.crop_offset(H, W) == (0, 88)
    shorter = np.asarray(Image.fromarray(rgb).resize((416, 240), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(g.image(rgb), shorter[:, 88:328])
    with pytest.raises(ValueError, match="unknown resize mode 'squash'"):
        Geometry(240, "squash")


def test_the_model_preprocesses_in_its_own_geometry(tiny):
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    crop = WinCLIP(tiny, "part", resize_mode="crop")
    torch.testing.assert_close(crop.preprocess([rgb]), preprocess([rgb], 240, "crop"))
    assert not torch.equal(crop.preprocess([rgb]), WinCLIP(tiny, "part").preprocess([rgb]))
    maps = crop.maps_on_photo(torch.rand(1, 240, 240), H, W)
    assert maps.shape == (1, H, W) and torch.isnan(maps[0, :, :50]).all()


# ------------------------------------------------------------------------------------------ resizing


def test_resize_image_cubic_and_clipping():
    rng = np.random.default_rng(0)
    img = rand_rgb(rng, 50, 70)
    out = resize_image(img, 24)
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.resize(img, (24, 24), interpolation=cv2.INTER_CUBIC))
    checker = ((np.indices((40, 40)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)
    up = resize_image(checker, 97)  # bicubic overshoots; must saturate, not wrap around
    ref = np.clip(np.rint(cv2.resize(checker.astype(np.float32), (97, 97), interpolation=cv2.INTER_CUBIC)), 0, 255)
    assert np.abs(up.astype(int) - ref).max() <= 1 and up.max() == 255 and up.min() == 0
    assert resize_image(np.full((30, 40, 3), 77, np.uint8), (10, 20)).shape == (10, 20, 3)
    assert (resize_image(np.full((30, 40, 3), 77, np.uint8), 16, interpolation="pil_bicubic") == 77).all()
    with pytest.raises(ValueError, match="interpolation"):
        resize_image(img, 10, interpolation="lanczos")


def test_resize_mask_area_threshold_vs_nearest():
    m = np.zeros((8, 8), bool)
    m[0:4, 0:2] = True  # left half of the top-left 4x4 block: coverage exactly 0.5 -> kept by ">= 0.5"
    m[4:8, 4:5] = True  # quarter of the bottom-right block: 0.25 -> dropped
    out = resize_mask(m, 2)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, [[True, False], [False, False]])
    line = np.zeros((40, 40), bool)
    line[:, 21] = True  # a 1-px line vanishes under area; under nearest it survives only where sampled
    assert not resize_mask(line, 10).any()
    assert resize_mask(line, 20, method="nearest")[:, 10].all()
    assert not resize_mask(np.roll(line, 1, axis=1), 20, method="nearest").any()
    up = resize_mask(np.eye(2, dtype=bool), 4)
    np.testing.assert_array_equal(up, np.kron(np.eye(2), np.ones((2, 2))).astype(bool))
    with pytest.raises(ValueError, match="method"):
        resize_mask(m, 4, method="cubic")


def test_mask_and_image_resized_with_same_geometry():
    h, w = 60, 90
    m = np.zeros((h, w), bool)
    m[10:30, 50:80] = True
    img = np.where(m[..., None], 255, 0).astype(np.uint8).repeat(3, 2)
    r_img = resize_image(img, 24)[..., 0] >= 128
    r_mask = resize_mask(m, 24)
    assert (r_img != r_mask).sum() <= 4  # same box, borders may differ by interpolation only
    ys, xs = np.nonzero(r_mask)
    assert ys.min() == 4 and ys.max() == 11 and xs.min() == 13 and xs.max() == 20
