"""Reading images: RGB order, grayscale / RGBA / palette, 16-bit scaled, corrupt files named."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.datasets.trees import H, W, rand_rgb, write_rgb
from winclip_lib.core.imageio import ImageError, load_image


def test_load_image_rgb_order_grayscale_rgba_palette(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[:, :5, 2] = 50
    p = tmp_path / "bgr.png"
    cv2.imwrite(str(p), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(load_image(p), rgb)

    gray = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.stack([gray] * 3, axis=2))

    rgba = np.concatenate([rgb, np.full((H, W, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgb)  # alpha dropped, colour kept

    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))


def test_load_image_16bit_scaled_not_clipped(tmp_path):
    v8 = np.arange(H * W, dtype=np.uint16).reshape(H, W) % 256
    g16 = v8 * 257
    g16[0, 0], g16[0, 1] = 1000, 65535  # 1000 / 257 = 3.89 -> 4
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    out = load_image(tmp_path / "g16.png")
    expected = v8.astype(np.uint8)
    expected[0, 0], expected[0, 1] = 4, 255
    np.testing.assert_array_equal(out, np.stack([expected] * 3, axis=2))

    rgb16 = np.zeros((H, W, 3), np.uint16)
    rgb16[..., 0] = 40000  # red -> round(40000 / 257) = 156
    rgb16[..., 2] = 257 * 10
    cv2.imwrite(str(tmp_path / "c16.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    out = load_image(tmp_path / "c16.png")
    assert out.dtype == np.uint8 and tuple(out[0, 0]) == (156, 0, 10)

    Image.fromarray(g16.astype(np.uint16)).save(tmp_path / "g16.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "g16.tif")[..., 0], expected)


@pytest.mark.parametrize("kind", ["garbage", "truncated_png", "truncated_jpg", "empty"])
def test_load_image_corrupt_raises_naming_file(tmp_path, kind):
    rng = np.random.default_rng(0)
    p = tmp_path / ("x.jpg" if kind == "truncated_jpg" else "x.png")
    if kind == "garbage":
        p.write_bytes(b"not an image at all" * 10)
    elif kind == "empty":
        p.write_bytes(b"")
    else:
        write_rgb(p, rand_rgb(rng, 64, 64))
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="re-download") as info:
        load_image(p)
    assert str(p) in str(info.value)
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
