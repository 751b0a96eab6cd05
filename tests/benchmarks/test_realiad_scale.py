"""The Real-IAD-sized stand-in of ``python -m benchmarks.realiad_scale`` (here a tiny fraction of it): every object of
the release listed through its split file with the counts asked for, the scored objects with their own images; and
the peak-memory measurement of a subprocess."""

from __future__ import annotations

import sys

from benchmarks import realiad_scale as rs
from winclip_lib.datasets.catalog import REALIAD_CATEGORIES
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.units import plan_units


def test_the_stand_in_lists_every_object_with_its_counts(tmp_path):
    spec = rs.write_standin(tmp_path, size=32, fraction=0.002)
    assert spec["grid"] == {"audiojack": (4, 4, 3), "pcb": (4, 2, 2), "mint": (4, 1, 1)}
    assert spec["listed"] == (4, 4, 3)
    units = plan_units(RunConfig(datasets={"realiad": str(tmp_path)}, shots=(0, 4), seeds=(0,)))
    assert [u.category for u in units] == list(REALIAD_CATEGORIES)
    counts = {u.category: (len(u.test), sum(s.label for s in u.test), len(u.reference_union)) for u in units}
    assert counts["audiojack"] == (7, 3, 4) and counts["mint"] == (2, 1, 4) and counts["zipper"] == (7, 3, 4)
    listed = next(u for u in units if u.category == "zipper")
    assert len({s.image_path.stat().st_ino for s in listed.test}) == 1  # hard links of one image: listed only
    scored = next(u for u in units if u.category == "audiojack")
    assert len({s.image_path.stat().st_ino for s in scored.test}) == 7
    assert rs.write_standin(tmp_path, size=32, fraction=0.002) == spec  # kept


def test_peak_of_measures_the_subprocess_alone():
    small = rs.peak_of([sys.executable, "-c", "x = 1"])
    big = rs.peak_of([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert small["exit_status"] == big["exit_status"] == 0
    assert big["peak_rss_mib"] - small["peak_rss_mib"] > 250
    assert rs.peak_of([sys.executable, "-c", "raise SystemExit(3)"])["exit_status"] == 3



def test_each_grid_run_starts_in_an_empty_folder(tmp_path):
    """A second invocation with the same ``--out`` must run every grid again, not read back the first's results."""
    out = tmp_path / "m" / "memory.json"
    first = rs.fresh_run_dir(out, "audiojack")
    (first / "sub").mkdir(parents=True)
    (first / "run.json").write_text('{"status": "complete"}')
    (tmp_path / "m" / "runs" / "pcb").mkdir()
    again = rs.fresh_run_dir(out, "audiojack")
    assert again == tmp_path / "m" / "runs" / "audiojack" and not again.exists()
    assert (tmp_path / "m" / "runs" / "pcb").is_dir()  # the other runs' folders are left alone
