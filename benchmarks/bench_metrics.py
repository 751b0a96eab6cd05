"""The metrics step of the grid, before and after: the numpy reference against the device code, side by side.

    python -m benchmarks.bench_metrics [--images 100 400] [--size 240] [--settings 16] [--rounds 3]
                                       [--device cpu|cuda] [--threads N] [--json PATH]

Per category size (``--images`` test images of ``--size`` pixels square): masks with 1-3 defects of varied size on
half the images and smooth float32 maps that respond to them (``bench_aupro.synthetic_category``), two map sets
(a grid's settings give different maps). Rows, timed in interleaved rounds (median of ``--rounds``):

- ``reference``: what the grid did at cb34c84 for each (k, seed): the maps as per-image numpy arrays stacked, then
  :func:`winclip_lib.evaluation.metrics.evaluate_category` (argsort of every pixel; regions labelled each time);
- ``device``: :func:`winclip_lib.evaluation.device_metrics.category_metrics` on the maps tensor (on ``--device``)
  against :class:`~winclip_lib.evaluation.device_metrics.PixelTargets` prepared once per category;

Each row for the exact AUPRO and the 200-threshold variant (presets). Per category: ``--settings`` evaluations (the
default grid: 1 zero-shot + 3 shots x 5 seeds = 16) plus, for the device rows, the one preparation of the masks; the
ratio reference / device, in wall time (median per evaluation) and in CPU time of the process (all threads; steadier
than wall time on a shared machine, but blind to what threads gain). The largest difference of any metric between the
rows is printed (to 1e-9 expected). Timings on a shared machine are noisy: the rows are interleaved so that each
ratio is measured under the same load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_aupro import synthetic_category
from benchmarks.hardware import cpu_name
from winclip_lib.evaluation import device_metrics as D
from winclip_lib.evaluation import metrics as M


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_category(n_images: int, size: int, settings: int, rounds: int, device: torch.device) -> dict:
    """Timings (seconds) and the largest metric difference for one category size; see the module docstring."""
    masks, maps = synthetic_category(n_images, size, seed=0)
    variants = [maps, maps + np.random.default_rng(1).normal(0, 0.05, maps.shape).astype(np.float32)]
    labels = masks.any(axis=(1, 2))
    scores = [v.max(axis=(1, 2)).astype(np.float64) for v in variants]
    per_image = [list(v) for v in variants]  # as the old grid held them: one numpy array per image
    on_device = [torch.from_numpy(v).to(device) for v in variants]

    t0 = time.perf_counter()
    targets = D.PixelTargets.from_masks(masks, device=device)
    _sync(device)
    prepare = time.perf_counter() - t0

    rows = ("reference", "device")
    times: dict[tuple[str, str], list[float]] = {(r, m): [] for r in rows for m in M.AUPRO_METHODS}
    cpu_times: dict[tuple[str, str], list[float]] = {(r, m): [] for r in rows for m in M.AUPRO_METHODS}
    worst = 0.0
    for r in range(rounds):
        for method in M.AUPRO_METHODS:
            v = r % len(variants)
            values = {}
            for row in rows:
                t0, c0 = time.perf_counter(), time.process_time()
                if row == "reference":
                    values[row] = M.evaluate_category(labels, scores[v], masks, np.stack(per_image[v]),
                                                      aupro_method=method)
                else:
                    values[row] = D.category_metrics(labels, scores[v], on_device[v], targets, aupro_method=method)
                    _sync(device)
                times[row, method].append(time.perf_counter() - t0)
                cpu_times[row, method].append(time.process_time() - c0)
            ref = values["reference"]
            for got in values.values():
                worst = max([worst, *(abs(got[k] - ref[k]) for k in M.METRIC_NAMES)])
    out = {"n_images": n_images, "size": size, "pixels": int(masks.size), "defect_pixels": int(masks.sum()),
           "regions": targets.n_regions, "settings": settings, "prepare_seconds": prepare, "max_abs_diff": worst,
           "rows": {}}
    for method in M.AUPRO_METHODS:
        ref_eval = statistics.median(times["reference", method])
        ref_cpu = statistics.median(cpu_times["reference", method])
        for row in rows:
            per_eval = statistics.median(times[row, method])
            cpu_eval = statistics.median(cpu_times[row, method])
            extra = 0.0 if row == "reference" else prepare
            per_cat = settings * per_eval + extra
            out["rows"][f"{row} | {method}"] = {
                "seconds_per_evaluation": per_eval, "cpu_seconds_per_evaluation": cpu_eval,
                "seconds_per_category": per_cat, "ratio": (settings * ref_eval) / per_cat,
                "cpu_ratio": (settings * ref_cpu) / (settings * cpu_eval + extra),
                "all_seconds": times[row, method], "all_cpu_seconds": cpu_times[row, method]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, nargs="+", default=[100, 400])
    p.add_argument("--size", type=int, default=240)
    p.add_argument("--settings", type=int, default=16, help="evaluations per category (default grid: 16)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cpu = cpu_name()
    print(f"CPU {cpu}, {torch.get_num_threads()} torch threads; device {device}; "
          f"numpy {np.__version__}, torch {torch.__version__}")
    results = []
    for n in args.images:
        r = bench_category(n, args.size, args.settings, args.rounds, device)
        results.append(r)
        print(f"\n{n} images of {args.size}x{args.size} ({r['pixels']:,} pixels, {r['defect_pixels']:,} defect, "
              f"{r['regions']} regions); {args.settings} evaluations per category; masks prepared once in "
              f"{r['prepare_seconds']:.3f} s; largest metric difference {r['max_abs_diff']:.1e}")
        print(f"  {'row | AUPRO':38s} {'s/eval':>7s} {'s/category':>10s} {'ratio':>6s} {'CPU s/eval':>10s} "
              f"{'CPU ratio':>9s}")
        for name, row in r["rows"].items():
            print(f"  {name:38s} {row['seconds_per_evaluation']:7.3f} {row['seconds_per_category']:10.2f} "
                  f"{row['ratio']:5.1f}x {row['cpu_seconds_per_evaluation']:10.3f} {row['cpu_ratio']:8.1f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu, "device": str(device), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
