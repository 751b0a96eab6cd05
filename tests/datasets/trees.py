"""Tiny dataset folders in the official layouts (MVTec-AD / MPDD, VisA raw with its split CSV), for the tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 32  # non-square, to catch transposed shapes


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def write_mask(path: Path, mask: np.ndarray, value: int = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * value).save(path)
    return path


def rand_rgb(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def box_mask(y0: int, x0: int, h: int = H, w: int = W, s: int = 5) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0 : y0 + s, x0 : x0 + s] = True
    return m


def make_mvtec_tree(
    root: Path, categories=("bottle", "carpet"), n_train=3, n_good=2, defects=("broken", "crack"), suffix="_mask"
) -> Path:
    """MVTec layout: train/good, test/good, test/<defect>, ground_truth/<defect>/<name><suffix>.png."""
    rng = np.random.default_rng(0)
    for c in categories:
        for i in range(n_train):
            write_rgb(root / c / "train" / "good" / f"{i:03d}.png", rand_rgb(rng))
        for i in range(n_good):
            write_rgb(root / c / "test" / "good" / f"{i:03d}.png", rand_rgb(rng))
        for d in defects:
            for i in range(2):
                write_rgb(root / c / "test" / d / f"{i:03d}.png", rand_rgb(rng))
                write_mask(root / c / "ground_truth" / d / f"{i:03d}{suffix}.png", box_mask(3 + i, 4))
    return root


def make_visa_raw(root: Path, objects=("candle", "pcb1")) -> Path:
    """Official VisA layout with JPEG images, multi-class masks (values 1, 2) and split_csv/1cls.csv."""
    rng = np.random.default_rng(1)
    rows = []
    for obj in objects:
        for i in range(5):
            p = write_rgb(root / obj / "Data" / "Images" / "Normal" / f"{i:04d}.JPG", rand_rgb(rng))
            rows.append([obj, "train" if i < 3 else "test", "normal", str(p.relative_to(root)), ""])
        for i in range(3):
            p = write_rgb(root / obj / "Data" / "Images" / "Anomaly" / f"{i:03d}.JPG", rand_rgb(rng))
            m = np.zeros((H, W), np.uint8)
            m[2:6, 2:6] = 1
            m[10:12, 20:25] = 2
            mp = root / obj / "Data" / "Masks" / "Anomaly" / f"{i:03d}.png"
            mp.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(mp)
            rows.append([obj, "test", "anomaly", str(p.relative_to(root)), str(mp.relative_to(root))])
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    with (root / "split_csv" / "1cls.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["object", "split", "label", "image", "mask"])
        w.writerows(rows)
    return root
