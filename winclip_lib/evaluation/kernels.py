"""The few array kernels the metrics are made of, on the device of the evaluation: torch on a GPU, numpy on the CPU.

:mod:`~winclip_lib.evaluation.device_metrics` is written once against :class:`ArrayOps` (plus the operators, slicing,
indexing, ``cumsum(0)``, ``sum()`` and ``max()`` that numpy arrays and torch tensors share). On CUDA every kernel is
torch's. On the CPU they are numpy's, on zero-copy views of the CPU tensors: numpy's sort, binary search and run
lengths measured 2-4x faster than torch's on the 2-core AMD EPYC, and numpy runs each element-wise step on the
calling thread — torch's thread pool, when other processes hold the cores, waited for its threads on each of the
evaluation's small steps and took several times longer. (Sorting all pixels in one piece per thread, the pieces
merged by numpy's timsort, was slower there too, so the CPU sorts in one piece; the sort is most of the time.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["ArrayOps", "NumpyOps", "TorchOps", "ops_for"]

Array = Any  # a 1-D numpy array (CPU) or torch tensor (GPU)


class ArrayOps:
    """Kernels on one device's 1-D arrays. Integer results are int64, float ones keep the input's dtype."""

    def asarray(self, t: torch.Tensor) -> Array:
        """A tensor on this device as this backend's array (no copy)."""
        raise NotImplementedError

    def from_numpy(self, a: np.ndarray) -> Array:
        raise NotImplementedError

    def to_numpy(self, x: Array) -> np.ndarray:
        raise NotImplementedError

    def sort(self, x: Array) -> Array:
        """Values ascending, NaN last."""
        raise NotImplementedError

    def sort_with_order(self, x: Array) -> tuple[Array, Array]:
        """(values ascending, their indices in ``x``)."""
        raise NotImplementedError

    def searchsorted(self, sorted_seq: Array, values: Array, right: bool = False) -> Array:
        """For each value, the elements of ``sorted_seq`` below it (at or below it with ``right``)."""
        raise NotImplementedError

    def run_lengths(self, x: Array) -> tuple[Array, Array]:
        """(distinct values, how many times each occurs) of a sorted array, ascending."""
        raise NotImplementedError

    def repeat(self, x: Array, counts: Array) -> Array:
        """Element i of ``x`` repeated ``counts[i]`` times."""
        raise NotImplementedError

    def float64(self, x: Array) -> Array:
        raise NotImplementedError

    def suffix_sums(self, w: Array) -> Array:
        """(P + 1,): element i the sum of ``w[i:]`` added from the end (``w[P-1] + w[P-2] + ...``), 0 at P."""
        raise NotImplementedError

    def count_nan(self, x: Array) -> int:
        raise NotImplementedError


class NumpyOps(ArrayOps):
    """The CPU's kernels: numpy's, on zero-copy views of CPU tensors."""

    def asarray(self, t: torch.Tensor) -> np.ndarray:
        return t.numpy()

    def from_numpy(self, a: np.ndarray) -> np.ndarray:
        return a

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return x

    def sort(self, x: np.ndarray) -> np.ndarray:
        return np.sort(x)

    def sort_with_order(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(x)
        return x[order], order

    def searchsorted(self, sorted_seq: np.ndarray, values: np.ndarray, right: bool = False) -> np.ndarray:
        return np.searchsorted(sorted_seq, values, side="right" if right else "left").astype(np.int64, copy=False)

    def run_lengths(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(x) == 0:
            return x, np.zeros(0, dtype=np.int64)
        starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
        return x[starts], np.diff(np.append(starts, len(x))).astype(np.int64, copy=False)

    def repeat(self, x: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.repeat(x, counts)

    def float64(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64)

    def suffix_sums(self, w: np.ndarray) -> np.ndarray:
        return np.append(np.cumsum(w[::-1])[::-1], 0.0)

    def count_nan(self, x: np.ndarray) -> int:
        return int(np.isnan(x).sum())


class TorchOps(ArrayOps):
    """A GPU's kernels: torch's, on its device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def asarray(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def from_numpy(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device)

    def to_numpy(self, x: torch.Tensor) -> np.ndarray:
        return x.cpu().numpy()

    def sort(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x).values

    def sort_with_order(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, order = torch.sort(x)
        return values, order

    def searchsorted(self, sorted_seq: torch.Tensor, values: torch.Tensor, right: bool = False) -> torch.Tensor:
        return torch.searchsorted(sorted_seq, values, right=right)

    def run_lengths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.unique_consecutive(x, return_counts=True)

    def repeat(self, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return torch.repeat_interleave(x, counts)

    def float64(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()

    def suffix_sums(self, w: torch.Tensor) -> torch.Tensor:
        return torch.cat([w.flip(0).cumsum(0).flip(0), w.new_zeros(1)])

    def count_nan(self, x: torch.Tensor) -> int:
        return int(torch.isnan(x).sum())


def ops_for(device: torch.device | str) -> ArrayOps:
    """The kernels of ``device``: numpy's for the CPU, torch's for any other."""
    device = torch.device(device)
    return NumpyOps() if device.type == "cpu" else TorchOps(device)
