"""MVTec LOCO AD (Bergmann et al., IJCV 2022) in its official layout, ``mvtec_loco_anomaly_detection.tar.xz``::

    <root>/<object>/train/good/000.png ...
    <root>/<object>/validation/good/000.png ...                 (not used)
    <root>/<object>/test/good/000.png ...
    <root>/<object>/test/{logical_anomalies,structural_anomalies}/000.png ...
    <root>/<object>/ground_truth/{logical_anomalies,structural_anomalies}/000/000.png, 001.png, ...

Structural and logical anomalies are reported apart, as the dataset's authors evaluate them: each object is two
categories, ``<object>_logical`` and ``<object>_structural``, each tested on the object's anomaly-free test images
plus that kind of anomaly, with the object's training images as references. An anomalous image's ground truth is a
folder holding one mask per annotated defect region; it is merged into one mask — a pixel is anomalous when any of
the files marks it (anomalib does the same: datasets/image/mvtec_loco.py:161-164). The authors' sPRO metric, which
saturates each region at its own threshold (``defects_config.json``), is not computed here.
"""

from __future__ import annotations

from pathlib import Path

from winclip_lib.datasets.catalog import LOCO_KINDS, LOCO_OBJECTS, Sample
from winclip_lib.datasets.listing import images_in, scan_defect_folders, subfolders
from winclip_lib.datasets.masks import mask_files

__all__ = ["EXPECTED", "categories", "looks_like", "object_and_kind", "scan"]

EXPECTED = ("<root>/<object>/train/good/*.png, <root>/<object>/test/{good,logical_anomalies,structural_anomalies}"
            "/*.png and <root>/<object>/ground_truth/<kind>/<image>/000.png")


def looks_like(folder: Path) -> bool:
    """An object folder: it has a test folder of either anomaly kind, or is named after a LOCO object."""
    return any((folder / "test" / k).is_dir() for k in LOCO_KINDS.values()) or (
        folder.name in LOCO_OBJECTS and ((folder / "train").is_dir() or (folder / "test").is_dir()))


def object_and_kind(category: str) -> tuple[str, str]:
    """``"pushpins_logical"`` -> ``("pushpins", "logical")``."""
    obj, _, kind = category.rpartition("_")
    return obj, kind


def categories(root: Path) -> list[str]:
    found = {d.name for d in subfolders(root) if looks_like(d)}
    objects = [o for o in LOCO_OBJECTS if o in found] + sorted(found - set(LOCO_OBJECTS))
    return [f"{obj}_{kind}" for obj in objects for kind in LOCO_KINDS]


def scan(root: Path, category: str, split: str, require_masks: bool) -> tuple[list[Sample], list[str]]:
    obj, kind = object_and_kind(category)
    base = root / obj
    folder = base / split
    if split == "train":
        if not (folder / "good").is_dir():
            return [], [f"missing folder {folder / 'good'} (expected the normal training images there)"]
        return [Sample("loco", category, split, 0, "good", p, None) for p in images_in(folder / "good")], []
    if not folder.is_dir():
        return [], [f"missing folder {folder} (expected {folder}/good/*.png and {folder}/{LOCO_KINDS[kind]}/*.png)"]

    def mask_for(defect: str, image: Path) -> tuple[Path | None, Path]:
        masks = base / "ground_truth" / defect / image.stem
        return (masks if masks.is_dir() and mask_files(masks) else None), masks / "000.png"

    samples, problems = scan_defect_folders("loco", category, split, folder, "good", mask_for, require_masks,
                                            kinds=(LOCO_KINDS[kind],))
    if not (folder / LOCO_KINDS[kind]).is_dir():
        problems.append(f"missing folder {folder / LOCO_KINDS[kind]} (expected the {kind} anomalies there)")
    return samples, problems
