"""Images (paths, PIL images, uint8 arrays) to the CLIP-normalised (B, 3, S, S) batch.

Default: resize the whole image to S x S (bicubic, no crop), so the anomaly map lines up with the full mask.
``mode="crop"`` reproduces open_clip's own transform instead (shorter side to S, then a centre crop).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

from winclip_lib.datasets import load_image, resize_image

ImageLike = Any  # str | Path | PIL.Image.Image | np.ndarray (H, W, 3) or (H, W) uint8


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """One image as an (H, W, 3) uint8 RGB array; paths are read with :func:`winclip_lib.datasets.load_image`."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"array images must be uint8, got {image.dtype}")
        if image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"array images must be (H, W, 3) RGB or (H, W) gray, got shape {image.shape}")
        return image
    raise TypeError(f"cannot read an image from {type(image).__name__}; pass a path, a PIL image or a uint8 array")


def resize_rgb(image: np.ndarray, size: int = 240, mode: str = "resize") -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8, bicubic. mode "resize" (no crop) or "crop" (open_clip's)."""
    if mode == "resize":
        return resize_image(image, size, interpolation="pil_bicubic")
    pil = Image.fromarray(image)
    if mode == "crop":
        w, h = pil.size
        scale = size / min(w, h)
        pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        w, h = pil.size
        left, top = (w - size) // 2, (h - size) // 2
        pil = pil.crop((left, top, left + size, top + size))
    else:
        raise ValueError(f"mode must be 'resize' or 'crop', got {mode!r}")
    return np.asarray(pil)


def normalize(batch_uint8: np.ndarray | torch.Tensor, mean: Sequence[float] = OPENAI_DATASET_MEAN,
              std: Sequence[float] = OPENAI_DATASET_STD) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 CLIP-normalised."""
    x = torch.as_tensor(np.asarray(batch_uint8)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    return (x - m) / s


def preprocess(images: ImageLike | Sequence[ImageLike], size: int = 240, mode: str = "resize",
               mean: Sequence[float] = OPENAI_DATASET_MEAN, std: Sequence[float] = OPENAI_DATASET_STD
               ) -> torch.Tensor:
    """Images -> (B, 3, size, size) CLIP-normalised float32 batch.

    Raises:
        ValueError: an empty list, or an image that is not RGB/gray uint8.
    """
    if isinstance(images, (str, Path, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim <= 3):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("no images given: pass at least one image")
    return normalize(np.stack([resize_rgb(to_rgb_array(im), size, mode) for im in images]), mean, std)
