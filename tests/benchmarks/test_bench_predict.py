"""The predict benchmark (benchmarks/bench_predict.py): the command a user runs on a folder, each side from its own
checkout, the whole command timed around the scoring that run.json records."""

from __future__ import annotations

import json

from benchmarks import bench_predict as bench


def test_both_sides_score_the_folder_and_write_the_same_overlays(tmp_path):
    out = tmp_path / "p.json"
    argv = ["--scale", "0.05", "--side", "96", "--work", str(tmp_path), "--baseline", str(bench.REPO), "--json",
            str(out)]
    assert bench.main(argv) == 0
    sides = json.loads(out.read_text())["sides"]
    ours, again = sides["ours"], sides["baseline"]
    assert ours["images"] == again["images"] == len(list((tmp_path / "predict-runs" / "ours-0" / "out" / "overlays")
                                                         .glob("*.png"))) > 0
    assert ours["overlay_bytes"] == again["overlay_bytes"]  # the same checkout twice: the same files
    assert 0 < ours["scoring_seconds"] < ours["wall_seconds"]
    assert abs(ours["rest_seconds"] - (ours["wall_seconds"] - ours["scoring_seconds"])) < 1e-9
