"""The GIL-free PNG decoder against PIL's full decode (the reference): the same pixels on every colour type and bit
depth, the same masks, and the same verdict — error message or pixels — on truncated, bit-flipped and odd files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from winclip_lib.core.geometry import RESIZE_MODES, Geometry
from winclip_lib.core.imageio import ImageError, load_image, load_image_pil, load_rgb, png_fast_path, read_mask_file


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(rows: list[bytes], width: int, height: int, bit_depth: int, colour: int, *, before: list[bytes] = (),
            after: list[bytes] = (), idat_parts: int = 1) -> bytes:
    """A PNG written by hand: ``rows`` unfiltered scanlines (filter byte added here), the chunks ``before`` the
    image data and ``after`` it, the zlib stream split over ``idat_parts`` IDAT chunks."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    stream = zlib.compress(b"".join(b"\x00" + r for r in rows))
    step = -(-len(stream) // idat_parts)
    idats = [_chunk(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step)]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + b"".join(before) + b"".join(idats) + b"".join(after)
            + _chunk(b"IEND", b""))


def _pil_png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _cv2_png(arr: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", arr)
    assert ok
    return data.tobytes()


def _variants() -> dict[str, bytes]:
    """PNGs of every colour type and bit depth (and a JPEG, which must stay with PIL)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    pil = Image.fromarray(rgb)
    pal = pil.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    out = {
        "rgb": _pil_png(pil), "rgba": _pil_png(pil.convert("RGBA")), "gray": _pil_png(Image.fromarray(gray)),
        "gray_alpha": _pil_png(pil.convert("LA")), "palette": _pil_png(pal),
        "palette_transparent": _pil_png(pal, transparency=3), "palette_4bit": _pil_png(pal, bits=4),
        "bilevel": _pil_png(pil.convert("1")), "gray_transparent": _pil_png(Image.fromarray(gray), transparency=7),
        "rgb_transparent": _pil_png(pil, transparency=(1, 2, 3)),
        "rgb_text": _pil_png(pil, pnginfo=_text_info()),
        "gray16": _cv2_png(rng.integers(0, 65536, (24, 32), dtype=np.uint16)),
        "bgr16": _cv2_png(rng.integers(0, 65536, (24, 32, 3), dtype=np.uint16)),
        "bgra16": _cv2_png(rng.integers(0, 65536, (24, 32, 4), dtype=np.uint16)),
        "bgr_cv2": _cv2_png(rgb),
    }
    for bits in (1, 2, 4):  # low-depth gray, scaled to 0..255 by both decoders
        per_byte = 8 // bits
        vals = rng.integers(0, 2**bits, (5, 16))
        rows = [bytes(int("".join(f"{v:0{bits}b}" for v in r[i : i + per_byte]), 2)
                      for i in range(0, 16, per_byte)) for r in vals]
        out[f"gray{bits}bit"] = raw_png(rows, 16, 5, bits, 0)
    rows = [bytes(rng.integers(0, 256, 30, dtype=np.uint8)) for _ in range(6)]
    out["gamma_and_split_idat"] = raw_png(rows, 10, 6, 8, 2, before=[_chunk(b"gAMA", struct.pack(">I", 45455))],
                                          idat_parts=3)
    out["text_after_idat"] = raw_png(rows, 10, 6, 8, 2, after=[_chunk(b"tEXt", b"k\x00v")])
    out["short_palette"] = raw_png([bytes([0, 1, 5, 2])], 4, 1, 8, 3, before=[_chunk(b"PLTE", bytes(range(9)))])
    out["jpeg"] = cv2.imencode(".jpg", rgb)[1].tobytes()
    return out


def _text_info():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "winclip test")
    return info


def _outcome(fn, path: Path):
    try:
        return fn(path)
    except ImageError as exc:
        return f"ImageError: {exc}"


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(_variants()))
def test_every_kind_of_png_decodes_to_the_reference_pixels(tmp_path, name):
    data = _variants()[name]
    path = tmp_path / ("x.jpg" if name == "jpeg" else "x.png")
    path.write_bytes(data)
    ref = load_image_pil(path)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == ref.shape and np.array_equal(out, ref)
    rgb = load_rgb(path)  # a PIL image only where the decoder made an RGB one: the model input is the same
    assert isinstance(rgb, Image.Image) == (name in ("rgb", "rgb_transparent", "rgb_text", "bgr_cv2",
                                                     "gamma_and_split_idat"))
    for mode in RESIZE_MODES:
        geometry = Geometry(16, mode)
        assert np.array_equal(geometry.image(rgb), geometry.image(ref)), mode
    fast = png_fast_path(data) is not None
    # the fast path is taken for every intact still PNG; the JPEG and the PNG with a chunk after its data are PIL's
    assert fast == (name not in ("jpeg", "text_after_idat"))
    if name not in ("jpeg", "palette", "palette_transparent", "palette_4bit", "short_palette", "bgr16", "bgra16"):
        old = np.asarray(Image.open(path))  # the masks' reference: PIL's array, any non-zero channel
        old = (old[:, :, :3] if old.ndim == 3 and old.shape[2] >= 3 else old[:, :, :1] if old.ndim == 3 else
               old[:, :, None]).any(axis=2)
        assert np.array_equal(read_mask_file(path), old)


def test_palette_and_16_bit_masks_keep_pil_semantics(tmp_path):
    """A palette mask is read by index (index 0 may be white, index 1 black), a 16-bit colour mask as PIL reads
    it (the high byte): both through PIL."""
    idx = np.array([[0, 1], [1, 0]], np.uint8)
    img = Image.fromarray(idx, "P")
    img.putpalette([255, 255, 255, 0, 0, 0])
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask_file(tmp_path / "p.png"), idx != 0)
    low = np.zeros((2, 2, 3), np.uint16)
    low[0, 0] = (200, 0, 0)  # below 256: PIL's 8-bit view is 0 there
    cv2.imwrite(str(tmp_path / "c16.png"), low)
    expected = np.asarray(Image.open(tmp_path / "c16.png")).any(axis=2)
    np.testing.assert_array_equal(read_mask_file(tmp_path / "c16.png"), expected)


def _corruptions(data: bytes) -> list[tuple[str, bytes]]:
    n = len(data)
    cuts = sorted({*range(0, n, max(1, n // 60)), n - 1, n - 4, n - 12, n - 13})
    out = [(f"cut{c}", data[:c]) for c in cuts]
    for pos in range(8, n, max(1, n // 40)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        out.append((f"flip{pos}", bytes(flipped)))
    out += [("trailing", data + b"junk after the end"), ("doubled", data + data), ("empty", b"")]
    return out


@pytest.mark.parametrize("name", ["rgb_text", "gamma_and_split_idat", "gray16", "palette"])
def test_damaged_files_get_the_reference_verdict(tmp_path, name):
    """Truncated anywhere, a bit flipped anywhere, bytes after the end: the same error message, or the same pixels,
    as PIL's full decode; a truncated file is never decoded by OpenCV (which would pad it)."""
    data = _variants()[name]
    path = tmp_path / "x.png"
    errors = 0
    for label, damaged in _corruptions(data):
        path.write_bytes(damaged)
        ref, out = _outcome(load_image_pil, path), _outcome(load_image, path)
        assert _same(ref, out), (name, label)
        errors += isinstance(ref, str)
        if label.startswith("cut"):
            assert png_fast_path(damaged) is None, label
    assert errors > 10  # the corpus does hold broken files


def test_truncated_image_data_is_refused_by_the_fast_path_although_opencv_pads_it(tmp_path):
    """Cut inside the image data, OpenCV may still return an image (padded); the IEND check keeps it out."""
    rng = np.random.default_rng(1)
    data = _cv2_png(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    cut = data[: len(data) * 3 // 4]
    assert png_fast_path(cut) is None
    (tmp_path / "cut.png").write_bytes(cut)
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "cut.png")
