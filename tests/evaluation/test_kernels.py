"""The sorted pieces of the CPU's kernels answer as one sorted copy would: counts below values and values at ranks,
on random, tie-heavy, tiny and empty arrays, in float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest

from winclip_lib.evaluation.kernels import NumpyOps, SortedUnion


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
@pytest.mark.parametrize("levels", [None, 5, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sorted_pieces_answer_as_one_sorted_array(threads, levels, dtype):
    rng = np.random.default_rng(threads * 10 + (levels or 0))
    for n in (0, 1, 2, 5, 50, 1001):
        x = rng.normal(size=n)
        if levels is not None:
            x = np.round(x * levels) / levels if levels > 1 else np.zeros(n)
        x = x.astype(dtype)
        ops = NumpyOps(threads=threads, min_piece=1)
        pieces = ops.sort_pieces(x)
        assert len(pieces) == max(1, min(threads, n))
        assert sum(len(p) for p in pieces) == n
        union, ref = SortedUnion(pieces, ops), np.sort(x)
        assert len(union) == n
        if n:
            assert union.first() == ref[0] and union.last() == ref[-1]
        probes = np.concatenate([x, x + dtype(1e-3), np.array([-np.inf, np.inf], dtype=dtype)]).astype(dtype)
        for right in (False, True):
            side = "right" if right else "left"
            np.testing.assert_array_equal(union.searchsorted(probes, right), np.searchsorted(ref, probes, side))
        for start in range(0, n + 2, max(1, n // 7)):
            for stop in (start, start + 1, start + 3, n, n + 4):
                got = union.ranks(start, stop)
                np.testing.assert_array_equal(got, ref[start:stop])
                assert got.dtype == ref.dtype


def test_large_arrays_are_cut_into_one_piece_per_thread_only_when_worth_it():
    x = np.random.default_rng(0).random(100_000).astype(np.float32)
    assert len(NumpyOps(threads=2).sort_pieces(x)) == 1  # 100k < 2 pieces of 64k
    pieces = NumpyOps(threads=2, min_piece=1000).sort_pieces(x)
    assert len(pieces) == 2 and all(np.all(np.diff(p) >= 0) for p in pieces)
    np.testing.assert_array_equal(np.sort(np.concatenate(pieces)), np.sort(x))


def test_nan_values_are_counted_in_every_piece():
    x = np.array([1.0, np.nan, 2.0, np.nan, 0.5, 3.0, np.nan], dtype=np.float32)
    ops = NumpyOps(threads=3, min_piece=1)
    assert SortedUnion(ops.sort_pieces(x), ops).count_nan() == 3
    assert SortedUnion(ops.sort_pieces(x[[0, 2, 4]]), ops).count_nan() == 0
