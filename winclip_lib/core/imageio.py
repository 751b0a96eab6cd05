"""Reading image files: any file PIL or OpenCV decode, as an RGB uint8 array, with a clear error otherwise.

Grayscale is replicated to three channels, alpha is dropped (no compositing), palette images are expanded, 16-bit
images are scaled with round(v / 257), not clipped. EXIF orientation is ignored so that images stay aligned with
their masks. Every failure raises :class:`ImageError` naming the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "ImageError", "image_size", "is_image_file", "load_image", "read_pil"]

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


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR chunk, None if ``path`` is not a PNG."""
    with path.open("rb") as f:
        head = f.read(26)
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


def read_pil(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError as exc:
        raise ImageError(f"image file {path} does not exist") from exc
    except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError) as exc:
        raise _corrupt(path, exc) from exc
    return img


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, shape (H, W, 3), whatever the file holds.

    Grayscale is replicated to three channels, alpha is dropped (no compositing), palette images are expanded,
    16-bit images are scaled with round(v / 257) (not clipped). EXIF orientation is ignored so that images stay
    aligned with their masks. A corrupt or truncated file raises :class:`ImageError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file {path} does not exist")
    img = read_pil(path)  # full decode: catches truncated files, which cv2 would silently pad
    if _png_bit_depth(path) == 16 or img.mode in ("I;16", "I;16B", "I;16L", "I") and img.format != "PNG":
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keeps all 16 bits of RGB PNG/TIFF, unlike PIL
        if raw is not None:
            if raw.ndim == 3:
                raw = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA if raw.shape[2] == 4 else cv2.COLOR_BGR2RGB)
            return _to_rgb(_to_uint8(raw, path))
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
