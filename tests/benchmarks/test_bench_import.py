"""The import benchmark (benchmarks/bench_import.py): each side is imported from its own checkout, and the figures
say what the collector did."""

from __future__ import annotations

import json

from benchmarks import bench_import as bench


def test_the_import_makes_no_collector_pass_and_is_timed_from_this_checkout(tmp_path):
    out = tmp_path / "i.json"
    assert bench.main(["--repeats", "1", "--json", str(out)]) == 0
    ours = json.loads(out.read_text())["sides"]["ours"]
    assert ours["passes"][2] == 0 and ours["collector_on"] is True  # no full pass over what the load made
    assert ours["objects"] > 100_000 and 0 <= ours["collector_seconds"] < ours["seconds"] < 120
    assert ours["checkout"] == str(bench.REPO)
