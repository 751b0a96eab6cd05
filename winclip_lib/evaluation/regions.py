"""Defect regions of ground-truth masks: the 8-connected components that the per-region overlap (PRO) averages over.

Regions are numbered across all masks of a category, so one flat array of region ids covers the pooled pixels of the
category in the order the pixel metrics use: image after image, each row-major.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

__all__ = ["label_regions"]


def label_regions(masks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """8-connected regions of every mask, numbered across them.

    Args:
        masks: (H_i, W_i) bool masks (an (N, H, W) array is N masks); sizes may differ between masks.

    Returns:
        labels (sum H_i W_i,) int32 — each mask's pixels flattened row-major, masks concatenated in order; 0 for a
        defect-free pixel, r for a pixel of region r of the category (1 .. R) — and sizes (R + 1,) int64, the pixel
        count of each region (sizes[0] unused, 0).
    """
    labels: list[np.ndarray] = []
    sizes = [np.zeros(1, dtype=np.int64)]
    offset = 0
    for m in masks:
        if not m.any():
            labels.append(np.zeros(m.size, dtype=np.int32))
            continue
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        lab = lab.reshape(-1)
        sizes.append(np.bincount(lab, minlength=n)[1:].astype(np.int64))
        labels.append(np.where(lab > 0, lab + offset, 0).astype(np.int32))
        offset += n - 1
    flat = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int32)
    return flat, np.concatenate(sizes)
