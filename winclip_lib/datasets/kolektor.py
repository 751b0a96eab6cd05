"""KolektorSDD and KolektorSDD2 (Tabernik et al. 2020; Božič et al. 2021) in their official layouts.

KolektorSDD (``KolektorSDD.zip``): 50 electrical commutators, eight surface images each, with a label image each::

    <root>/kos01/Part0.jpg, Part0_label.bmp, ... Part7.jpg, Part7_label.bmp
    ...
    <root>/kos50/...

KolektorSDD2 (``KolektorSDD2.zip``), with the authors' train/test split::

    <root>/train/10000.png, 10000_GT.png, ...
    <root>/test/20000.png, 20000_GT.png, ...

Neither has category folders: each is one category, ``electrical_commutators``. An image is anomalous when its label
image marks any pixel (as the authors' loaders read them: data/input_ksdd.py:33-35, data/input_ksdd2.py:29-33 of
github.com/vicoslab/mixed-segdec-net-comind2021), so listing reads the label images (each once; see
:func:`~winclip_lib.datasets.masks.has_defect`). As the KolektorSDD authors do (input_ksdd.py:37), ``kos21/Part7``
is left out, giving the published 399 images (anomalib keeps it).

KolektorSDD publishes no train/test split for anomaly detection (its authors cross-validate a supervised model):
the split here is anomalib's (datasets/image/kolektor.py:153-162) — every defective image is a test image, and the
defect-free ones are split 80/20 into train and test with scikit-learn's ``train_test_split`` (seed 42) over the
images sorted by path. KolektorSDD2's positive training images are listed as anomalous training images (never
references).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from winclip_lib.core.imageio import ImageError
from winclip_lib.datasets.catalog import KOLEKTOR_CATEGORIES, Sample
from winclip_lib.datasets.listing import images_in, subfolders
from winclip_lib.datasets.masks import has_defect

__all__ = ["EXPECTED_KSDD", "EXPECTED_KSDD2", "LEFT_OUT", "categories_ksdd", "categories_ksdd2", "looks_like_ksdd",
           "looks_like_ksdd2", "scan_ksdd", "scan_ksdd2"]

EXPECTED_KSDD = "<root>/kos01/Part0.jpg with <root>/kos01/Part0_label.bmp, ... <root>/kos50/..."
EXPECTED_KSDD2 = "<root>/train/<n>.png with <root>/train/<n>_GT.png, and <root>/test/..."
#: Images the KolektorSDD authors leave out (relative to the root).
LEFT_OUT = ("kos21/Part7.jpg",)
_ITEM = re.compile(r"kos\d+")
#: anomalib's split of the defect-free images: the train fraction and the seed.
TRAIN_FRACTION, SPLIT_SEED = 0.8, 42


def looks_like_ksdd(folder: Path) -> bool:
    return any(_ITEM.fullmatch(d.name) for d in subfolders(folder))


def looks_like_ksdd2(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir() and any(
        p.name.endswith("_GT.png") for p in (folder / "train").iterdir())


def categories_ksdd(root: Path) -> list[str]:
    return list(KOLEKTOR_CATEGORIES) if looks_like_ksdd(root) else []


def categories_ksdd2(root: Path) -> list[str]:
    return list(KOLEKTOR_CATEGORIES) if looks_like_ksdd2(root) else []


def _labelled(dataset: str, category: str, split: str, pairs: Iterable[tuple[Path, Path]]
              ) -> tuple[list[Sample], list[str]]:
    """The samples of (image, label image) pairs, anomalous when the label image marks a pixel, and the problems
    (a missing or unreadable label image)."""
    samples: list[Sample] = []
    problems: list[str] = []
    for image, label_image in pairs:
        if not label_image.is_file():
            problems.append(f"image {image} has no label image: expected {label_image}")
            continue
        try:
            defective = has_defect(label_image)
        except ImageError as exc:
            problems.append(str(exc))
            continue
        if defective:
            samples.append(Sample(dataset, category, split, 1, "defect", image, label_image))
        else:
            samples.append(Sample(dataset, category, split, 0, "good", image, None))
    return samples, problems


def scan_ksdd(root: Path, category: str, split: str, require_masks: bool) -> tuple[list[Sample], list[str]]:
    pairs = [(image, image.with_name(f"{image.stem}_label.bmp"))
             for item in subfolders(root) if _ITEM.fullmatch(item.name) for image in images_in(item)
             if not image.name.endswith("_label.bmp") and image.relative_to(root).as_posix() not in LEFT_OUT]
    samples, problems = _labelled("ksdd", category, split, pairs)
    samples.sort(key=lambda s: str(s.image_path))
    normal = [s for s in samples if s.label == 0]
    if len(normal) < 2:
        return ([s for s in samples if s.label == 1] if split == "test" else []), problems
    from sklearn.model_selection import train_test_split  # (a second of imports: only for this layout)

    train, test_normal = train_test_split(normal, train_size=TRAIN_FRACTION, random_state=SPLIT_SEED)
    if split == "train":
        return sorted(train, key=lambda s: str(s.image_path)), problems
    chosen = {s.image_path for s in test_normal}
    return [s for s in samples if s.label == 1 or s.image_path in chosen], problems


def scan_ksdd2(root: Path, category: str, split: str, require_masks: bool) -> tuple[list[Sample], list[str]]:
    folder = root / split
    if not folder.is_dir():
        return [], [f"missing folder {folder} (expected {folder}/<n>.png with {folder}/<n>_GT.png)"]
    pairs = [(image, image.with_name(f"{image.stem}_GT.png")) for image in images_in(folder)
             if not image.stem.endswith("_GT")]
    return _labelled("ksdd2", category, split, pairs)
