"""Few-shot reference images: which k normal training images a (k, seed) setting uses.

Two ways to draw (:data:`REFERENCE_SAMPLINGS`), both over the category's normal training images in the order of
:func:`~winclip_lib.datasets.scan.load_split` and both the same on every machine:

- ``"permutation"`` (the default): ``numpy.random.default_rng(seed).permutation(n)[:k]`` — k distinct images, and
  nested: for one seed the k = 1 draw is the first image of the k = 2 draw, and so on;
- ``"with_replacement"``: ``torch.randint(0, n, (k,))`` from a generator seeded with ``seed`` — k independent uniform
  draws, so an image can repeat, as the AnomalyCLIP authors' WinCLIP code draws them (it seeds its global generator
  once, so its draws also depend on the order the categories are run in; here each (category, seed) draws alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from winclip_lib.core.choices import unknown_choice
from winclip_lib.datasets.catalog import DatasetError, Sample
from winclip_lib.datasets.scan import load_split

__all__ = ["REFERENCE_SAMPLINGS", "draw_indices", "sample_references"]

REFERENCE_SAMPLINGS = ("permutation", "with_replacement")


def draw_indices(n: int, k: int, seed: int, sampling: str = "permutation") -> list[int]:
    """Indices of the k references among n candidates (see the module docstring)."""
    if sampling == "permutation":
        if k > n:
            raise ValueError(f"cannot draw {k} distinct references from {n} images")
        return [int(i) for i in np.random.default_rng(seed).permutation(n)[:k]]
    if sampling == "with_replacement":
        g = torch.Generator().manual_seed(int(seed))
        return [int(i) for i in torch.randint(0, n, (k,), generator=g)]
    raise unknown_choice("reference sampling", sampling, REFERENCE_SAMPLINGS)


def sample_references(dataset: str, root: str | Path, category: str, k: int, seed: int,
                      sampling: str = "permutation", train: Sequence[Sample] | None = None) -> list[Sample]:
    """Draw ``k`` normal training images of a category (see the module docstring). ``train``: the category's training
    split when it is listed already (``load_split(dataset, root, category, "train")``; listed here otherwise).

    Raises:
        ValueError: k is not a positive integer, or an unknown ``sampling``.
        DatasetError: fewer normal training images than k (without replacement), or none at all.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer number of reference images, got {k!r}")
    train = load_split(dataset, root, category, "train") if train is None else train
    normal = [s for s in train if s.label == 0]
    if (sampling == "permutation" and k > len(normal)) or not normal:
        raise DatasetError(
            f"k={k} reference images requested but {dataset}/{category} has only {len(normal)} normal training "
            f"images under {Path(root) / category}"
        )
    return [normal[i] for i in draw_indices(len(normal), int(k), seed, sampling)]
