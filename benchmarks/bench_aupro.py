"""Time the exact AUPRO on a synthetic category against the 200-threshold approximation of public reproductions.

    python -m benchmarks.bench_aupro [--n-images 100] [--size 240] [--seed 0] [--repeats 3]

The exact AUPRO is the one the grid computes (:mod:`winclip_lib.evaluation.device_metrics`, the masks prepared once,
timed apart), beside the numpy reference (:mod:`winclip_lib.evaluation.metrics`). ``time_aupro()`` is importable by
the main speed benchmark. ``benchmarks/bench_metrics.py`` times every metric, old and new, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from winclip_lib.evaluation import metrics as reference
from winclip_lib.evaluation.device_metrics import PixelTargets, aupro


def synthetic_category(n_images: int = 100, size: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Masks (N, size, size) bool — half the images with 1-3 defects of varied size — and smooth float32 maps
    (N, size, size) that respond to the defects, like a real detector's."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_images, size, size), bool)
    for i in range(n_images // 2):
        m = np.zeros((size, size), np.uint8)
        for _ in range(rng.integers(1, 4)):
            centre = (int(rng.integers(10, size - 10)), int(rng.integers(10, size - 10)))
            axes = (int(rng.integers(2, size // 8)), int(rng.integers(2, size // 8)))
            cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        masks[i] = m > 0
    noise = rng.normal(0.0, 1.0, masks.shape).astype(np.float32)
    maps = np.stack([cv2.GaussianBlur(n, (0, 0), 4.0) for n in noise]) * 4.0
    maps += np.stack([cv2.GaussianBlur(m.astype(np.float32), (0, 0), 3.0) for m in masks]) * 0.6
    return masks, maps.astype(np.float32)


def aupro_thresholds(masks: np.ndarray, maps: np.ndarray, n_thresholds: int = 200, fpr_limit: float = 0.3) -> float:
    """The common approximation: ``n_thresholds`` evenly spaced thresholds, PRO mean over regions, points with
    FPR <= limit kept, FPR rescaled to [0, 1] by its own range, then the trapezoid (no interpolation at the limit).
    It differs from the exact value and is here only for comparison."""
    from scipy import ndimage

    labelled = [ndimage.label(m, structure=np.ones((3, 3))) for m in masks]
    regions = [(i, lab == k) for i, (lab, n) in enumerate(labelled) for k in range(1, n + 1)]
    negatives = ~masks
    n_neg = negatives.sum()
    fprs, pros = [], []
    for t in np.linspace(maps.min(), maps.max(), n_thresholds):
        pred = maps > t
        pros.append(np.mean([pred[i][r].sum() / r.sum() for i, r in regions]))
        fprs.append((pred & negatives).sum() / n_neg)
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= fpr_limit
    fprs, pros = fprs[keep], pros[keep]
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    order = np.argsort(fprs)
    return float(np.trapezoid(pros[order], fprs[order]))


def time_aupro(n_images: int = 100, size: int = 240, seed: int = 0, repeats: int = 3, approx: bool = True) -> dict:
    """Seconds (best of ``repeats``) and values of the exact AUPRO (the grid's, with the masks' preparation timed
    apart, and the numpy reference's) and, with ``approx``, of the 200-threshold approximation, on
    :func:`synthetic_category`."""
    masks, maps = synthetic_category(n_images, size, seed)
    t0 = time.perf_counter()
    targets = PixelTargets.from_masks(masks)
    prepare = time.perf_counter() - t0
    times, ref_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        exact = aupro(maps, targets)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = reference.aupro(masks, maps)
        ref_times.append(time.perf_counter() - t0)
    out = {
        "n_images": n_images,
        "size": size,
        "pixels": int(masks.size),
        "cpu_count": os.cpu_count(),
        "exact_seconds": min(times),
        "exact_aupro": exact,
        "prepare_seconds": prepare,
        "reference_seconds": min(ref_times),
        "reference_aupro": ref,
    }
    if approx:
        t0 = time.perf_counter()
        out["approx200_aupro"] = aupro_thresholds(masks, maps)
        out["approx200_seconds"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-images", type=int, default=100)
    p.add_argument("--size", type=int, default=240)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    r = time_aupro(args.n_images, args.size, args.seed, args.repeats)
    print(f"{r['n_images']} images of {r['size']}x{r['size']} ({r['pixels']:,} pixels), {r['cpu_count']} CPUs")
    print(f"exact AUPRO@0.3     {r['exact_aupro']:.6f}  in {r['exact_seconds']:.3f} s (best of {args.repeats}; "
          f"masks prepared once in {r['prepare_seconds']:.3f} s)")
    print(f"numpy reference      {r['reference_aupro']:.6f}  in {r['reference_seconds']:.3f} s")
    print(f"200-threshold approx {r['approx200_aupro']:.6f}  in {r['approx200_seconds']:.3f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
