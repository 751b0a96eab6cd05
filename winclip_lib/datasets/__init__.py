"""Datasets on disk: MVTec-AD, VisA (1cls split), MPDD, and the benchmarks later papers report WinCLIP on (BTAD,
KolektorSDD, KolektorSDD2, DAGM 2007, DTD-Synthetic, MVTec LOCO AD, MVTec AD 2, Real-IAD) in their official layouts;
your own labelled folders; and a synthetic set.

One concept per module: :mod:`~winclip_lib.datasets.catalog` (names, categories, class names, :class:`Sample`),
:mod:`~winclip_lib.datasets.counts` (official counts, each cited), :mod:`~winclip_lib.datasets.layout` (layouts on
disk), :mod:`~winclip_lib.datasets.formats` (the later benchmarks' layouts, one module each),
:mod:`~winclip_lib.datasets.scan` (listing a split), :mod:`~winclip_lib.datasets.listing` (listing helpers),
:mod:`~winclip_lib.datasets.masks` (ground truth), :mod:`~winclip_lib.datasets.references` (few-shot draws),
:mod:`~winclip_lib.datasets.synthetic` (the demo set). The most used names are re-exported here.
"""

from winclip_lib.datasets.catalog import (
    CATEGORIES,
    CLASS_NAMES,
    DATASET_LOADERS,
    DATASETS,
    DatasetError,
    Sample,
    class_name,
)
from winclip_lib.datasets.layout import detect_layout, layout_hint, list_categories
from winclip_lib.datasets.masks import load_mask
from winclip_lib.datasets.references import REFERENCE_SAMPLINGS, sample_references
from winclip_lib.datasets.scan import load_split, scan_split

__all__ = [
    "CATEGORIES",
    "CLASS_NAMES",
    "DATASETS",
    "DATASET_LOADERS",
    "REFERENCE_SAMPLINGS",
    "DatasetError",
    "Sample",
    "class_name",
    "detect_layout",
    "layout_hint",
    "list_categories",
    "load_mask",
    "load_split",
    "sample_references",
    "scan_split",
]
