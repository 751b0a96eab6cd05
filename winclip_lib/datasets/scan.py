"""Listing a category's split: the :class:`~winclip_lib.datasets.catalog.Sample` of every image, with its mask.

Every problem with the data on disk raises :class:`~winclip_lib.datasets.catalog.DatasetError` (a ``ValueError``)
naming the file or folder and what is expected, so that a run never starts on a half-extracted dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from winclip_lib.core.imageio import ImageError
from winclip_lib.datasets.catalog import DatasetError, Sample, check_dataset
from winclip_lib.datasets.formats import FORMATS
from winclip_lib.datasets.layout import (
    VISA_SPLIT_CSV,
    detect_layout,
    list_categories,
    no_categories_error,
    read_visa_csv,
)
from winclip_lib.datasets.listing import first_file, images_in
from winclip_lib.datasets.masks import is_empty_mask

__all__ = ["SPLITS", "load_split", "mask_warnings", "masks_of_normal_images", "scan_split"]

SPLITS = ("train", "test")


def _mask_candidates(gt_dir: Path, stem: str) -> list[Path]:
    return [gt_dir / f"{stem}_mask{ext}" for ext in (".png", ".PNG")] + [
        gt_dir / f"{stem}{ext}" for ext in (".png", ".PNG")
    ]


def _scan_mvtec(dataset: str, root: Path, category: str, split: str, require_masks: bool = True
                ) -> tuple[list[Sample], list[str]]:
    base = root / category
    problems: list[str] = []
    samples: list[Sample] = []
    split_dir = base / split
    if not split_dir.is_dir():
        return [], [f"missing folder {split_dir} (expected {split_dir}/good/*.png)"]
    if split == "train":
        good = split_dir / "good"
        if not good.is_dir():
            return [], [f"missing folder {good} (expected the normal training images there)"]
        for p in images_in(good):
            samples.append(Sample(dataset, category, "train", 0, "good", p, None))
        return samples, problems
    for defect_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        defect = defect_dir.name
        for p in images_in(defect_dir):
            if defect == "good":
                samples.append(Sample(dataset, category, "test", 0, "good", p, None))
                continue
            gt_dir = base / "ground_truth" / defect
            mask = next((m for m in _mask_candidates(gt_dir, p.stem) if m.is_file()), None)
            if mask is None and require_masks:
                problems.append(f"anomalous test image {p} has no mask: expected {gt_dir / (p.stem + '_mask.png')}")
            samples.append(Sample(dataset, category, "test", 1, defect, p, mask))
    return samples, problems


def _scan_visa_raw(root: Path, category: str, split: str, require_masks: bool = True
                   ) -> tuple[list[Sample], list[str]]:
    problems: list[str] = []
    samples: list[Sample] = []
    csv_path = root / VISA_SPLIT_CSV
    for row in read_visa_csv(root):
        if row["object"] != category or row["split"] != split:
            continue
        label_word = row["label"].strip().lower()
        if label_word not in ("normal", "anomaly"):
            problems.append(f"{csv_path}: unknown label {row['label']!r} for {row['image']} (normal/anomaly)")
            continue
        image = root / row["image"]
        if not image.is_file():
            problems.append(f"missing image {image} (listed in {csv_path})")
            continue
        if label_word == "normal":
            samples.append(Sample("visa", category, split, 0, "good", image, None))
            continue
        mask_rel = (row.get("mask") or "").strip()
        mask = root / mask_rel if mask_rel else None
        if mask is None or not mask.is_file():
            expected = mask if mask is not None else "a mask path in the 'mask' column"
            if require_masks:
                problems.append(f"anomalous test image {image} has no mask: expected {expected} (from {csv_path})")
            mask = None
        samples.append(Sample("visa", category, split, 1, "bad", image, mask))
    samples.sort(key=lambda s: (s.label, str(s.image_path)))
    return samples, problems


def scan_split(dataset: str, root: str | Path, category: str, split: str, require_masks: bool = True
               ) -> tuple[list[Sample], list[str]]:
    """Lenient version of :func:`load_split`: return the samples and a list of problems (one sentence each, naming
    the file) instead of raising. Anomalous images whose mask is missing are returned with ``mask_path`` None (and
    a problem, unless ``require_masks`` is False); images listed in the VisA or Real-IAD split files but missing on
    disk are left out (and a problem). An unknown dataset/split, a missing root and an unknown category still raise
    :class:`DatasetError`."""
    check_dataset(dataset)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = Path(root)
    layout = detect_layout(dataset, root)
    present = list_categories(dataset, root)
    if category not in present:
        if layout == "mvtec" and (root / category).is_dir():
            raise DatasetError(
                f"category folder {root / category} is empty or has no train/ or test/ folder; "
                f"expected {root / category}/train/good/*.png — re-extract the dataset"
            )
        if not present:
            raise no_categories_error(dataset, root)
        raise DatasetError(f"category {category!r} not found under {root}; categories present: {', '.join(present)}")
    if layout in FORMATS:
        samples, problems = FORMATS[layout].scan(root, category, split, require_masks)
    elif layout == "visa_raw":
        samples, problems = _scan_visa_raw(root, category, split, require_masks)
    else:
        samples, problems = _scan_mvtec(dataset, root, category, split, require_masks)
    if not samples and not problems:
        where = {"visa_raw": root / VISA_SPLIT_CSV}.get(layout, root if layout in FORMATS else root / category / split)
        problems.append(f"category {category!r} has no {split} images in {where}")
    return samples, problems


def load_split(dataset: str, root: str | Path, category: str, split: str, require_masks: bool = True
               ) -> list[Sample]:
    """All samples of one category's split ("train" or "test"), sorted deterministically (MVTec layout: by defect
    folder then file name; VisA raw and Real-IAD: normal first, then by path; the other layouts: see their modules).
    A "train" split may hold anomalous images (label 1: KolektorSDD2, DAGM), which are never drawn as references.

    Raises :class:`DatasetError` on an unknown or empty category, a root with the wrong layout, or an anomalous
    test image without its mask (naming the files; not with ``require_masks=False``, for image-level evaluation).
    """
    samples, problems = scan_split(dataset, root, category, split, require_masks)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DatasetError("; ".join(problems[:5]) + more)
    return samples


def masks_of_normal_images(dataset: str, root: str | Path, category: str) -> list[tuple[Path, Path]]:
    """(normal test image, mask) pairs: masks that lie beside a *good* test image — in the MVTec layout
    ``ground_truth/good/<name>_mask.png`` (or ``<name>.png``), in VisA's split file a mask named on a normal row.
    A good image has no defect, so such a mask is never read; it usually means that the image was filed under the
    wrong label. The later layouts are not searched (their modules define where masks lie)."""
    root = Path(root)
    layout = detect_layout(dataset, root)
    found: list[tuple[Path, Path]] = []
    if layout == "visa_raw":
        for row in read_visa_csv(root):
            mask_rel = (row.get("mask") or "").strip()
            if row["object"] == category and row["label"].strip().lower() == "normal" and mask_rel \
                    and (root / mask_rel).is_file():
                found.append((root / row["image"], root / mask_rel))
    elif layout not in FORMATS:
        good, gt = root / category / "test" / "good", root / category / "ground_truth" / "good"
        if good.is_dir() and gt.is_dir():
            for image in images_in(good):
                mask = first_file(_mask_candidates(gt, image.stem))
                if mask is not None:
                    found.append((image, mask))
    return found


def mask_warnings(dataset: str, root: str | Path, category: str, samples: Sequence[Sample], masks: bool = True,
                  marked: Mapping[Path, bool] | None = None) -> list[str]:
    """Warnings about the masks of a category's test ``samples`` (one sentence each, naming the files): a mask beside
    a good image (:func:`masks_of_normal_images`) and, when the masks are used (``masks``), an anomalous image whose
    mask marks no pixel (its pixel metrics would count no defect there). ``marked``: whether a mask marks any pixel,
    for masks already decoded (mask path -> bool); the others are read here."""
    out = [f"{image} is a good test image but has a mask {mask} (a good image has no defect: the mask is not "
           "used); remove the mask, or move the image to its defect folder"
           for image, mask in masks_of_normal_images(dataset, root, category)]
    if masks:
        for s in samples:
            if s.label != 1 or s.mask_path is None:
                continue
            if marked is not None and s.mask_path in marked:
                empty = not marked[s.mask_path]
            else:
                try:
                    empty = is_empty_mask(s.mask_path)
                except ImageError:
                    continue  # an unreadable mask fails where it is read, with its own message
            if empty:
                out.append(f"{s.image_path} is an anomalous test image but its mask {s.mask_path} marks no pixel "
                           "(all zero): its pixel metrics count no defect in it; fix the mask, or move the image to "
                           "good/ if it is normal")
    return out
