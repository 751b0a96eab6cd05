"""The units of a grid: one (dataset, category) with its test images and the references of every (k, seed).

A unit is the grain of work and of resumption: it is encoded (through the feature cache), scored for every setting
and written as part files together. :func:`unit_key` names its results by everything that changes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winclip_lib.core.digests import content_digests
from winclip_lib.datasets.catalog import DATASET_LOADERS, DatasetError, Sample, class_name
from winclip_lib.datasets.layout import list_categories, no_categories_error
from winclip_lib.datasets.masks import mask_files
from winclip_lib.datasets.references import sample_references
from winclip_lib.datasets.scan import load_split
from winclip_lib.experiments.config import RunConfig

__all__ = ["Unit", "plan_units", "settings", "unit_key"]


def settings(shots: Iterable[int], seeds: Iterable[int]) -> list[tuple[int, int]]:
    """The (k, seed) pairs of a grid: (0, 0) once if 0 is in shots, then every k > 0 with every seed."""
    seeds = list(seeds)
    out: list[tuple[int, int]] = []
    for k in sorted(set(shots)):
        out.extend([(0, 0)] if k == 0 else [(k, s) for s in seeds])
    return out


@dataclass(frozen=True)
class Unit:
    """One (dataset, category) of the grid with its test images and the references of every (k, seed)."""

    dataset: str
    category: str
    root: Path
    loader: str
    test: tuple[Sample, ...]
    references: dict[tuple[int, int], tuple[Sample, ...]]

    @property
    def settings(self) -> list[tuple[int, int]]:
        return sorted(self.references, key=lambda ks: (ks[0], ks[1]))

    @property
    def reference_union(self) -> list[Sample]:
        """Distinct reference images over all (k, seed), in first-use order."""
        seen: dict[Path, Sample] = {}
        for ks in self.settings:
            for s in self.references[ks]:
                seen.setdefault(s.image_path, s)
        return list(seen.values())

    @property
    def class_name(self) -> str:
        return class_name(self.category, self.loader)

    def prompt_name(self, style: str = "words") -> str:
        """The object's name in the prompts: words ("metal nut") or the folder name ("metal_nut")."""
        return self.class_name if style == "words" else self.category

    def defect_states(self) -> tuple[str, ...]:
        """Anomalous state words from the test set's defect folder names ("broken_large" -> "{} with broken
        large"); none for layouts without defect names (VisA's split file calls every defect "bad")."""
        defects = sorted({s.defect for s in self.test if s.label == 1} - {"good", "bad"})
        return tuple(f"{{}} with {d.replace('_', ' ')}" for d in defects)

    def relative(self, path: Path) -> str:
        """A path relative to the dataset root, POSIX style."""
        return Path(path).relative_to(self.root).as_posix()

    @property
    def has_masks(self) -> bool:
        """Whether the anomalous test images have masks (a ``folder`` category may have none: image metrics only)."""
        return any(s.mask_path is not None for s in self.test if s.label == 1)

    def files(self) -> list[Path]:
        """Every input file of the unit: the test images, their masks (each file of a mask folder), the references."""
        files = [s.image_path for s in self.test]
        for s in self.test:
            if s.mask_path is not None:
                files += mask_files(s.mask_path)
        return files + [s.image_path for s in self.reference_union]

    def fingerprint(self) -> str:
        """Hash of the relative path and the *content* (:func:`~winclip_lib.core.digests.content_digest`) of
        every input file (:meth:`files`): a file rewritten with other bytes changes it even when its size and
        modification time are kept (``touch -d``, ``cp -p``, an archive restored with its times)."""
        h = hashlib.sha256()
        files = self.files()
        for p, digest in zip(files, content_digests(files), strict=True):
            h.update(f"{self.relative(p)}|{digest}\n".encode())
        return h.hexdigest()[:24]


def categories_of(cfg: RunConfig, dataset: str) -> list[str]:
    """The categories of ``dataset`` the config runs (all present unless it names some)."""
    loader, root = DATASET_LOADERS[dataset], cfg.datasets[dataset]
    present = list_categories(loader, root)
    wanted = cfg.categories.get(dataset)
    if wanted is None:
        if not present:
            raise no_categories_error(dataset, root)
        return present
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DatasetError(
            f"unknown {dataset} categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} under {root}; "
            f"categories present: {', '.join(present) or 'none'}"
        )
    return list(dict.fromkeys(wanted))


def subset(samples: list[Sample], n: int | None) -> tuple[Sample, ...]:
    """At most n test samples: the first n // 2 anomalous and the first n - n // 2 normal ones (in listing order),
    topped up from the other label when one runs short; all of them for n None."""
    if n is None or n >= len(samples):
        return tuple(samples)
    bad = [s for s in samples if s.label == 1]
    good = [s for s in samples if s.label == 0]
    n_bad = min(len(bad), max(n // 2, n - len(good)))
    chosen = set(map(id, bad[:n_bad] + good[: n - n_bad]))
    return tuple(s for s in samples if id(s) in chosen)


def plan_units(cfg: RunConfig) -> list[Unit]:
    """Every (dataset, category) of the grid with its samples; raises DatasetError on any data problem (missing
    root, unknown category, missing mask, too few normal training images for the largest k) before work starts."""
    units: list[Unit] = []
    for dataset, root in cfg.datasets.items():
        loader = DATASET_LOADERS[dataset]
        for category in categories_of(cfg, dataset):
            test = subset(load_split(loader, root, category, "test", require_masks=cfg.masks), cfg.max_test_images)
            train = load_split(loader, root, category, "train") if any(k > 0 for k in cfg.shots) else None
            refs = {
                (k, s): (() if k == 0 else
                         tuple(sample_references(loader, root, category, k, s, cfg.reference_sampling, train)))
                for k, s in settings(cfg.shots, cfg.seeds)
            }
            units.append(Unit(dataset, category, Path(root), loader, test, refs))
    if not units:
        raise DatasetError("nothing to run: give at least one dataset root")
    return units


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def unit_key(unit: Unit, result_config: dict[str, Any]) -> str:
    """24 hex digits naming a unit's results: its dataset, category, file listing and the result config."""
    blob = canonical_json({"dataset": unit.dataset, "category": unit.category, "loader": unit.loader,
                           "files": unit.fingerprint(), "config": result_config})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]
