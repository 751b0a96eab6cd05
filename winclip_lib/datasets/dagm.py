"""DAGM 2007 ("Weakly Supervised Learning for Industrial Optical Inspection") in its official layout::

    <root>/Class1/Train/0576.PNG ...            training images, defect-free and defective
    <root>/Class1/Train/Label/0576_label.PNG    the weak label (an ellipse) of each defective image
    <root>/Class1/Test/...                      the same for the test images
    ...
    <root>/Class10/...

(the Heidelberg/Zenodo release and the Kaggle upload ``DAGM_KaggleUpload`` hold the same folders). An image is
defective when its label image exists (as the KolektorSDD authors read DAGM: data/input_dagm.py:33-39 of
github.com/vicoslab/mixed-segdec-net-comind2021; the AnomalyCLIP authors likewise: generate_dataset_json/DAGM.py:26-43).
Defective training images are listed as anomalous training images (never references).
"""

from __future__ import annotations

from pathlib import Path

from winclip_lib.datasets.catalog import DAGM_CATEGORIES, Sample
from winclip_lib.datasets.listing import first_file, images_in, present_categories

__all__ = ["EXPECTED", "categories", "looks_like", "scan"]

EXPECTED = "<root>/Class1/Train/<n>.PNG with <root>/Class1/Train/Label/<n>_label.PNG, and <root>/Class1/Test/..."
SPLIT_FOLDERS = {"train": "Train", "test": "Test"}


def looks_like(folder: Path) -> bool:
    return (folder / "Train").is_dir() or (folder / "Test").is_dir()


def categories(root: Path) -> list[str]:
    return present_categories(root, DAGM_CATEGORIES, looks_like)


def scan(root: Path, category: str, split: str, require_masks: bool) -> tuple[list[Sample], list[str]]:
    folder = root / category / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        return [], [f"missing folder {folder} (expected {folder}/<n>.PNG and {folder}/Label/<n>_label.PNG)"]
    labels = folder / "Label"
    samples = []
    for image in images_in(folder):
        mask = first_file(labels / f"{image.stem}_label{ext}" for ext in (".PNG", ".png"))
        if mask is None:
            samples.append(Sample("dagm", category, split, 0, "good", image, None))
        else:
            samples.append(Sample("dagm", category, split, 1, "defect", image, mask))
    return samples, []
