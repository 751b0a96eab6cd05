"""zlib-ng's inflate and PIL's unfiltering against PIL's full decode of the same file: the same pixels for every
plain 8-bit PNG (every filter type, one or many IDAT chunks, images larger than one stored block), and None — never
other pixels — for everything it does not take or finds damaged, including streams zlib refuses."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.core.test_imageio_decoders import _chunk, _corruptions, raw_png
from winclip_lib.core.imageio import ImageError, load_image, load_image_pil, png_fast_path
from winclip_lib.core.png import decode_png, idat_stream


def _pil(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.load()
    return np.asarray(img)


def _photo(h: int, w: int, channels: int, seed: int = 0) -> np.ndarray:
    """Smooth content with noise, like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 7.0)[..., None] * 60 + np.cos(y / 5.0)[..., None] * 60 + 128 + np.arange(channels) * 9)
    return np.clip(base + rng.normal(0, 6, (h, w, channels)), 0, 255).astype(np.uint8)


def _filters(data: bytes) -> set[int]:
    arr = _pil(data)
    width_bytes = arr.shape[1] * (arr.shape[2] if arr.ndim == 3 else 1)
    raw = zlib.decompress(idat_stream(data))
    return set(raw[:: width_bytes + 1])


def _filtered_png(arr: np.ndarray, colour: int) -> bytes:
    """A PNG of ``arr`` (H, W) or (H, W, C) whose scanlines use filter types 0, 1, 2, 3, 4, 0, 1, ... in turn
    (the PNG specification's filters, computed here from the original bytes)."""
    h = arr.shape[0]
    bpp = arr.shape[2] if arr.ndim == 3 else 1
    lines = arr.reshape(h, -1).astype(np.int32)
    out = []
    for r in range(h):
        x = lines[r]
        up = lines[r - 1] if r else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        p = left + up - up_left
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        kind = r % 5
        pred = [0, left, up, (left + up) // 2, paeth][kind]
        out.append(bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes())
    ihdr = struct.pack(">IIBBBBB", arr.shape[1], h, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"".join(out)))
            + _chunk(b"IEND", b""))


def _plain_pngs() -> dict[str, bytes]:
    rgb = _photo(300, 280, 3)  # 300 scanlines of 841 bytes: 4 stored blocks
    out = {"rgb_all_filters": _filtered_png(rgb, 2), "gray_all_filters": _filtered_png(rgb[:, :, 1], 0),
           "rgba_all_filters": _filtered_png(_photo(40, 30, 4, 3), 6),
           "gray_alpha_all_filters": _filtered_png(_photo(40, 30, 2, 4), 4)}
    for name, arr in {"gray": rgb[:, :, 0], "rgb": rgb, "rgba": _photo(90, 70, 4, 1)}.items():
        out[f"{name}_libpng"] = cv2.imencode(".png", arr[:, :, ::-1] if arr.ndim == 3 else arr)[1].tobytes()
        out[f"{name}_pil"] = _pil_bytes(Image.fromarray(arr))
    out["gray_alpha"] = _pil_bytes(Image.fromarray(rgb).convert("LA"))
    out["one_pixel"] = _pil_bytes(Image.fromarray(rgb[:1, :1]))
    rows = [bytes(range(i, i + 30)) for i in range(6)]
    out["split_idat"] = raw_png(rows, 10, 6, 8, 2, idat_parts=4)
    out["gamma_before"] = raw_png(rows, 10, 6, 8, 2, before=[_chunk(b"gAMA", struct.pack(">I", 45455))])
    return out


def _pil_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(_plain_pngs()))
def test_plain_pngs_decode_to_pils_pixels(name):
    data = _plain_pngs()[name]
    img = decode_png(data)
    assert img is not None
    out, ref = np.asarray(img), _pil(data)
    assert img.mode == Image.open(io.BytesIO(data)).mode
    assert out.dtype == np.uint8 and out.shape == ref.shape and np.array_equal(out, ref)


def test_every_filter_type_is_exercised():
    """The hand-filtered files use all five filter types (libpng and PIL choose fewer), so each is compared above."""
    assert _filters(_plain_pngs()["rgb_all_filters"]) == {0, 1, 2, 3, 4}


def _with_ihdr(data: bytes, **fields) -> bytes:
    w, h, depth, colour, comp, filt, inter = struct.unpack(">IIBBBBB", data[16:29])
    values = {**dict(w=w, h=h, depth=depth, colour=colour, comp=comp, filt=filt, inter=inter), **fields}
    body = struct.pack(">IIBBBBB", *values.values())
    return data[:8] + _chunk(b"IHDR", body) + data[33:]


def _not_taken() -> dict[str, bytes]:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    pil = Image.fromarray(rgb)
    rows = [bytes(30) for _ in range(6)]
    good = raw_png(rows, 10, 6, 8, 2)
    return {
        "palette": _pil_bytes(pil.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)),
        "bilevel": _pil_bytes(pil.convert("1")),
        "rgb16": cv2.imencode(".png", rng.integers(0, 65536, (12, 10, 3), dtype=np.uint16))[1].tobytes(),
        "interlaced": _with_ihdr(good, inter=1),
        "zero_width": _with_ihdr(good, w=0),
        "chunk_after_data": raw_png(rows, 10, 6, 8, 2, after=[_chunk(b"tEXt", b"k\x00v")]),
        "too_few_rows": raw_png(rows[:5], 10, 6, 8, 2),
        "too_many_rows": raw_png(rows + rows[:1], 10, 6, 8, 2),
        "unknown_filter": _with_filter_byte(rows, 5),
        "jpeg": cv2.imencode(".jpg", rgb)[1].tobytes(),
        "empty": b"",
    }


def _with_filter_byte(rows: list[bytes], kind: int) -> bytes:
    stream = zlib.compress(b"".join(bytes([kind]) + r for r in rows))
    ihdr = struct.pack(">IIBBBBB", 10, len(rows), 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


@pytest.mark.parametrize("name", sorted(_not_taken()))
def test_what_it_does_not_take_is_left_to_the_other_decoders(name):
    assert decode_png(_not_taken()[name]) is None


@pytest.mark.parametrize("name", ["rgb_pil", "split_idat", "gray_alpha", "rgba_all_filters"])
def test_damaged_files_give_none_or_pils_own_pixels(name):
    """Cut anywhere, a bit flipped anywhere, bytes appended: never pixels PIL would not give (a flip in an ancillary
    chunk before the data leaves the pixels as they are; the caller's header parse checks those chunks)."""
    data = _plain_pngs()[name]
    ref = _pil(data)
    refused = 0
    for label, damaged in _corruptions(data):
        img = decode_png(damaged)
        if img is None:
            refused += 1
            continue
        assert np.array_equal(np.asarray(img), ref), label
        assert label in ("trailing", "doubled") or not label.startswith("cut"), label
    assert refused > 20


def test_a_stream_with_a_wrong_checksum_is_refused():
    rows = [bytes(range(i, i + 30)) for i in range(6)]
    stream = bytearray(zlib.compress(b"".join(b"\x00" + r for r in rows)))
    stream[-1] ^= 1  # the Adler-32 of the scanlines
    ihdr = struct.pack(">IIBBBBB", 10, 6, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", bytes(stream)) + _chunk(b"IEND", b"")
    assert decode_png(data) is None


def test_the_hand_filtered_files_hold_their_pixels():
    """The test's own filtering is right: PIL and OpenCV (libpng) decode the hand-filtered file to its source."""
    rgb = _photo(50, 40, 3, 5)
    data = _filtered_png(rgb, 2)
    assert np.array_equal(_pil(data), rgb)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[:, :, ::-1], rgb)
    assert np.array_equal(np.asarray(decode_png(data)), rgb)


class _Bits:
    """A deflate bit stream written by hand (LSB first; Huffman codes most significant bit first)."""

    def __init__(self) -> None:
        self.value, self.count = 0, 0

    def put(self, value: int, n: int) -> None:
        self.value |= value << self.count
        self.count += n

    def code(self, code: int, n: int) -> None:
        self.put(int(f"{code:0{n}b}"[::-1], 2), n)

    def literal(self, symbol: int) -> None:  # the fixed Huffman code of a literal/length symbol
        if symbol < 144:
            self.code(0b00110000 + symbol, 8)
        elif symbol < 256:
            self.code(0b110010000 + symbol - 144, 9)
        elif symbol < 280:
            self.code(symbol - 256, 7)
        else:
            self.code(0b11000000 + symbol - 280, 8)

    def done(self) -> bytes:
        return self.value.to_bytes((self.count + 7) // 8, "little")


def _fixed_block_png(length_symbol: int, distance_symbol: int) -> tuple[bytes, int]:
    """A 1-row gray PNG whose stream ends in a fixed-Huffman block holding one match with the given symbols (CRCs
    and Adler-32 right for what a lenient inflater makes of it), and its width. A distance symbol of 29 (the
    largest), 30 or 31 comes after a stored block of 25,000 bytes (read as 24,577 back, it points into them)."""
    if distance_symbol >= 29:
        prefix = bytes([0]) + bytes((i * 7) & 255 for i in range(24999))
        head = b"\x00" + struct.pack("<HH", len(prefix), len(prefix) ^ 0xFFFF) + prefix  # a stored block, not last
        row = prefix + prefix[-24577:][:3]
    else:
        prefix, head = bytes([0, 0x80]), b""
        row = prefix + bytes([0x80]) * (258 if length_symbol >= 285 else 3)
    bits = _Bits()
    bits.put(1, 1)
    bits.put(1, 2)  # the last block, fixed Huffman codes
    if not head:
        bits.literal(0)  # filter byte 0
        bits.literal(0x80)
    bits.literal(length_symbol)
    bits.code(distance_symbol, 5)
    if distance_symbol >= 29:
        bits.put(0, 13)  # the extra bits of the largest distances
    bits.literal(256)
    stream = b"\x78\x01" + head + bits.done() + struct.pack(">I", zlib.adler32(row))
    ihdr = struct.pack(">IIBBBBB", len(row) - 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b""),
            len(row) - 1)


@pytest.mark.parametrize(("length_symbol", "distance_symbol"),
                         [(285, 0), (286, 0), (287, 0), (257, 29), (257, 30), (257, 31)])
def test_streams_zlib_refuses_are_refused(tmp_path, length_symbol, distance_symbol):
    """The length symbols 286 and 287 and the distance symbols 30 and 31 do not exist: zlib (PIL's inflater) calls
    such a stream broken, and so must the fast path (libdeflate would decode them: a broken file would get pixels).
    Length 285 with distance 0, and length 257 with distance 29, are the valid controls."""
    data, width = _fixed_block_png(length_symbol, distance_symbol)
    valid = length_symbol == 285 or distance_symbol == 29
    img = decode_png(data)
    assert (img is not None) == valid
    if valid:
        assert np.asarray(img).shape == (1, width) and np.array_equal(np.asarray(img), _pil(data))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    assert _outcome(load_image, path) == _outcome(load_image_pil, path)
    assert isinstance(_outcome(load_image_pil, path), str) != valid


def _outcome(fn, path):
    try:
        return np.asarray(fn(path)).tobytes()
    except ImageError as exc:
        return str(exc)


def test_an_animated_png_is_left_to_pil(tmp_path):
    """A one-frame APNG whose frame covers the left half: PIL reads the image data as half-width rows; no fast
    decoder may read it as full rows."""
    rows = b"".join(b"\x00" + bytes((x + y) % 5 for x in range(8)) for y in range(4))
    ihdr = struct.pack(">IIBBBBB", 8, 4, 8, 0, 0, 0, 0)
    animation = (_chunk(b"acTL", struct.pack(">II", 1, 0))
                 + _chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 4, 4, 0, 0, 1, 10, 0, 0)))
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + animation + _chunk(b"IDAT", zlib.compress(rows))
            + _chunk(b"IEND", b""))
    assert decode_png(data) is None
    path = tmp_path / "a.png"
    path.write_bytes(data)
    assert png_fast_path(data) is None
    assert _outcome(load_image, path) == _outcome(load_image_pil, path)


def test_a_header_claiming_more_than_the_data_can_hold_allocates_nothing():
    """A small file whose header claims 60,000 x 60,000 RGB (10.8 GB of scanlines): refused before inflating, with
    no attempt to allocate the claimed size (the caller's PIL decides on it)."""
    data = raw_png([bytes(30)] * 6, 10, 6, 8, 2)
    huge = data[:16] + struct.pack(">II", 60000, 60000) + data[24:29]
    huge = huge[:8] + _chunk(b"IHDR", huge[16:29]) + data[33:]
    tracemalloc.start()
    try:
        assert decode_png(huge) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
