"""``winclip predict`` on a folder, timed as a user runs it, beside another checkout in the same run.

    python -m benchmarks.bench_predict                              # this checkout alone
    python -m benchmarks.bench_predict --baseline /tmp/base         # and another checkout, side by side

**The folder**: one category of :mod:`benchmarks.grid_data`'s MVTec-size set (default ``screw`` at half of its test
images: 80 PNGs of 1024 x 1024, built once under ``build/bench/``), four of its training images as the normal
references. **The runs**: each side runs ``python -m winclip_lib.cli predict FOLDER --class-name C --normal REFS
--model M --pretrained none --device D --cache-dir none --no-progress --out OUT`` in a subprocess from its checkout,
``--repeats`` times, the sides interleaved; the median is reported. **The figures**: the process's wall time (what the
user waits for: imports, scoring and every output — the overlays, the page), the seconds its scoring recorded in
``run.json`` (``stages.total_seconds``), the rest (start-up and the outputs), and images per second over the wall time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_grid import USER_ENV, side_pythonpath
from benchmarks.grid_data import build_grid_set
from winclip_lib.core.backbone import TINY_MODEL

__all__ = ["main", "predict_once"]

REPO = Path(__file__).resolve().parents[1]


def predict_once(checkout: Path, images: Path, refs: list[Path], class_name: str, work: Path,
                 args: argparse.Namespace) -> dict[str, Any]:
    """One ``winclip predict`` of ``checkout``: {"wall_seconds", "scoring_seconds", "images", "overlays"}."""
    shutil.rmtree(work, ignore_errors=True)
    out = work / "out"
    cmd = [sys.executable, "-m", "winclip_lib.cli", "predict", str(images), "--class-name", class_name, "--normal",
           *map(str, refs), "--model", args.model, "--pretrained", "none", "--device", args.device, "--cache-dir",
           "none", "--no-progress", "--out", str(out)]
    env = {**USER_ENV, "PYTHONPATH": side_pythonpath(checkout), "HF_HUB_OFFLINE": "1"}
    print(f"cd {shlex.quote(str(checkout))} && {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=checkout, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    info = json.loads((out / "run.json").read_text())
    stages = info.get("stages") or {}
    overlays = sorted((out / "overlays").glob("*.png"))
    return {"wall_seconds": wall, "scoring_seconds": stages.get("total_seconds"), "images": len(overlays),
            "overlay_bytes": sum(p.stat().st_size for p in overlays)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, help="another checkout, run side by side")
    p.add_argument("--category", default="screw", help="the set's category to score (default screw)")
    p.add_argument("--scale", type=float, default=0.5, help="fraction of the category's test images (default 0.5)")
    p.add_argument("--side", type=int, default=1024, help="image side of the set (default 1024)")
    p.add_argument("--model", default=TINY_MODEL)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1, help="runs per side, interleaved; the median is reported")
    p.add_argument("--work", type=Path, default=REPO / "build" / "bench", help="where the set and the runs go")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    data, _ = build_grid_set(args.work / f"predict-data-{args.category}-{args.scale:g}-{args.side}", scale=args.scale,
                             side=args.side, categories=[args.category])
    images = data / args.category / "test"
    refs = sorted((data / args.category / "train" / "good").glob("*.png"))[:4]
    class_name = args.category.replace("_", " ")
    sides = {"ours": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in sides}
    for r in range(max(1, args.repeats)):
        for name, checkout in sides.items():
            runs[name].append(predict_once(checkout, images, refs, class_name,
                                           args.work / "predict-runs" / f"{name}-{r}", args))
            print(f"[{name}] run {r + 1}: {runs[name][-1]['wall_seconds']:.1f} s", flush=True)
    figures = {}
    for name in sides:
        rows = runs[name]
        wall = statistics.median(x["wall_seconds"] for x in rows)
        scoring = statistics.median(x["scoring_seconds"] or 0.0 for x in rows)
        figures[name] = {"wall_seconds": wall, "scoring_seconds": scoring, "rest_seconds": wall - scoring,
                         "images": rows[0]["images"], "images_per_second": rows[0]["images"] / wall,
                         "overlay_bytes": rows[0]["overlay_bytes"], "runs": rows}
    print(f"\n{figures['ours']['images']} images of {images} ({args.model}, {args.device})")
    print(f"{'':34s}" + "".join(f"{n:>12s}" for n in sides) + ("    speed-up" if args.baseline else ""))
    for key, label in (("wall_seconds", "whole command (s)"), ("scoring_seconds", "scoring, run.json (s)"),
                       ("rest_seconds", "start-up and outputs (s)"), ("overlay_bytes", "overlay PNGs (bytes)")):
        line = f"{label:34s}" + "".join(f"{figures[n][key]:12.2f}" if key != "overlay_bytes"
                                        else f"{figures[n][key]:12d}" for n in sides)
        if args.baseline and key != "overlay_bytes":
            line += f"{figures['baseline'][key] / max(figures['ours'][key], 1e-9):11.2f}x"
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"images": str(images), "sides": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
