"""BTAD (beanTech Anomaly Detection, Mishra et al. 2021) in its official layout, ``BTech_Dataset_transformed``::

    <root>/<01|02|03>/train/ok/*.bmp        normal training images (product 02: *.png)
    <root>/<product>/test/ok/*              normal test images
    <root>/<product>/test/ko/*              anomalous test images
    <root>/<product>/ground_truth/ko/<image stem>.png   (or .bmp) their masks

The release's archive (``btad.zip``) holds ``BTech_Dataset_transformed/``: pass that folder as the root. Masks are
matched by file stem, whatever their extension (anomalib matches ``<stem>.png`` after converting every .bmp to .png:
datasets/image/btech.py:136-143; the AnomalyCLIP authors pair the sorted file lists:
generate_dataset_json/btad.py:24-30). One anomalous mask of product 02 and ten of product 03 are empty in the release.
"""

from __future__ import annotations

from pathlib import Path

from winclip_lib.datasets.catalog import BTAD_CATEGORIES, Sample
from winclip_lib.datasets.listing import first_file, images_in, present_categories, scan_defect_folders

__all__ = ["EXPECTED", "categories", "looks_like", "scan"]

EXPECTED = ("<root>/<01|02|03>/train/ok/*.bmp, <root>/<product>/test/{ok,ko}/* and "
            "<root>/<product>/ground_truth/ko/*.png")
GOOD = "ok"


def looks_like(folder: Path) -> bool:
    return (folder / "train" / GOOD).is_dir() or (folder / "test" / GOOD).is_dir()


def categories(root: Path) -> list[str]:
    return present_categories(root, BTAD_CATEGORIES, looks_like)


def scan(root: Path, category: str, split: str, require_masks: bool) -> tuple[list[Sample], list[str]]:
    base = root / category
    folder = base / split
    if split == "train":
        if not (folder / GOOD).is_dir():
            return [], [f"missing folder {folder / GOOD} (expected the normal training images there)"]
        return [Sample("btad", category, split, 0, "good", p, None) for p in images_in(folder / GOOD)], []
    if not folder.is_dir():
        return [], [f"missing folder {folder} (expected {folder}/ok/* and {folder}/ko/*)"]

    def mask_for(defect: str, image: Path) -> tuple[Path | None, Path]:
        gt = base / "ground_truth" / defect
        found = first_file(gt / f"{image.stem}{ext}" for ext in (".png", ".bmp", ".PNG", ".BMP"))
        return found, gt / f"{image.stem}.png"

    return scan_defect_folders("btad", category, split, folder, GOOD, mask_for, require_masks)
