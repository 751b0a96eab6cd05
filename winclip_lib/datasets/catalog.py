"""The datasets this project knows: names, categories, the words used in prompts, and the vocabulary of a sample.

``DATASET_LOADERS`` maps every dataset name a run accepts to the layout it is read with (``synthetic`` — the set
:func:`winclip_lib.datasets.synthetic.make_synthetic` writes — is read like MVTec-AD); ``winclip run`` offers one
``--<name> ROOT`` flag per entry. The layouts themselves are described in :mod:`winclip_lib.datasets.formats`.

Categories are the folder names of each release, except where a release has no category folders (KolektorSDD and
KolektorSDD2: one category, ``electrical_commutators``) and for MVTec LOCO AD, whose structural and logical anomalies
are reported apart: each object is two categories, ``<object>_logical`` and ``<object>_structural``, each tested on
the object's anomaly-free test images plus that kind of anomaly (as the dataset's authors evaluate them). A
``folder`` root holds the user's own categories (any names).
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
    "BTAD_CATEGORIES",
    "DAGM_CATEGORIES",
    "DTD_CATEGORIES",
    "KOLEKTOR_CATEGORIES",
    "LOCO_CATEGORIES",
    "LOCO_KINDS",
    "LOCO_OBJECTS",
    "MPDD_CATEGORIES",
    "MVTEC2_CATEGORIES",
    "MVTEC_CATEGORIES",
    "REALIAD_CATEGORIES",
    "VISA_CATEGORIES",
    "DatasetError",
    "Sample",
    "check_dataset",
    "class_name",
]

DATASETS = ("mvtec", "visa", "mpdd", "btad", "ksdd", "ksdd2", "dagm", "dtd", "loco", "mvtec2", "realiad", "folder")

MVTEC_CATEGORIES = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip
VISA_CATEGORIES = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
    "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
)  # fmt: skip
MPDD_CATEGORIES = ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes")
BTAD_CATEGORIES = ("01", "02", "03")
#: KolektorSDD and KolektorSDD2 have no category folders: one category, named as the AnomalyCLIP authors name it.
KOLEKTOR_CATEGORIES = ("electrical_commutators",)
DAGM_CATEGORIES = tuple(f"Class{i}" for i in range(1, 11))
DTD_CATEGORIES = (
    "Blotchy_099", "Fibrous_183", "Marbled_078", "Matted_069", "Mesh_114", "Perforated_037", "Stratified_154",
    "Woven_001", "Woven_068", "Woven_104", "Woven_125", "Woven_127",
)  # fmt: skip
LOCO_OBJECTS = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")
#: MVTec LOCO AD's anomaly kinds, each reported as its own category; the folder names of the release.
LOCO_KINDS = {"logical": "logical_anomalies", "structural": "structural_anomalies"}
LOCO_CATEGORIES = tuple(f"{obj}_{kind}" for obj in LOCO_OBJECTS for kind in LOCO_KINDS)
MVTEC2_CATEGORIES = ("can", "fabric", "fruit_jelly", "rice", "sheet_metal", "vial", "wallplugs", "walnuts")
REALIAD_CATEGORIES = (
    "audiojack", "bottle_cap", "button_battery", "end_cap", "eraser", "fire_hood", "mint", "mounts", "pcb",
    "phone_battery", "plastic_nut", "plastic_plug", "porcelain_doll", "regulator", "rolled_strip_base",
    "sim_card_set", "switch", "tape", "terminalblock", "toothbrush", "toy", "toy_brick", "transistor1", "u_block",
    "usb", "usb_adaptor", "vcpill", "wooden_beads", "woodstick", "zipper",
)  # fmt: skip
CATEGORIES: dict[str, tuple[str, ...]] = {
    "mvtec": MVTEC_CATEGORIES,
    "visa": VISA_CATEGORIES,
    "mpdd": MPDD_CATEGORIES,
    "btad": BTAD_CATEGORIES,
    "ksdd": KOLEKTOR_CATEGORIES,
    "ksdd2": KOLEKTOR_CATEGORIES,
    "dagm": DAGM_CATEGORIES,
    "dtd": DTD_CATEGORIES,
    "loco": LOCO_CATEGORIES,
    "mvtec2": MVTEC2_CATEGORIES,
    "realiad": REALIAD_CATEGORIES,
    "folder": (),  # the user's own category names
}

#: Dataset names a run accepts, and the layout each is read with.
DATASET_LOADERS: dict[str, str] = {"mvtec": "mvtec", "visa": "visa", "mpdd": "mpdd", "synthetic": "mvtec",
                                   **{d: d for d in DATASETS[3:]}}

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
    # BTAD names its three products by number only
    "01": "industrial product",
    "02": "industrial product",
    "03": "industrial product",
    "electrical_commutators": "electrical commutator",
    **{c: "textured surface" for c in DAGM_CATEGORIES},  # DAGM 2007: synthetic statistical textures
    **{c: f"{c.split('_')[0].lower()} texture" for c in DTD_CATEGORIES},  # "Woven_001" -> "woven texture"
    **{f"{obj}_{kind}": obj.replace("_", " ") for obj in LOCO_OBJECTS for kind in LOCO_KINDS},
    "fruit_jelly": "fruit jelly",
    "sheet_metal": "sheet metal",
    "wallplugs": "wall plugs",
    "audiojack": "audio jack",
    "terminalblock": "terminal block",
    "transistor1": "transistor",
    "vcpill": "pill",
    "woodstick": "wooden stick",
    "mounts": "mount",
    "pcb": "printed circuit board",
    "usb": "USB connector",
    "usb_adaptor": "USB adaptor",
    "sim_card_set": "SIM card set",
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
