"""The few array kernels the metrics are made of, on the device of the evaluation: torch on a GPU, numpy on the CPU.

:mod:`~winclip_lib.evaluation.device_metrics` is written once against :class:`ArrayOps` (plus the operators, slicing,
indexing, ``cumsum(0)``, ``sum()`` and ``max()`` that numpy arrays and torch tensors share). On CUDA every kernel is
torch's. On the CPU they are numpy's, on zero-copy views of the CPU tensors: numpy's sort, binary search and run
lengths measured 2-4x faster than torch's on the 2-core AMD EPYC, and numpy runs each element-wise step on the
calling thread — torch's thread pool, when other processes hold the cores, waited for its threads on each of the
evaluation's small steps and took several times longer.

**Sorted pieces.** The sort of every pixel is most of an evaluation's time, and numpy sorts on one core. On the CPU
:meth:`ArrayOps.sort_pieces` cuts a large array into one piece per core and sorts the pieces at once on threads (numpy
releases the GIL while it sorts); the pieces are never merged (merging them cost more than the sort saved, measured).
:class:`SortedUnion` answers what the metrics ask of "all scores sorted" from the pieces: how many are below a value
(the sum over the pieces of a binary search) and the values at a range of ranks (found by binary search over the
pieces, then only that range merged). Every answer is a count or a value of the array itself, so the metrics are the
same numbers as with one sorted array. On a GPU there is one piece (torch sorts on the whole device).

Measured on the 2-core AMD EPYC (Zen 4, AVX-512): numpy's AVX-512 sort took 19.5 ms for 660,000 float32 values, its
AVX2 sort 3.5 ms (which :mod:`winclip_lib` gives numpy on Zen 4: :mod:`winclip_lib.core.cpus`), torch's 57 ms,
OpenCV's 51 ms. In a whole grid there, with the AVX-512 sort, two pieces at once and one piece gave the same run time
(13.9 s): the core a one-piece sort leaves idle decodes the next unit's images ahead instead.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from winclip_lib.core.cpus import usable_cpus

__all__ = ["ArrayOps", "NumpyOps", "SortedUnion", "TorchOps", "ops_for"]

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

    def sort_pieces(self, x: Array) -> list[Array]:
        """The values of ``x`` as sorted pieces (each ascending, NaN last; together every value once): one piece, or
        on the CPU one per core for a large array (module docstring)."""
        return [self.sort(x)]

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


_SORT_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (its threads, the pool)
_SORT_POOL_LOCK = threading.Lock()


def _sort_pool(threads: int) -> ThreadPoolExecutor:
    """A pool of at least ``threads`` threads for the pieces' sorts (kept for the process)."""
    global _SORT_POOL
    with _SORT_POOL_LOCK:
        if _SORT_POOL is None or _SORT_POOL[0] < threads:
            _SORT_POOL = (threads, ThreadPoolExecutor(threads, thread_name_prefix="winclip-sort"))
        return _SORT_POOL[1]


class NumpyOps(ArrayOps):
    """The CPU's kernels: numpy's, on zero-copy views of CPU tensors.

    Args:
        threads: pieces sorted at once by :meth:`sort_pieces` (default: the CPUs this process may use).
        min_piece: the smallest piece worth a thread of its own (elements).
    """

    def __init__(self, threads: int | None = None, min_piece: int = 1 << 16) -> None:
        self.threads = max(1, int(threads or usable_cpus()))
        self.min_piece = max(1, int(min_piece))

    def sort_pieces(self, x: np.ndarray) -> list[np.ndarray]:
        n = min(self.threads, len(x) // self.min_piece)
        if n <= 1:
            return [np.sort(x)]
        bounds = np.linspace(0, len(x), n + 1).astype(np.int64)
        parts = [x[bounds[i] : bounds[i + 1]] for i in range(n)]
        pool = _sort_pool(n - 1)
        futures = [pool.submit(np.sort, p) for p in parts[1:]]
        return [np.sort(parts[0]), *(f.result() for f in futures)]

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


class SortedUnion:
    """Every value of an array, held as sorted pieces (:meth:`ArrayOps.sort_pieces`), asked what a sorted copy of it
    would answer; T values in all. (Several pieces come only from :class:`NumpyOps`: their searches are numpy's.)

    Args:
        pieces: the sorted pieces. ops: their kernels.
    """

    def __init__(self, pieces: list[Array], ops: ArrayOps) -> None:
        self.pieces = [p for p in pieces if len(p)] or pieces[:1]
        self.ops = ops
        self.size = sum(len(p) for p in pieces)

    def __len__(self) -> int:
        return self.size

    def count_nan(self) -> int:
        """NaN values (they sort last in each piece)."""
        return sum(self.ops.count_nan(p) for p in self.pieces if self.ops.count_nan(p[-1:]))

    def first(self) -> float:
        """The smallest value (T > 0)."""
        return min(float(p[0]) for p in self.pieces)

    def last(self) -> float:
        """The largest value (T > 0, no NaN)."""
        return max(float(p[-1]) for p in self.pieces)

    def searchsorted(self, values: Array, right: bool = False) -> Array:
        """For each value, the elements below it (at or below it with ``right``)."""
        counts = [self.ops.searchsorted(p, values, right) for p in self.pieces]
        return sum(counts[1:], counts[0])

    def _at_rank(self, rank: int) -> Any:
        """The value at ``rank`` (0-based) of the sorted union: the smallest element with more than ``rank`` elements
        at or below it — found in each piece by binary search over its indices, the least of those found."""
        best = None
        for p in self.pieces:
            lo, hi = 0, len(p)  # the first index whose value has more than ``rank`` elements at or below it
            while lo < hi:
                mid = (lo + hi) // 2
                if int(self.searchsorted(p[mid], right=True)) > rank:
                    hi = mid
                else:
                    lo = mid + 1
            if lo < len(p) and (best is None or p[lo] < best):
                best = p[lo]
        return best

    def ranks(self, start: int, stop: int) -> Array:
        """The values at ranks ``start`` .. ``stop - 1`` of the sorted union, ascending (a slice of the sorted copy;
        0 <= start <= stop <= T)."""
        stop = min(stop, self.size)
        start = min(start, stop)
        if len(self.pieces) == 1:
            return self.pieces[0][start:stop]
        if stop == start:
            return self.pieces[0][:0]
        low, high = self._at_rank(start), self._at_rank(stop - 1)
        below = int(self.searchsorted(low))
        inside = [p[np.searchsorted(p, low, side="left") : np.searchsorted(p, high, side="right")]
                  for p in self.pieces]
        merged = np.sort(np.concatenate(inside))
        return merged[start - below : stop - below]


def ops_for(device: torch.device | str) -> ArrayOps:
    """The kernels of ``device``: numpy's for the CPU, torch's for any other."""
    device = torch.device(device)
    return NumpyOps() if device.type == "cpu" else TorchOps(device)
