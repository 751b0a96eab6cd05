"""The MVTec-size synthetic set of ``bench_grid``: MVTec-AD's 15 categories with its per-category test counts, in its
layout, every image file distinct, masks in place.

A handful of base images per kind (a texture and an object, from :func:`winclip_lib.datasets.synthetic.make_synthetic`
at the chosen side) are fanned out to every file of the set: each file is its base with 64 random pixels nudged by
one grey level (seeded by the file's name, so the same set comes out byte for byte on every machine), PNG-encoded
with OpenCV in a thread pool (the encoder releases the GIL). An anomalous image's mask is its base's mask.

``scale`` keeps that fraction of each category's normal and anomalous test images (at least one of each); the 25
normal training images per category stay (the grid draws its references, 17 distinct per category with the default
k and seeds, from them).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from winclip_lib.datasets.counts import EXPECTED_COUNTS
from winclip_lib.datasets.scan import load_split
from winclip_lib.datasets.synthetic import DEFECT_TYPES, make_synthetic

__all__ = ["MANIFEST", "TEXTURES", "TRAIN_IMAGES", "build_grid_set", "planned_counts"]

#: MVTec-AD's texture categories (drawn from the synthetic "tiles"; the objects from "disc").
TEXTURES = ("carpet", "grid", "leather", "tile", "wood")
#: Normal training images per category.
TRAIN_IMAGES = 25
#: Written last into the set's root: its parameters (a set whose manifest matches is reused, not rebuilt).
MANIFEST = "bench_grid_set.json"
#: Pixels nudged per file (what makes every file distinct).
NUDGED = 64
_FORMAT = 1


def planned_counts(scale: float, categories: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
    """(normal, anomalous) test images per MVTec category at ``scale`` (at least one of each); ``categories``: a
    subset (default all 15)."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    mvtec = EXPECTED_COUNTS["mvtec"]
    unknown = sorted(set(categories or ()) - set(mvtec))
    if unknown:
        raise ValueError(f"unknown MVTec-AD categories {unknown}; expected some of {', '.join(mvtec)}")
    return {c: (max(1, round(n.test_normal * scale)), max(1, round(n.test_anomalous * scale)))
            for c, n in mvtec.items() if categories is None or c in categories}


def _nudged_png(base: np.ndarray, name: str, seed: int) -> bytes:
    """``base`` (H, W, 3) RGB with :data:`NUDGED` pixels moved by one grey level, as PNG bytes."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    img = base.copy()
    h, w = img.shape[:2]
    ys, xs = rng.integers(0, h, NUDGED), rng.integers(0, w, NUDGED)
    img[ys, xs] = np.where(img[ys, xs] < 255, img[ys, xs] + 1, img[ys, xs] - 1)
    ok, data = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"could not encode {name}")
    return data.tobytes()


def _bases(tmp: Path, side: int, seed: int) -> dict[str, dict[str, list]]:
    """Per synthetic kind: normal images (train and test) and (defect, image, mask bytes) of the anomalous ones."""
    root = make_synthetic(tmp / "bases", ("tiles", "disc"), n_train=4, n_test_good=2, n_test_bad=6, size=side,
                          seed=seed)
    out: dict[str, dict[str, list]] = {}
    for kind in ("tiles", "disc"):
        samples = load_split("mvtec", root, kind, "train") + load_split("mvtec", root, kind, "test")
        read = lambda p: cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # noqa: E731
        out[kind] = {
            "normal": [read(s.image_path) for s in samples if s.label == 0],
            "anomalous": [(s.defect, read(s.image_path), s.mask_path.read_bytes()) for s in samples if s.label == 1],
        }
    return out


def _jobs(bases: dict[str, dict[str, list]], counts: dict[str, tuple[int, int]]
          ) -> list[tuple[str, np.ndarray, bytes | None]]:
    """(relative path, base image, mask bytes or None) of every file of the set."""
    jobs: list[tuple[str, np.ndarray, bytes | None]] = []
    for category, (n_good, n_bad) in counts.items():
        kind = bases["tiles" if category in TEXTURES else "disc"]
        for i in range(TRAIN_IMAGES):
            jobs.append((f"{category}/train/good/{i:03d}.png", kind["normal"][i % len(kind["normal"])], None))
        for i in range(n_good):
            jobs.append((f"{category}/test/good/{i:03d}.png", kind["normal"][(i + 3) % len(kind["normal"])], None))
        per_defect = dict.fromkeys(DEFECT_TYPES, 0)
        for j in range(n_bad):
            defect, image, mask = kind["anomalous"][j % len(kind["anomalous"])]
            idx = per_defect[defect]
            per_defect[defect] += 1
            jobs.append((f"{category}/test/{defect}/{idx:03d}.png", image, None))
            jobs.append((f"{category}/ground_truth/{defect}/{idx:03d}_mask.png", image, mask))
    return jobs


def build_grid_set(root: str | Path, scale: float = 1.0, side: int = 1024, seed: int = 0,
                   workers: int | None = None, categories: Sequence[str] | None = None) -> tuple[Path, dict]:
    """Write the set under ``root`` (reused when its manifest matches) and return (root, manifest).

    The set is built in a temporary sibling folder and moved into place, so an interrupted build leaves nothing that
    looks complete. ``workers``: encoding threads (default: every CPU). ``categories``: a subset of MVTec-AD's
    (default all 15).
    """
    root = Path(root)
    counts = planned_counts(scale, categories)
    wanted = {"format": _FORMAT, "scale": float(scale), "side": int(side), "seed": int(seed),
              "train_per_category": TRAIN_IMAGES, "test": {c: list(n) for c, n in counts.items()}}
    manifest_path = root / MANIFEST
    if manifest_path.is_file():
        found = json.loads(manifest_path.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            return root, found
    if root.exists() and any(root.iterdir()) and not manifest_path.is_file():
        raise FileExistsError(f"{root} exists and is not a bench_grid set; choose a new or empty folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        jobs = _jobs(_bases(tmp, side, seed), counts)
        data_dir = tmp / "set"

        def write(job: tuple[str, np.ndarray, bytes | None]) -> int:
            rel, image, mask = job
            path = data_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data = mask if mask is not None else _nudged_png(image, rel, seed)
            path.write_bytes(data)
            return len(data)

        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            sizes = list(pool.map(write, jobs))
        images = sum(1 for _, _, m in jobs if m is None)
        manifest = {**wanted, "images": images, "masks": len(jobs) - images,
                    "test_images": sum(a + b for a, b in counts.values()), "bytes": sum(sizes)}
        (data_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if root.exists():
            shutil.rmtree(root)
        data_dir.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root, manifest
