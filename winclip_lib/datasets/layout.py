"""Dataset layouts on disk: which one a root holds, its categories, and a hint when a root is one level off.

Layouts understood (``root`` is the folder that holds the category folders):

* **MVTec layout** (MVTec-AD, MPDD, DTD-Synthetic, the reorganised VisA ``1cls`` layout, and the synthetic set)::

      <root>/<category>/train/good/*.png
      <root>/<category>/test/good/*.png
      <root>/<category>/test/<defect>/*.png
      <root>/<category>/ground_truth/<defect>/<name>_mask.png   (or <name>.png, as VisA's prepare script writes)

* **VisA raw layout** (the official ``VisA_20220922.tar``) plus the split file from the VisA repository::

      <root>/<object>/Data/Images/{Normal,Anomaly}/*.JPG
      <root>/<object>/Data/Masks/Anomaly/*.png
      <root>/split_csv/1cls.csv        (columns object, split, label, image, mask; paths relative to <root>)

  For ``dataset="visa"`` the raw layout is used when ``<root>/split_csv/1cls.csv`` exists, the MVTec layout otherwise.

* **The official layouts of BTAD, KolektorSDD, KolektorSDD2, DAGM 2007, MVTec LOCO AD, MVTec AD 2, Real-IAD, and
  your own labelled folders**: one :class:`~winclip_lib.datasets.formats.Format` each, layout name = dataset name.

DTD-Synthetic (``DTD-Synthetic.zip`` of Aota et al., WACV 2023) is ``<root>/<texture>/train/good/*.png``,
``test/{good,bad}/*.png`` and ``ground_truth/bad/*``, as the AnomalyCLIP authors read it
(generate_dataset_json/DTD.py:18-30).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from winclip_lib.datasets.catalog import CATEGORIES, DatasetError, check_dataset
from winclip_lib.datasets.formats import FORMATS
from winclip_lib.datasets.listing import images_in

__all__ = ["VISA_SPLIT_CSV", "detect_layout", "layout_hint", "list_categories", "no_categories_error",
           "read_visa_csv", "images_in", "looks_like_category"]

VISA_SPLIT_CSV = Path("split_csv") / "1cls.csv"


def looks_like_category(folder: Path) -> bool:
    return folder.is_dir() and ((folder / "train").is_dir() or (folder / "test").is_dir())


def detect_layout(dataset: str, root: str | Path) -> str:
    """Return ``"visa_raw"`` for the official VisA layout with its split file, the dataset's name for the layouts of
    :data:`~winclip_lib.datasets.formats.FORMATS`, ``"mvtec"`` for the MVTec layout.

    Raises :class:`DatasetError` when ``root`` is missing or is a raw VisA folder without ``split_csv/1cls.csv``.
    """
    check_dataset(dataset)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a folder")
    if dataset in FORMATS:
        return dataset
    if dataset == "visa":
        if (root / VISA_SPLIT_CSV).is_file():
            return "visa_raw"
        raw = [d.name for d in sorted(root.iterdir()) if (d / "Data" / "Images").is_dir()]
        if raw and not any(looks_like_category(d) for d in root.iterdir()):
            raise DatasetError(
                f"{root} holds the raw VisA layout ({', '.join(raw[:3])}, ...) but not the split file "
                f"{root / VISA_SPLIT_CSV}; copy split_csv/1cls.csv from the VisA repository "
                "(github.com/amazon-science/spot-diff) there, or run `python -m data_prep.extract --split-csv`"
            )
    return "mvtec"


def read_visa_csv(root: Path) -> list[dict[str, str]]:
    path = root / VISA_SPLIT_CSV
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read the VisA split file {path}: {exc}; re-download it") from exc
    needed = {"object", "split", "label", "image", "mask"}
    if not rows or not needed <= set(rows[0]):
        raise DatasetError(f"{path} is not a VisA split file: expected the columns {sorted(needed)}")
    return rows


def _canonical_order(dataset: str, names: Sequence[str]) -> list[str]:
    canonical = CATEGORIES[dataset]
    known = [c for c in canonical if c in names]
    extra = sorted(n for n in set(names) if n not in canonical)
    return known + extra


def list_categories(dataset: str, root: str | Path) -> list[str]:
    """Categories present under ``root``: the dataset's canonical ones in canonical order, then any other folder
    in the same layout (e.g. synthetic categories) in alphabetical order. Missing root -> DatasetError."""
    layout = detect_layout(dataset, root)
    root = Path(root)
    if layout in FORMATS:
        return FORMATS[layout].categories(root)
    if layout == "visa_raw":
        names = {r["object"] for r in read_visa_csv(root)}
        return _canonical_order(dataset, [n for n in names if (root / n).is_dir()])
    return _canonical_order(dataset, [d.name for d in root.iterdir() if looks_like_category(d)])


def _format_hint(dataset: str, root: Path) -> str:
    fmt = FORMATS[dataset]

    def holds(folder: Path) -> bool:
        try:
            return fmt.looks_like(folder)
        except OSError:
            return False

    if root.parent != root and holds(root.parent):
        return f"{root} seems to be inside the dataset: pass its parent folder {root.parent} as the root"
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if holds(child):
            return f"the dataset seems to be one level down: pass {child} as the root"
    return f"expected {fmt.expected.replace('<root>', str(root)).replace('ROOT', str(root))}"


def layout_hint(dataset: str, root: Path) -> str:
    """A sentence explaining what ``root`` should look like, with a guess when it is one level off."""
    if dataset in FORMATS:
        return _format_hint(dataset, root)
    if (root / "train").is_dir() or (root / "test").is_dir():
        return f"{root} looks like a single category folder; pass its parent folder {root.parent} as the root"
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            nested = any(looks_like_category(d) for d in child.iterdir()) or (child / VISA_SPLIT_CSV).is_file()
        except OSError:
            continue
        if nested:
            return f"the categories seem to be one level down: pass {child} as the root"
    return f"expected {root}/<category>/train/good/*.png and {root}/<category>/test/<defect>/*.png"


def no_categories_error(dataset: str, root: str | Path) -> DatasetError:
    """The error for a root that holds no category of ``dataset``, with :func:`layout_hint`'s guess."""
    return DatasetError(f"no {dataset} categories found under {root}: {layout_hint(dataset, Path(root))}")
