"""The datasets this project knows: names, categories, the words used in prompts, and the vocabulary of a sample.

``DATASET_LOADERS`` maps every dataset name a run accepts to the layout it is read with (``synthetic`` — the set
:func:`winclip_lib.datasets.synthetic.make_synthetic` writes — is read like MVTec-AD).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CATEGORIES",
    "CLASS_NAMES",
    "DATASETS",
    "DATASET_LOADERS",
    "MPDD_CATEGORIES",
    "MVTEC_CATEGORIES",
    "VISA_CATEGORIES",
    "DatasetError",
    "Sample",
    "check_dataset",
    "class_name",
]

DATASETS = ("mvtec", "visa", "mpdd")

MVTEC_CATEGORIES = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip
VISA_CATEGORIES = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
    "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
)  # fmt: skip
MPDD_CATEGORIES = ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "mvtec": MVTEC_CATEGORIES,
    "visa": VISA_CATEGORIES,
    "mpdd": MPDD_CATEGORIES,
}

#: Dataset names a run accepts, and the layout each is read with.
DATASET_LOADERS: dict[str, str] = {"mvtec": "mvtec", "visa": "visa", "mpdd": "mpdd", "synthetic": "mvtec"}

# Folder names -> the words used in prompts, as the public WinCLIP reproductions name them; anything not listed
# becomes the folder name with underscores replaced by spaces.
CLASS_NAMES: dict[str, str] = {
    "metal_nut": "metal nut",
    "macaroni1": "macaroni",
    "macaroni2": "macaroni",
    "pcb1": "printed circuit board",
    "pcb2": "printed circuit board",
    "pcb3": "printed circuit board",
    "pcb4": "printed circuit board",
    "pipe_fryum": "pipe fryum",
    "chewinggum": "chewing gum",
    "bracket_black": "black bracket",
    "bracket_brown": "brown bracket",
    "bracket_white": "white bracket",
    "metal_plate": "metal plate",
}


class DatasetError(ValueError):
    """A dataset on disk does not match the expected layout, or one of its files cannot be used."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset split. ``mask_path`` is None for normal images (label 0)."""

    dataset: str
    category: str
    split: str
    label: int
    defect: str
    image_path: Path
    mask_path: Path | None


def check_dataset(dataset: str) -> str:
    """``dataset`` if it is one of :data:`DATASETS`, else ValueError."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid datasets are {', '.join(DATASETS)}")
    return dataset


def class_name(category: str, dataset: str | None = None, overrides: Mapping[str, str] | None = None) -> str:
    """The object word used in prompts for a category folder name (e.g. "pcb1" -> "printed circuit board",
    "bracket_black" -> "black bracket"). ``overrides`` takes precedence over :data:`CLASS_NAMES`; unknown names
    get underscores replaced by spaces. ``dataset``, when given, must be a known dataset."""
    if dataset is not None:
        check_dataset(dataset)
    if overrides and category in overrides:
        return overrides[category]
    return CLASS_NAMES.get(category, category.replace("_", " "))
