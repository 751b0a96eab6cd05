"""Real-IAD (Wang et al., CVPR 2024) in its official layout, single view, with the authors' JSON split files::

    <root>/realiad_1024/<category>/OK/S0001/<category>_0001_OK_C1_<time>.jpg ...
    <root>/realiad_1024/<category>/NG/<defect>/S0021/<category>_0021_NG_<defect>_C1_<time>.jpg, ... .png (mask)
    <root>/realiad_jsons_sv/<category>.json        the single-view split (``realiad_jsons.zip`` of the release)

(the layout of the authors' README, github.com/Tencent/AnomalyDetection_Real-IAD README.md "1.1"; anomalib's loader
expects the split files one level deeper, ``realiad_jsons/realiad_jsons_sv/``: both are read). Images are read from
``realiad_1024`` (the authors' choice), else from the first of ``realiad_raw``, ``realiad_512``, ``realiad_256``
present; the paths in the results name the folder used.

A split file is ``{"meta": {"prefix", "normal_class", ...}, "train": [...], "test": [...]}``, each sample
``{"category", "anomaly_class", "image_path", "mask_path"}``, paths relative to ``<image folder>/<prefix>``; a test
sample is normal when its ``mask_path`` is null or its class is ``normal_class``, and every training sample is
normal — as the authors' loader reads them (datasets/explicit_dataset.py ``load_explicit``).

Listing a category reads its split file (kept for the last few files read, keyed by size and modification time) and
looks up each listed file: no folder walk and no image decoding, so the ~150,000 images of the whole release are
never listed at once.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import NamedTuple

from winclip_lib.datasets.catalog import REALIAD_CATEGORIES, DatasetError, Sample

__all__ = ["EXPECTED", "IMAGE_FOLDERS", "SPLIT_FOLDERS", "SplitFile", "categories", "image_folder", "looks_like",
           "read_split_file", "scan", "split_folder"]

#: Image folders of the release, in the order they are looked for.
IMAGE_FOLDERS = ("realiad_1024", "realiad_raw", "realiad_512", "realiad_256")
#: Where the single-view split files are looked for (the authors' layout, then anomalib's).
SPLIT_FOLDERS = ("realiad_jsons_sv", "realiad_jsons/realiad_jsons_sv")
EXPECTED = "<root>/realiad_1024/<category>/{OK,NG}/... and <root>/realiad_jsons_sv/<category>.json"
_SAMPLE_KEYS = {"category", "anomaly_class", "image_path", "mask_path"}


class SplitFile(NamedTuple):
    """A parsed split file: the path prefix, the normal class, and (anomaly_class, image, mask) per split."""

    prefix: str
    normal_class: str
    train: tuple[tuple[str, str, str | None], ...]
    test: tuple[tuple[str, str, str | None], ...]


def image_folder(root: Path) -> Path | None:
    return next((root / f for f in IMAGE_FOLDERS if (root / f).is_dir()), None)


def split_folder(root: Path) -> Path | None:
    return next((root / f for f in SPLIT_FOLDERS if (root / f).is_dir()), None)


def looks_like(folder: Path) -> bool:
    return image_folder(folder) is not None and split_folder(folder) is not None


def categories(root: Path) -> list[str]:
    images, splits = image_folder(root), split_folder(root)
    if images is None or splits is None:
        return []
    found = {p.stem for p in splits.glob("*.json")}
    return [c for c in REALIAD_CATEGORIES if c in found] + sorted(found - set(REALIAD_CATEGORIES))


@functools.lru_cache(maxsize=4)
def _parse(path: str, mtime_ns: int, size: int) -> SplitFile:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read the Real-IAD split file {path}: {exc}; re-extract realiad_jsons.zip") from exc
    if not isinstance(info, dict) or not {"meta", "train", "test"} <= set(info):
        raise DatasetError(f"{path} is not a Real-IAD split file: expected the keys meta, train and test")
    meta = info["meta"]
    if not isinstance(meta, dict) or "prefix" not in meta or "normal_class" not in meta:
        raise DatasetError(f"{path}: 'meta' must hold 'prefix' and 'normal_class'")
    splits = []
    for name in ("train", "test"):
        rows = info[name]
        bad = next((r for r in rows if not isinstance(r, dict) or not _SAMPLE_KEYS <= set(r)), None) \
            if isinstance(rows, list) else rows
        if bad is not None:
            raise DatasetError(f"{path}: every '{name}' sample needs the keys {sorted(_SAMPLE_KEYS)}; found {bad!r}")
        splits.append(tuple((str(r["anomaly_class"]), str(r["image_path"]), r["mask_path"] or None) for r in rows))
    return SplitFile(str(meta["prefix"] or ""), str(meta["normal_class"]), splits[0], splits[1])


def read_split_file(path: Path) -> SplitFile:
    """The parsed split file (remembered for the last four files read, per size and modification time)."""
    st = path.stat()
    return _parse(str(path), st.st_mtime_ns, st.st_size)


def scan(root: Path, category: str, split: str, require_masks: bool) -> tuple[list[Sample], list[str]]:
    images, splits = image_folder(root), split_folder(root)
    if images is None or splits is None:
        return [], [f"{root} holds no Real-IAD image folder or split folder: expected {EXPECTED}"]
    path = splits / f"{category}.json"
    split_file = read_split_file(path)
    base = images / split_file.prefix
    samples: list[Sample] = []
    problems: list[str] = []
    for anomaly_class, image_rel, mask_rel in getattr(split_file, split):
        image = base / image_rel
        if not image.is_file():
            problems.append(f"missing image {image} (listed in {path})")
            continue
        if split == "train" or mask_rel is None or anomaly_class == split_file.normal_class:
            samples.append(Sample("realiad", category, split, 0, "good", image, None))
            continue
        mask: Path | None = base / mask_rel
        if not mask.is_file():
            if require_masks:
                problems.append(f"anomalous test image {image} has no mask: expected {mask} (from {path})")
            mask = None
        samples.append(Sample("realiad", category, split, 1, anomaly_class, image, mask))
    samples.sort(key=lambda s: (s.label, str(s.image_path)))
    return samples, problems
