"""The pixels of an intact 8-bit PNG, fast: zlib-ng inflates, PIL's PNG decoder unfilters.

Decoding a PNG is two steps: inflating its zlib stream (the concatenated IDAT chunks) into filtered scanlines, and
undoing each scanline's filter. For the photographs of an inspection dataset the first dominates, and zlib's inflate
is slow: on the 2-core AMD EPYC (Zen 4) the 1024 x 1024 RGB PNGs of ``make bench-grid`` (1.9 MB each) inflate in
11.8 ms with zlib 1.2.13 (what PIL and OpenCV link) and in 8.5 ms with zlib-ng (the ``zlib-ng`` package), a fork of
zlib's own code with the same checks. So :func:`decode_png` inflates with zlib-ng, then hands the scanlines —
wrapped as *stored* (uncompressed) deflate blocks, which inflate as a copy — to PIL's own PNG decoder, which
unfilters them exactly as it decodes a PNG file. Both steps run without holding the GIL.

Why not a faster inflater: libdeflate inflates the same files in 6.3 ms, but accepts some streams zlib refuses (the
length symbols 286 and 287, the distance symbols 30 and 31 of the fixed Huffman code): a file PIL calls broken would
get pixels. zlib-ng refuses what zlib refuses, so a file's verdict — pixels or error — stays PIL's.

Inflating is exact (any correct inflater gives the same bytes, checked by the stream's Adler-32) and the unfiltering
is PIL's, so the pixels are PIL's; tested against PIL's full decode on every colour type this takes.

Only the plain case is taken — 8 bits per sample, gray, gray + alpha, RGB or RGBA, not interlaced, not animated,
every IDAT chunk with a correct CRC, a stream that inflates to exactly the image's scanlines — anything else returns
None, and the caller decodes the file the slower way, which gives every other file its pixels or its error.
"""

from __future__ import annotations

import struct

from PIL import Image
from zlib_ng import zlib_ng

__all__ = ["PNG_SIGNATURE", "decode_png", "idat_stream"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: (bit depth, colour type) -> (PIL mode, samples per pixel) of the PNGs :func:`decode_png` takes.
_PLAIN = {(8, 0): ("L", 1), (8, 2): ("RGB", 3), (8, 4): ("LA", 2), (8, 6): ("RGBA", 4)}
_STORED_BLOCK = 65535  # the largest stored deflate block
_CHUNK_HEAD = struct.Struct(">I4s")  # a chunk's length and type
#: Deflate's largest ratio of output to input bytes (a 258-byte match in as little as two bits, about 1032:1).
_DEFLATE_MAX_RATIO = 1032


def idat_stream(data: bytes) -> bytes | None:
    """The concatenated data of a PNG's IDAT chunks, None unless every chunk from the first IDAT on is an IDAT with
    a correct CRC, up to a complete IEND, and no animation chunk comes before (the other chunks before the first IDAT
    are the caller's to check)."""
    view = memoryview(data)
    pos, n = 8, len(data)
    parts: list[memoryview] = []
    while pos + 12 <= n:
        length, kind = _CHUNK_HEAD.unpack_from(data, pos)
        end = pos + 12 + length
        if end > n:
            return None
        if kind == b"IDAT":  # zlib-ng's CRC-32: 14x zlib's speed
            if zlib_ng.crc32(view[pos + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
                return None
            parts.append(view[pos + 8 : end - 4])
        elif kind == b"IEND":
            return b"".join(parts) if parts and length == 0 and data[end - 4 : end] == b"\xaeB`\x82" else None
        elif parts or kind in (b"acTL", b"fcTL"):  # a chunk after the image data, or an animation: the slow path
            return None
        pos = end
    return None


def _stored(raw: bytes) -> bytes:
    """``raw`` as a zlib stream of stored deflate blocks (no compression), Adler-32 included."""
    n = len(raw)
    view = memoryview(raw)
    parts = [b"\x78\x01"]
    for start in range(0, n, _STORED_BLOCK):
        size = min(_STORED_BLOCK, n - start)
        parts.append(struct.pack("<BHH", start + size == n, size, size ^ 0xFFFF))
        parts.append(view[start : start + size])
    parts.append(struct.pack(">I", zlib_ng.adler32(raw)))  # zlib-ng's: 19x zlib's speed
    return b"".join(parts)


def decode_png(data: bytes) -> Image.Image | None:
    """The PNG file ``data`` as a PIL image of mode "L", "LA", "RGB" or "RGBA" (8 bits per sample) when it is a plain
    8-bit PNG whose image data is intact (the module docstring); None otherwise (nothing is raised: the slower
    decoders then give the file's pixels or error)."""
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    plain = _PLAIN.get((depth, colour))
    if plain is None or compression or filtering or interlace or not width or not height:
        return None
    mode, samples = plain
    stream = idat_stream(data)
    if stream is None:
        return None
    expected = height * (1 + width * samples)  # a filter byte, then the samples, per scanline
    if expected > _DEFLATE_MAX_RATIO * len(stream) + 64:  # more than any stream so short inflates to: a broken file
        return None
    try:
        raw = zlib_ng.decompress(stream, bufsize=expected)
    except (zlib_ng.error, MemoryError):
        return None
    if len(raw) != expected:
        return None
    stored = _stored(raw)
    del raw, stream  # at most two copies of the scanlines alive at once (large images)
    try:
        return Image.frombytes(mode, (width, height), stored, "zip", mode)  # PIL's PNG unfiltering
    except (ValueError, OSError):  # an unknown filter type
        return None
