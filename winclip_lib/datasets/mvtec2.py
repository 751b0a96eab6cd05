"""MVTec AD 2 (Heckler-Kram et al. 2025) in its official layout, ``mvtec_ad_2.tar.gz``::

    <root>/<object>/train/good/000_regular.png ...
    <root>/<object>/validation/good/...                            (not used)
    <root>/<object>/test_public/good/...
    <root>/<object>/test_public/bad/...
    <root>/<object>/test_public/ground_truth/bad/<image stem>_mask.png
    <root>/<object>/test_private/*.png, test_private_mixed/*.png   (no ground truth: not read)

The test split here is the public one, the only one with masks (anomalib reads its masks the same way:
datasets/image/mvtecad2.py:255-267). The private test sets (``test_private``: seen lighting, ``test_private_mixed``:
seen and unseen lighting) ship without ground truth: they are scored by MVTec's evaluation server
(benchmark.mvtec.com), which takes an anomaly map (and a threshold) for every private image; ``winclip run`` does
not read those folders.
"""

from __future__ import annotations

from pathlib import Path

from winclip_lib.datasets.catalog import MVTEC2_CATEGORIES, Sample
from winclip_lib.datasets.listing import first_file, images_in, present_categories, scan_defect_folders

__all__ = ["EXPECTED", "TEST_SPLIT", "categories", "looks_like", "scan"]

EXPECTED = ("<root>/<object>/train/good/*.png, <root>/<object>/test_public/{good,bad}/*.png and "
            "<root>/<object>/test_public/ground_truth/bad/*_mask.png")
#: The folder read as the test split.
TEST_SPLIT = "test_public"


def looks_like(folder: Path) -> bool:
    """An object folder: it has the public test split, or is named after an MVTec AD 2 object."""
    return (folder / TEST_SPLIT).is_dir() or (folder.name in MVTEC2_CATEGORIES and (folder / "train").is_dir())


def categories(root: Path) -> list[str]:
    return present_categories(root, MVTEC2_CATEGORIES, looks_like)


def scan(root: Path, category: str, split: str, require_masks: bool) -> tuple[list[Sample], list[str]]:
    base = root / category
    if split == "train":
        good = base / "train" / "good"
        if not good.is_dir():
            return [], [f"missing folder {good} (expected the normal training images there)"]
        return [Sample("mvtec2", category, split, 0, "good", p, None) for p in images_in(good)], []
    folder = base / TEST_SPLIT
    if not folder.is_dir():
        return [], [f"missing folder {folder} (expected the public test split: {folder}/good, {folder}/bad and "
                    f"{folder}/ground_truth/bad)"]

    def mask_for(defect: str, image: Path) -> tuple[Path | None, Path]:
        gt = folder / "ground_truth" / defect
        return first_file(gt / f"{image.stem}_mask{ext}" for ext in (".png", ".PNG")), gt / f"{image.stem}_mask.png"

    return scan_defect_folders("mvtec2", category, split, folder, "good", mask_for, require_masks,
                               skip=("ground_truth",))
