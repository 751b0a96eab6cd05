"""The grid benchmark (benchmarks/bench_grid.py): the set has MVTec-AD's layout and counts with every file distinct,
and a run reports the real figures of the CLI it ran — stages that add up to the run, every image encoded — for this
checkout and, measured from outside, for a checkout from before stage timings. No timed assertions."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import cv2
import pytest

from benchmarks import bench_grid
from benchmarks.grid_data import MANIFEST, TRAIN_IMAGES, build_grid_set, planned_counts
from winclip_lib.datasets.counts import EXPECTED_COUNTS
from winclip_lib.datasets.scan import load_split
from winclip_lib.experiments.stages import STAGES

REPO = Path(__file__).resolve().parents[2]
#: The code before stage timings were recorded (the issue's baseline), when this clone has it.
BASELINE_COMMIT = "cb34c84"
SCALE, SIDE = 0.01, 48
CATEGORIES = ("bottle", "carpet", "screw")


@pytest.fixture(scope="module")
def grid_set(tmp_path_factory):
    return build_grid_set(tmp_path_factory.mktemp("grid") / "set", SCALE, SIDE, workers=2, categories=CATEGORIES)


def test_the_set_has_mvtec_counts_layout_and_distinct_files(grid_set):
    root, manifest = grid_set
    counts = planned_counts(SCALE, CATEGORIES)
    assert set(counts) == set(CATEGORIES) and len(planned_counts(SCALE)) == 15
    assert set(planned_counts(SCALE)) == set(EXPECTED_COUNTS["mvtec"])
    assert planned_counts(1.0)["screw"] == (41, 119) and sum(map(sum, planned_counts(1.0).values())) == 1725
    digests = set()
    n_images = 0
    for category, (good, bad) in counts.items():
        test = load_split("mvtec", root, category, "test")
        train = load_split("mvtec", root, category, "train")
        assert (sum(s.label == 0 for s in test), sum(s.label == 1 for s in test), len(train)) == (good, bad,
                                                                                                  TRAIN_IMAGES)
        for s in test + train:
            digests.add(hashlib.sha256(s.image_path.read_bytes()).hexdigest())
            n_images += 1
            if s.label == 1:
                mask = cv2.imread(str(s.mask_path), cv2.IMREAD_GRAYSCALE)
                assert mask.shape == (SIDE, SIDE) and mask.max() == 255, s.mask_path
    assert len(digests) == n_images == manifest["images"]
    assert manifest["test_images"] == sum(map(sum, counts.values()))
    # a set whose manifest matches is reused as it is
    stamp = (root / MANIFEST).stat().st_mtime_ns
    assert build_grid_set(root, SCALE, SIDE, categories=CATEGORIES)[1] == manifest
    assert (root / MANIFEST).stat().st_mtime_ns == stamp


def _check_side(side: dict, manifest: dict, own_stages: bool) -> None:
    stages = side["stages"]
    seconds = stages["seconds"]
    assert set(seconds) == set(STAGES)
    # the stages (other included) add up to the run, which is inside the process's wall time
    assert sum(seconds.values()) == pytest.approx(stages["total_seconds"], abs=0.02 + 0.002 * len(STAGES))
    assert 0 < stages["total_seconds"] < side["wall_seconds"]
    assert seconds["encode"] > 0 and seconds["metrics"] > 0 and seconds["scoring"] > 0
    # every test image once per unit, plus the 17 distinct references of each category's draws (k 1 2 4, 5 seeds)
    per_unit = [u["n_test"] + u["n_references"] for u in side["units"]]
    assert len(per_unit) == len(CATEGORIES) and stages["images"] == sum(per_unit)
    assert sum(u["n_test"] for u in side["units"]) == manifest["test_images"]
    assert side["encoded"] == stages["images"]  # a new cache, every file distinct: every image encoded
    if own_stages:
        assert side["stages_measured"] == "run.json"
    else:
        assert side["stages_measured"].startswith("from outside")


def test_one_run_side_by_side_with_a_checkout_from_before_stage_timings(grid_set, tmp_path):
    root, manifest = grid_set
    baseline = tmp_path / "baseline"
    try:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline), BASELINE_COMMIT],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        baseline = None  # a shallow clone: this checkout alone
    try:
        out = tmp_path / "bench.json"
        argv = ["--scale", str(SCALE), "--side", str(SIDE), "--data", str(root), "--work", str(tmp_path / "runs"),
                "--out", str(out), "--categories", ",".join(CATEGORIES)]
        argv += ["--baseline", str(baseline)] if baseline else []
        assert bench_grid.main(argv) == 0
        report = json.loads(out.read_text())
        _check_side(report["ours"], manifest, own_stages=True)
        if baseline:
            _check_side(report["baseline"], manifest, own_stages=False)
            assert report["baseline"]["stages"]["images"] == report["ours"]["stages"]["images"]
        table = bench_grid.format_table(report["ours"], report["baseline"])
        assert "images / s" in table and ("speed-up" in table) == bool(baseline)
    finally:
        if baseline:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline)],
                           capture_output=True)


def test_each_side_imports_its_own_checkout_and_keeps_the_users_packages(monkeypatch, tmp_path):
    """The user's PYTHONPATH entries (e.g. packages installed with ``--target``) stay on each side's path, after the
    side's checkout; this repository is dropped from the baseline's path, so the baseline never imports our code."""
    site, base = tmp_path / "site", tmp_path / "base"
    monkeypatch.setitem(bench_grid.USER_ENV, "PYTHONPATH", os.pathsep.join([str(bench_grid.REPO), str(site), ""]))
    assert bench_grid.side_pythonpath(base).split(os.pathsep) == [str(base), str(site)]
    assert bench_grid.side_pythonpath(bench_grid.REPO).split(os.pathsep) == [str(bench_grid.REPO), str(site)]
    monkeypatch.delitem(bench_grid.USER_ENV, "PYTHONPATH")
    assert bench_grid.side_pythonpath(base) == str(base)
