"""Ground-truth masks: read as bool arrays, checked against their image's size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from winclip_lib.core.imageio import image_size, read_pil
from winclip_lib.datasets.catalog import DatasetError, Sample

__all__ = ["load_mask"]


def load_mask(sample_or_path: Sample | str | Path | None, image_shape: Sequence[int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as a bool array (H, W): any non-zero value is a defect (VisA masks are multi-class
    index images; palette masks are read by index, not colour).

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
    if not Path(mask_path).is_file():
        raise DatasetError(f"mask file {mask_path} does not exist")
    img = read_pil(Path(mask_path))
    arr = np.asarray(img)
    if arr.ndim == 3:
        channels = arr[:, :, :3] if arr.shape[2] >= 3 else arr[:, :, :1]
        arr = channels.any(axis=2)
    mask = arr != 0
    if expected is not None and mask.shape != expected:
        of = f"its image {image_path}" if image_path is not None else "the image"
        raise DatasetError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but {of} is {expected[1]}x{expected[0]}; "
            "the mask does not belong to this image — re-extract the dataset"
        )
    return mask
