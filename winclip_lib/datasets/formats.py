"""The layouts of the datasets added beside MVTec-AD, VisA and MPDD: one :class:`Format` per dataset name.

Each dataset's layout, with its sources, is described in its own module: :mod:`~winclip_lib.datasets.btad`,
:mod:`~winclip_lib.datasets.kolektor` (KolektorSDD, KolektorSDD2), :mod:`~winclip_lib.datasets.dagm`,
:mod:`~winclip_lib.datasets.loco` (MVTec LOCO AD), :mod:`~winclip_lib.datasets.mvtec2` (MVTec AD 2),
:mod:`~winclip_lib.datasets.realiad` (Real-IAD) and :mod:`~winclip_lib.datasets.folder` (your own labelled images).
DTD-Synthetic ships in the MVTec layout and is read like MVTec-AD (:mod:`~winclip_lib.datasets.layout`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from winclip_lib.datasets import btad, dagm, folder, kolektor, loco, mvtec2, realiad
from winclip_lib.datasets.catalog import Sample

__all__ = ["FORMATS", "Format"]


@dataclass(frozen=True)
class Format:
    """How one dataset lies on disk.

    ``categories(root)`` lists the categories present (canonical order first); ``scan(root, category, split,
    require_masks)`` lists one split as (samples, problems: one sentence each, naming the file); ``looks_like(folder)``
    says whether a folder is such a root (for the "one level off" hint); ``expected`` says what a root holds;
    ``references_optional``: a root may have no training images (then only zero-shot runs); ``where(root,
    category)``: the folder or file that holds a category (for "missing" messages)."""

    name: str
    categories: Callable[[Path], list[str]]
    scan: Callable[[Path, str, str, bool], tuple[list[Sample], list[str]]]
    looks_like: Callable[[Path], bool]
    expected: str
    references_optional: bool = False
    where: Callable[[Path, str], Path] = lambda root, category: root / category


def _dataset_root(looks_like_category: Callable[[Path], bool]) -> Callable[[Path], bool]:
    """A root of a layout with category folders: one of its folders looks like a category."""
    def looks_like(root: Path) -> bool:
        return any(looks_like_category(d) for d in root.iterdir() if d.is_dir())
    return looks_like


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("btad", btad.categories, btad.scan, _dataset_root(btad.looks_like), btad.EXPECTED),
    Format("ksdd", kolektor.categories_ksdd, kolektor.scan_ksdd, kolektor.looks_like_ksdd, kolektor.EXPECTED_KSDD,
           where=lambda root, _: root / "kos01"),
    Format("ksdd2", kolektor.categories_ksdd2, kolektor.scan_ksdd2, kolektor.looks_like_ksdd2,
           kolektor.EXPECTED_KSDD2, where=lambda root, _: root / "train"),
    Format("dagm", dagm.categories, dagm.scan, _dataset_root(dagm.looks_like), dagm.EXPECTED),
    Format("loco", loco.categories, loco.scan, _dataset_root(loco.looks_like), loco.EXPECTED,
           where=lambda root, category: root / loco.object_and_kind(category)[0]),
    Format("mvtec2", mvtec2.categories, mvtec2.scan, _dataset_root(mvtec2.looks_like), mvtec2.EXPECTED),
    Format("realiad", realiad.categories, realiad.scan, realiad.looks_like, realiad.EXPECTED,
           where=lambda root, category: (realiad.split_folder(root) or root / realiad.SPLIT_FOLDERS[0])
           / f"{category}.json"),
    Format("folder", folder.categories, folder.scan,
           lambda root: folder.looks_like(root) or _dataset_root(folder.looks_like)(root), folder.EXPECTED,
           references_optional=True, where=folder.category_folder),
)}
