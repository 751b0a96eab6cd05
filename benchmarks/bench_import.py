"""What every ``winclip`` command pays before its work: loading the package (torch, open_clip and the library), beside
another checkout in the same run.

    python -m benchmarks.bench_import                        # this checkout alone
    python -m benchmarks.bench_import --baseline /tmp/base   # and another checkout, side by side

Each side imports ``winclip_lib.cli.main`` (what the ``winclip`` command loads) in a fresh interpreter of its own,
``--repeats`` times, the sides interleaved (ours, baseline, ours, ...) so that the load of a shared machine falls on
both alike. Printed per side: the median seconds of the import and of the garbage collector's work within it (timed
by :data:`gc.callbacks`), its passes per generation and the objects left tracked; then the ratio. The package pauses
the collector while it loads (:mod:`winclip_lib`): the objects the import makes are kept, so the passes over them
were wasted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["import_once", "main"]

REPO = Path(__file__).resolve().parents[1]

_WORKER = r"""
import gc, json, time
spent, started = [0.0], [0.0]
def clock(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        spent[0] += time.perf_counter() - started[0]
gc.callbacks.append(clock)
before = [g["collections"] for g in gc.get_stats()]
t0 = time.perf_counter()
import winclip_lib.cli.main
seconds = time.perf_counter() - t0
after = [g["collections"] for g in gc.get_stats()]
print(json.dumps({"seconds": seconds, "collector_seconds": spent[0],
                  "passes": [a - b for a, b in zip(after, before)], "objects": len(gc.get_objects()),
                  "collector_on": gc.isenabled(), "package": winclip_lib.__file__}))
"""

def import_once(checkout: Path) -> dict[str, Any]:
    """One import of ``winclip_lib.cli.main`` from ``checkout`` in a new interpreter: {"seconds", "collector_seconds"
    (the garbage collector's share of them), "passes" (its passes per generation during the import), "objects"
    (tracked after it), "collector_on", "package" (the file imported, which must be the checkout's)}."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", _WORKER], cwd=checkout, env=env, capture_output=True, text=True,
                         check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not Path(result["package"]).resolve().is_relative_to(checkout.resolve()):
        raise RuntimeError(f"{checkout} imported winclip_lib from {result['package']}, not from itself")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, help="another checkout, imported side by side")
    p.add_argument("--repeats", type=int, default=5, help="imports per side (default 5); the median is reported")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    sides = {"ours": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for _ in range(max(1, args.repeats)):
        for name, checkout in sides.items():
            runs[name].append(import_once(checkout))
    result: dict[str, Any] = {"repeats": args.repeats, "sides": {}}
    for name, checkout in sides.items():
        rows = runs[name]
        result["sides"][name] = {
            "checkout": str(checkout),
            "seconds": statistics.median(r["seconds"] for r in rows),
            "collector_seconds": statistics.median(r["collector_seconds"] for r in rows),
            "all_seconds": [round(r["seconds"], 3) for r in rows],
            "passes": rows[-1]["passes"],
            "objects": rows[-1]["objects"],
            "collector_on": rows[-1]["collector_on"],
        }
    figures = result["sides"]
    print(f"{'':24s}" + "".join(f"{name:>14s}" for name in sides))
    print(f"{'import (median, s)':24s}" + "".join(f"{figures[n]['seconds']:14.3f}" for n in sides))
    print(f"{'of which the collector':24s}" + "".join(f"{figures[n]['collector_seconds']:14.3f}" for n in sides))
    print(f"{'its passes (gen 0/1/2)':24s}" + "".join(f"{'/'.join(map(str, figures[n]['passes'])):>14s}"
                                                     for n in sides))
    print(f"{'objects tracked after':24s}" + "".join(f"{figures[n]['objects']:14d}" for n in sides))
    if "baseline" in sides:
        ratio = figures["baseline"]["seconds"] / figures["ours"]["seconds"]
        result["speedup"] = ratio
        print(f"speed-up: {ratio:.2f}x ({args.repeats} interleaved imports per side, medians)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
