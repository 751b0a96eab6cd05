"""Ground-truth masks: read as bool arrays, checked against their image's size.

A mask is a file, or a folder of mask files (MVTec LOCO AD: one file per annotated defect region, in a folder named
after the image), merged into one: a pixel is anomalous when it is non-zero in any of the files.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from winclip_lib.core.imageio import ImageError, image_size, is_image_file, read_mask_file
from winclip_lib.datasets.catalog import DatasetError, Sample

__all__ = ["has_defect", "is_empty_mask", "load_mask", "mask_files"]


def mask_files(mask_path: Path) -> list[Path]:
    """The files of a mask: the file itself, or the image files of a mask folder (sorted by name)."""
    if not mask_path.is_dir():
        return [mask_path]
    return sorted((p for p in mask_path.iterdir() if is_image_file(p)), key=lambda p: p.name)


@functools.lru_cache(maxsize=65536)
def _nonzero(path: str, mtime_ns: int, size: int) -> bool:
    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(f"cannot read mask {path}: the file is corrupt or not an image (re-extract the dataset)")
    return bool(np.any(arr))


def has_defect(mask_path: str | Path) -> bool:
    """Whether a label image marks any pixel (for layouts whose only labels are their masks: KolektorSDD,
    KolektorSDD2). Decoded once per file version (path, size and modification time), then remembered."""
    st = Path(mask_path).stat()
    return _nonzero(str(mask_path), st.st_mtime_ns, st.st_size)


def is_empty_mask(mask_path: str | Path) -> bool:
    """Whether a mask (a file, or a folder of files) marks no pixel at all, read as :func:`load_mask` reads it (any
    non-zero value is a defect; palette masks by index). A folder without mask files counts as empty.

    Raises:
        ImageError: a mask file that cannot be decoded.
    """
    return not any(read_mask_file(f).any() for f in mask_files(Path(mask_path)))


def load_mask(sample_or_path: Sample | str | Path | None, image_shape: Sequence[int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as a bool array (H, W): any non-zero value is a defect (VisA masks are multi-class
    index images; palette masks are read by index, not colour); a mask folder is the union of its files.

    ``sample_or_path`` is a :class:`Sample` or a mask path. A normal sample (``mask_path`` None, or a None path)
    gives an all-False mask of ``image_shape`` (read from the sample's image header when not given). When the
    image's (H, W) is known (``image_shape`` or the sample's image), a mask of another size raises
    :class:`DatasetError` naming both files.
    """
    image_path: Path | None = None
    if isinstance(sample_or_path, Sample):
        image_path = sample_or_path.image_path
        mask_path = sample_or_path.mask_path
    else:
        mask_path = None if sample_or_path is None else Path(sample_or_path)
    if image_shape is None and image_path is not None:
        image_shape = image_size(image_path)
    expected = None if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
    if mask_path is None:
        if expected is None:
            raise ValueError("load_mask of a normal sample needs image_shape (or a Sample with an image path)")
        return np.zeros(expected, dtype=bool)
    mask_path = Path(mask_path)
    if not mask_path.exists():
        raise DatasetError(f"mask file {mask_path} does not exist")
    files = mask_files(mask_path)
    if not files:
        raise DatasetError(f"mask folder {mask_path} holds no mask files; re-extract the dataset")
    mask: np.ndarray | None = None
    for file in files:
        part = read_mask_file(file)
        if expected is not None and part.shape != expected:
            of = f"its image {image_path}" if image_path is not None else "the image"
            raise DatasetError(
                f"mask {file} is {part.shape[1]}x{part.shape[0]} (WxH) but {of} is {expected[1]}x{expected[0]}; "
                "the mask does not belong to this image — re-extract the dataset"
            )
        if mask is not None and part.shape != mask.shape:
            raise DatasetError(f"the mask files of {mask_path} have different sizes; re-extract the dataset")
        mask = part if mask is None else mask | part
    assert mask is not None
    return mask
