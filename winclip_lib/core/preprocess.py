"""Images (paths, PIL images, uint8 arrays) to the CLIP-normalised (B, 3, S, S) batch.

The geometry (resize the whole image, or open_clip's shorter-side resize and centre crop) is
:class:`~winclip_lib.core.geometry.Geometry`'s; files are read with :func:`~winclip_lib.core.imageio.load_image`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

from winclip_lib.core.geometry import Geometry
from winclip_lib.core.imageio import load_image

__all__ = ["ImageLike", "normalize", "normalize_into", "preprocess", "to_rgb_array"]

ImageLike = Any  # str | Path | PIL.Image.Image | np.ndarray (H, W, 3) or (H, W) uint8


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """One image as an (H, W, 3) uint8 RGB array; paths are read with :func:`~winclip_lib.core.imageio.load_image`."""
    if isinstance(image, str | Path):
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


def _normalize_arithmetic(batch_uint8: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32: ``(x / 255 - mean) / std`` by torch's float32 arithmetic, element
    by element (the values :func:`normalize`'s tables hold)."""
    x = torch.as_tensor(batch_uint8).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    return (x - m) / s


@functools.lru_cache(maxsize=16)
def _table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: the normalised value of each byte in each channel."""
    every_byte = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, None, :, None], (1, 1, 256, 3))
    return _normalize_arithmetic(np.ascontiguousarray(every_byte), mean, std)[0, :, 0, :].numpy()


@functools.lru_cache(maxsize=16)
def _device_table(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """:func:`_table` on a device, copied there once (a copy from pageable memory waits for the device's queued
    work: once per batch, it would hold the host until the previous batch was encoded)."""
    with torch.inference_mode(False):  # a normal tensor, whatever mode the first call ran in
        return torch.from_numpy(_table(mean, std)).to(device)


def normalize(batch_uint8: np.ndarray | torch.Tensor, mean: Sequence[float] = OPENAI_DATASET_MEAN,
              std: Sequence[float] = OPENAI_DATASET_STD) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 CLIP-normalised: ``(x / 255 - mean) / std`` in float32, on the
    device the batch is on (a torch tensor on a GPU is normalised there; anything else on the CPU).

    A byte has 256 values, so each channel's results are computed once, by torch's float32 arithmetic on the CPU,
    into a table that is then looked up: bit-identical to computing every pixel on the CPU (the same operations on
    the same operands), on a GPU too (whose division by a scalar multiplies by its reciprocal instead). On the CPU
    the lookup runs on the calling thread alone — torch's element-wise operations on a batch would start its
    intra-op threads, which wait for cores the image decoders hold (measured on 2 cores: 16 instead of 2 ms a
    batch of 8); on a GPU the batch crosses the bus as bytes, a quarter of its float32 size.
    """
    on_device = isinstance(batch_uint8, torch.Tensor) and batch_uint8.device.type != "cpu"
    x = batch_uint8 if on_device else np.asarray(batch_uint8)
    if x.dtype not in (np.uint8, torch.uint8) or x.ndim != 4 or x.shape[3] != 3:
        raise ValueError(f"normalize expects a (B, S, S, 3) uint8 batch, got {x.dtype} of shape {tuple(x.shape)}")
    if on_device:
        lookup = _device_table(tuple(float(v) for v in mean), tuple(float(v) for v in std), x.device)
        return torch.stack([lookup[c][x[..., c].long()] for c in range(3)], dim=1)
    return torch.from_numpy(normalize_into(x, np.empty((x.shape[0], 3, *x.shape[1:3]), np.float32), mean, std))


def normalize_into(images: np.ndarray, out: np.ndarray, mean: Sequence[float] = OPENAI_DATASET_MEAN,
                   std: Sequence[float] = OPENAI_DATASET_STD) -> np.ndarray:
    """:func:`normalize`'s numbers written into ``out``: (..., S, S, 3) uint8 -> (..., 3, S, S) float32 (one image
    or a batch; ``out`` may be a view, e.g. one image's place in a batch). Returns ``out``."""
    images = np.asarray(images)
    expected = (*images.shape[:-3], 3, *images.shape[-3:-1])
    if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"normalize_into expects (..., S, S, 3) uint8 images, got {images.dtype} of shape "
                         f"{images.shape}")
    if out.dtype != np.float32 or out.shape != expected:
        raise ValueError(f"normalize_into writes float32 of shape {expected}, got {out.dtype} of shape {out.shape}")
    table = _table(tuple(float(v) for v in mean), tuple(float(v) for v in std))
    for c in range(3):
        np.take(table[c], images[..., c], out=out[..., c, :, :], mode="wrap")  # a byte indexes 0..255: no wrap
    return out


def preprocess(images: ImageLike | Sequence[ImageLike], size: int = 240, mode: str = "resize",
               mean: Sequence[float] = OPENAI_DATASET_MEAN, std: Sequence[float] = OPENAI_DATASET_STD
               ) -> torch.Tensor:
    """Images -> (B, 3, size, size) CLIP-normalised float32 batch, through ``Geometry(size, mode)``.

    Raises:
        ValueError: an empty list, an unknown mode, or an image that is not RGB/gray uint8.
        ImageError: a file that cannot be read.
    """
    if isinstance(images, str | Path | Image.Image) or (isinstance(images, np.ndarray) and images.ndim <= 3):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("no images given: pass at least one image")
    geometry = Geometry(size, mode)
    return normalize(np.stack([geometry.image(to_rgb_array(im)) for im in images]), mean, std)
