"""The metrics benchmark (benchmarks/bench_metrics.py) compares the grid's metrics with the numpy reference."""

from __future__ import annotations

import json

from benchmarks import bench_metrics as bench
from winclip_lib.evaluation import metrics as M

TOL = 1e-9


def test_the_benchmark_compares_both_on_the_same_maps(tmp_path):
    """benchmarks/bench_metrics.py (run small): both rows for both AUPRO methods, the same metrics to 1e-9."""
    assert bench.main(["--images", "6", "--size", "48", "--rounds", "2", "--json", str(tmp_path / "m.json")]) == 0
    (result,) = json.loads((tmp_path / "m.json").read_text())["results"]
    assert result["pixels"] == 6 * 48 * 48 and result["regions"] > 0 and result["max_abs_diff"] <= TOL
    assert set(result["rows"]) == {f"{row} | {m}" for row in ("reference", "device") for m in M.AUPRO_METHODS}
    assert all(len(r["all_seconds"]) == 2 and r["ratio"] > 0 for r in result["rows"].values())
