"""Listing files in a dataset's folders: the helpers every layout's loader shares.

Nothing here decodes an image: listing a category reads folder entries (and, for layouts whose labels live only in
their masks, the masks — see :func:`winclip_lib.datasets.masks.has_defect`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from winclip_lib.core.imageio import is_image_file
from winclip_lib.datasets.catalog import Sample

__all__ = ["MaskFinder", "first_file", "images_in", "present_categories", "scan_defect_folders", "subfolders"]

#: ``mask_for(defect, image) -> (mask path or None, the path the message names when it is missing)``.
MaskFinder = Callable[[str, Path], tuple[Path | None, Path]]


def images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)


def subfolders(folder: Path) -> list[Path]:
    """The visible folders directly in ``folder``, sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def first_file(candidates: Iterable[Path]) -> Path | None:
    """The first of ``candidates`` that is a file, or None."""
    return next((p for p in candidates if p.is_file()), None)


def present_categories(root: Path, canonical: Sequence[str], looks_like: Callable[[Path], bool]) -> list[str]:
    """Folders of ``root`` for which ``looks_like`` holds: the canonical names in canonical order, then any other
    name in alphabetical order."""
    found = {d.name for d in subfolders(root) if looks_like(d)}
    return [c for c in canonical if c in found] + sorted(found - set(canonical))


def scan_defect_folders(dataset: str, category: str, split: str, folder: Path, good: str, mask_for: MaskFinder,
                        require_masks: bool, kinds: Sequence[str] | None = None, skip: Sequence[str] = ()
                        ) -> tuple[list[Sample], list[str]]:
    """The samples of a folder that holds one folder per kind of image: ``good`` (normal, label 0) and one per
    defect type (label 1, with the mask ``mask_for`` finds). ``kinds`` keeps only those defect folders; ``skip``
    names folders that are not image folders (e.g. ``ground_truth``). Sorted by folder, then file name."""
    samples: list[Sample] = []
    problems: list[str] = []
    for sub in subfolders(folder):
        name = sub.name
        if name in skip or (name != good and kinds is not None and name not in kinds):
            continue
        for image in images_in(sub):
            if name == good:
                samples.append(Sample(dataset, category, split, 0, "good", image, None))
                continue
            mask, expected = mask_for(name, image)
            if mask is None and require_masks:
                problems.append(f"anomalous {split} image {image} has no mask: expected {expected}")
            samples.append(Sample(dataset, category, split, 1, name, image, mask))
    return samples, problems
