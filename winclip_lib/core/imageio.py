"""Reading image files: any file PIL or OpenCV decode, as an RGB uint8 array, with a clear error otherwise.

Grayscale is replicated to three channels, alpha is dropped (no compositing), palette images are expanded, 16-bit
images are scaled with round(v / 257), not clipped. EXIF orientation is ignored so that images stay aligned with
their masks. Every failure raises :class:`ImageError` naming the file.

**Two decoders, one result.** A well-formed PNG is decoded without holding the GIL (decoder threads then run in
parallel with each other and with the encoder): a plain 8-bit one inflated by zlib-ng and unfiltered by PIL's PNG
decoder (:func:`~winclip_lib.core.png.decode_png`), any other by OpenCV. Every other file, and any PNG that is not
beyond doubt complete and intact, goes through PIL's full decode (:func:`load_image_pil`, the reference), so every
error and every pixel stays what PIL gives. "Beyond doubt" (:func:`png_fast_path`): PIL parses the header chunks
(checking their CRCs) and finds a still PNG with no animation chunk; after the header, the file holds only IDAT
chunks and then IEND, each complete and with a correct CRC; and the decoder decodes it. PNG is lossless, so the
decoders agree pixel for pixel (tested on every colour type and bit depth against :func:`load_image_pil`, and on
truncated and bit-flipped files). JPEG and the other formats stay with PIL: JPEG decoders may round differently, and
features must not move.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from winclip_lib.core.digests import read_file
from winclip_lib.core.png import PNG_SIGNATURE, decode_png

__all__ = ["IMAGE_EXTENSIONS", "ImageError", "image_size", "is_image_file", "load_image", "load_image_pil",
           "load_rgb", "png_fast_path", "read_mask_file", "read_pil"]

#: File name extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class ImageError(ValueError):
    """An image file is missing, corrupt, or holds pixels that cannot be read as 8-bit RGB."""


def is_image_file(path: Path) -> bool:
    """A visible file whose extension is one of :data:`IMAGE_EXTENSIONS`."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _corrupt(path: Path, exc: BaseException | str) -> ImageError:
    return ImageError(
        f"cannot read image {path}: {exc}; the file is corrupt, truncated or not an image (re-extract or re-download "
        "it)"
    )


def _png_bit_depth(path: Path, data: bytes | None = None) -> int | None:
    """Bit depth from a PNG's IHDR chunk (of ``data``, the file's bytes, when given), None if it is not a PNG."""
    if data is None:
        with path.open("rb") as f:
            head = f.read(26)
    else:
        head = data[:26]
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack("B", head[24:25])[0]


def _to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    """Scale an integer array of any bit depth to uint8 (16-bit: round(v / 257), exact inverse of v * 257)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageError(f"image {path} holds values outside 0..65535; cannot convert it to 8-bit RGB")
        return np.rint(arr.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < 0 or np.nanmax(arr) > 1):
            raise ImageError(f"float image {path} holds values outside 0..1; cannot convert it to 8-bit RGB")
        return np.rint(np.nan_to_num(arr) * 255.0).astype(np.uint8)
    raise ImageError(f"image {path} has an unsupported pixel type {arr.dtype}")


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def read_pil(path: Path, data: bytes | None = None) -> Image.Image:
    """PIL's full decode of ``path`` (of ``data``, its bytes, when given: the file is not read again)."""
    try:
        img = Image.open(path if data is None else io.BytesIO(data))
        img.load()
    except FileNotFoundError as exc:
        raise ImageError(f"image file {path} does not exist") from exc
    except UnidentifiedImageError as exc:  # PIL names what it opened: the file, not the bytes in memory
        raise _corrupt(path, f"cannot identify image file {os.fspath(path)!r}") from exc
    except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError) as exc:
        raise _corrupt(path, exc) from exc
    return img


def _png_tail_intact(data: bytes, start: int) -> bool:
    """Whether ``data`` from ``start`` (the first IDAT chunk) holds only complete IDAT chunks and then a complete
    IEND with its CRC (trailing bytes after IEND are ignored, as every decoder does). The IDAT CRCs are libpng's
    to check (a bad one is an error, and OpenCV then returns nothing); only chunk headers are read here, so little
    of the decode holds the GIL."""
    pos, n = start, len(data)
    seen_idat = False
    while pos + 12 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n or (kind != b"IDAT" and kind != b"IEND"):
            return False
        if kind == b"IEND":
            return seen_idat and length == 0 and data[end - 4 : end] == b"\xaeB`\x82"  # the CRC of "IEND"
        seen_idat = True
        pos = end
    return False


def _first_idat(data: bytes) -> int | None:
    """Offset of the first IDAT chunk of a PNG, None if the chunk chain breaks before it."""
    pos, n = 8, len(data)
    while pos + 8 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IDAT":
            return pos
        pos += 12 + length
    return None


def _fast_decode(data: bytes, img: Image.Image | None = None) -> Image.Image | np.ndarray | None:
    """:func:`png_fast_path`'s decode: a PIL image from :func:`~winclip_lib.core.png.decode_png`, an RGB-order array
    from OpenCV, or None."""
    if data[:8] != PNG_SIGNATURE:
        return None
    if img is None:
        try:
            img = Image.open(io.BytesIO(data))  # the header chunks, CRC-checked, as the PIL path reads them
        except Exception:  # whatever PIL makes of it, the PIL path will say again
            return None
    if img.format != "PNG" or getattr(img, "is_animated", False):
        return None
    decoded = decode_png(data)  # a plain 8-bit PNG: zlib-ng and PIL's unfiltering
    if decoded is not None:
        return decoded if decoded.size == img.size else None
    start = _first_idat(data)
    if start is None or b"acTL" in data[:start] or not _png_tail_intact(data, start):  # (an APNG's frame: PIL's)
        return None
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)  # BGR(A) order
    if raw is None or raw.shape[:2] != (img.size[1], img.size[0]):
        return None
    return raw if raw.ndim == 2 else cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA if raw.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def png_fast_path(data: bytes, img: Image.Image | None = None) -> np.ndarray | None:
    """The pixels of PNG bytes, decoded without holding the GIL, when the file is beyond doubt complete and intact
    (the module docstring), else None — then PIL must decide: (H, W) gray or (H, W, 3) RGB or (H, W, 4) RGBA (a
    gray + alpha file as gray), 16 bits kept. ``img``: PIL's header parse of ``data``, when already made."""
    decoded = _fast_decode(data, img)
    if isinstance(decoded, Image.Image):
        decoded = np.array(decoded)  # writable, as OpenCV's arrays are
    if decoded is not None and decoded.ndim == 3 and decoded.shape[2] == 2:
        return decoded[:, :, 0]
    return decoded


def _bgr_to_rgb(raw: np.ndarray, path: Path) -> np.ndarray:
    """OpenCV's (H, W), (H, W, 3) BGR or (H, W, 4) BGRA array of any depth -> RGB uint8 (H, W, 3)."""
    if raw.ndim == 3:
        raw = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA if raw.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return _to_rgb(_to_uint8(raw, path))


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, shape (H, W, 3), whatever the file holds.

    Grayscale is replicated to three channels, alpha is dropped (no compositing), palette images are expanded,
    16-bit images are scaled with round(v / 257) (not clipped). EXIF orientation is ignored so that images stay
    aligned with their masks. A corrupt or truncated file raises :class:`ImageError` naming it. An intact PNG is
    decoded without holding the GIL (:func:`png_fast_path`); everything else as :func:`load_image_pil`, whose
    pixels and errors these are.
    """
    rgb = load_rgb(path)
    return np.array(rgb) if isinstance(rgb, Image.Image) else rgb


def load_rgb(path: str | Path) -> np.ndarray | Image.Image:
    """:func:`load_image`'s pixels, as the PIL RGB image the PNG decoder made when it made one (to be resized by PIL
    without a copy into an array and back: 20.5 instead of 22.2 ms for a 1024 x 1024 photo decoded and resized,
    ``python -m benchmarks.bench_decode``), else as the (H, W, 3) array."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file {path} does not exist")
    try:
        data = read_file(path)  # its content digest remembered from these bytes
    except OSError as exc:
        raise _corrupt(path, exc) from exc
    decoded = _fast_decode(data)
    if isinstance(decoded, Image.Image):
        if decoded.mode == "RGB":
            return decoded
        decoded = np.array(decoded.convert("RGB") if decoded.mode in ("L", "LA") else decoded)
    if decoded is not None:
        return _to_rgb(_to_uint8(decoded, path))
    return load_image_pil(path, data)


def load_image_pil(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """:func:`load_image` through PIL's full decode (OpenCV only for 16-bit files, whose depth PIL would cut): the
    reference decoder, and the path of every file that is not an intact PNG. ``data``: the file's bytes, already
    read (then decoded from them, the file not read again)."""
    path = Path(path)
    if data is None and not path.is_file():
        raise ImageError(f"image file {path} does not exist")
    img = read_pil(path, data)  # full decode: catches truncated files, which cv2 would silently pad
    if _png_bit_depth(path, data) == 16 or img.mode in ("I;16", "I;16B", "I;16L", "I") and img.format != "PNG":
        # keeps all 16 bits of RGB PNG/TIFF, unlike PIL
        raw = (cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if data is None
               else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))
        if raw is not None:
            return _bgr_to_rgb(raw, path)
        if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise _corrupt(path, "OpenCV cannot decode this 16-bit image")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _to_rgb(_to_uint8(np.asarray(img), path))
    if img.mode == "F":
        return _to_rgb(_to_uint8(np.asarray(img), path))
    if img.mode == "L":
        return _to_rgb(np.asarray(img))
    if img.mode != "RGB":
        img = img.convert("RGBA" if img.mode in ("P", "PA", "LA") else "RGB")
    return _to_rgb(np.asarray(img))


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file read from its header only (cheap)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError as exc:
        raise ImageError(f"image file {path} does not exist") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise _corrupt(path, exc) from exc
    return h, w


def _mask_from_pil(path: Path, data: bytes | None = None) -> np.ndarray:
    arr = np.asarray(read_pil(path, data))
    if arr.ndim == 3:
        channels = arr[:, :, :3] if arr.shape[2] >= 3 else arr[:, :, :1]
        arr = channels.any(axis=2)
    return arr != 0


def read_mask_file(path: str | Path) -> np.ndarray:
    """One mask file as a bool array (H, W): any non-zero value (in any colour channel; alpha ignored) is True.

    Palette masks are read by index, not colour, and 16-bit colour masks as PIL reads them (PIL's pixels decide):
    those, and every file that is not an intact 8-bit PNG (:func:`png_fast_path`), go through PIL; an intact PNG of
    another kind is decoded by OpenCV without holding the GIL, to the same array. A corrupt file raises
    :class:`ImageError` naming it.
    """
    path = Path(path)
    data = None
    if path.is_file():
        try:
            data = read_file(path)  # its content digest remembered from these bytes
        except OSError as exc:
            raise _corrupt(path, exc) from exc
        # IHDR: bit depth at byte 24, colour type at 25 (3 = palette: indices, which OpenCV would expand)
        plain = len(data) > 26 and data[24] <= 8 and data[25] in (0, 2, 4, 6)
        decoded = _fast_decode(data) if plain else None
        if decoded is not None:
            raw = np.asarray(decoded)
            if raw.ndim == 3:  # colour channels only: RGB(A), or the gray of gray + alpha
                return raw[:, :, : 3 if raw.shape[2] >= 3 else 1].any(axis=2)
            return raw != 0
    return _mask_from_pil(path, data)
