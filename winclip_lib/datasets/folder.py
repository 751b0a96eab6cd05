"""Your own labelled images: ``winclip run --folder ROOT``.

One category::

    ROOT/good/*.png               normal test images (required; any image format)
    ROOT/<defect>/*.png           anomalous test images: one or more folders, any names ("bad", "scratch", ...)
    ROOT/masks/<defect>/<image stem>.png   optional masks, matched by name (also <stem>_mask.png;
                                           the folder may be called ground_truth instead of masks)
    ROOT/train/*.png              optional normal images for the few-shot references (k > 0; or train/good/*.png)

or several categories, each a folder of that form: ``ROOT/<category>/good/...``. The category is named after its
folder (ROOT's own name for a single category), and that name becomes the object word of the prompts (underscores
read as spaces); set the words with a name like ``metal_nut``.

Masks are optional: without a ``masks`` (or ``ground_truth``) folder a category is evaluated with the image metrics
only — the pixel metrics are NaN (not available). With one, every anomalous image needs its mask (a missing one is
named; ``--no-masks`` evaluates the image metrics alone). A mask is any image of the same size as its image, where
non-zero marks a defect. Without a ``train`` folder only zero-shot runs (k = 0) are possible.
"""

from __future__ import annotations

from pathlib import Path

from winclip_lib.datasets.catalog import Sample
from winclip_lib.datasets.listing import first_file, images_in, present_categories, scan_defect_folders

__all__ = ["EXPECTED", "GOOD", "MASK_FOLDERS", "RESERVED", "categories", "category_folder", "looks_like", "scan"]

EXPECTED = "ROOT/good/*.png and ROOT/<defect>/*.png (optional: ROOT/masks/<defect>/*.png, ROOT/train/*.png)"
GOOD = "good"
MASK_FOLDERS = ("masks", "ground_truth")
TRAIN = "train"
#: Folder names that are not defect folders.
RESERVED = (GOOD, TRAIN, *MASK_FOLDERS)


def looks_like(folder: Path) -> bool:
    return (folder / GOOD).is_dir()


def categories(root: Path) -> list[str]:
    if looks_like(root):
        return [root.name]
    return present_categories(root, (), looks_like)


def category_folder(root: Path, category: str) -> Path:
    return root if looks_like(root) and category == root.name else root / category


def scan(root: Path, category: str, split: str, require_masks: bool) -> tuple[list[Sample], list[str]]:
    base = category_folder(root, category)
    if split == "train":
        train = base / TRAIN
        if not train.is_dir():
            return [], [f"no normal reference images for k > 0: put them in {train}/ (or run zero-shot only, "
                        "--shots 0)"]
        folder = train / GOOD if (train / GOOD).is_dir() else train
        return [Sample("folder", category, split, 0, "good", p, None) for p in images_in(folder)], []
    masks = next((base / m for m in MASK_FOLDERS if (base / m).is_dir()), None)

    def mask_for(defect: str, image: Path) -> tuple[Path | None, Path]:
        gt = (masks or base / MASK_FOLDERS[0]) / defect
        names = (f"{image.stem}{sfx}{ext}" for sfx in ("", "_mask") for ext in (".png", ".PNG", image.suffix))
        return (first_file(gt / n for n in names) if masks is not None else None), gt / f"{image.stem}.png"

    samples, problems = scan_defect_folders("folder", category, split, base, GOOD, mask_for,
                                            require_masks and masks is not None, skip=(TRAIN, *MASK_FOLDERS))
    if not any(s.label == 1 for s in samples):
        problems.append(f"{base} has no anomalous images: put them in one or more folders next to {base / GOOD}")
    return samples, problems
