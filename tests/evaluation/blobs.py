"""Random ground-truth masks for the metric tests: 1-3 rectangular blobs on the first half of the images."""

from __future__ import annotations

import numpy as np


def blob_masks(rng: np.random.Generator, n: int, h: int, w: int, single_pixel: bool = False) -> np.ndarray:
    """(n, h, w) bool masks: images ``0 .. n // 2 - 1`` anomalous (1-3 blobs of 1-4 px a side; with ``single_pixel``
    also one lone pixel each, often a region of its own), the rest normal."""
    masks = np.zeros((n, h, w), bool)
    for i in range(n // 2):
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
            dy, dx = rng.integers(1, 5, size=2)
            masks[i, y : y + dy, x : x + dx] = True
        if single_pixel:
            masks[i, rng.integers(0, h), rng.integers(0, w)] = True
    return masks
