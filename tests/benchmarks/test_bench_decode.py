"""The decode benchmark (benchmarks/bench_decode.py): every row turns the same files into the same model inputs."""

from __future__ import annotations

import json

import cv2
import numpy as np

from benchmarks import bench_decode as bench


def test_every_row_decodes_the_same_inputs(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / "set" / "test" / "good").mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 256, (50 + i, 70, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "set" / "test" / "good" / f"{i:03d}.png"), img)
    out = tmp_path / "d.json"
    assert bench.main(["--images", str(tmp_path / "set"), "--files", "3", "--rounds", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["files"] == 3 and set(result["rows"]) == set(bench.ROWS)
    assert len({r["sha256"] for r in result["rows"].values()}) == 1  # the same bytes from every decoder
    assert all(r["single_s"] > 0 and r["parallel_s"] > 0 for r in result["rows"].values())
    assert set(result["inflate_seconds"]) == {"zlib", "zlib-ng"}
