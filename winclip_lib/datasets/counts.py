"""The image counts of the official releases, per category: what ``data_prep.verify`` and the tests check a dataset
on disk against.

Every count is cited next to it. Abbreviations of the sources (read through the project's search tools):

* ``anomalib`` — github.com/open-edge-platform/anomalib at commit b7233686 (``src/anomalib/data/...``);
* ``ninja/<name>`` — github.com/dataset-ninja/<name>, Supervisely's summaries of each release (``ABSTRACT.md`` quotes
  the dataset paper, ``SUMMARY.md`` and ``stats/`` count the files of the release);
* ``vicoslab`` — github.com/vicoslab/mixed-segdec-net-comind2021, the KolektorSDD / KolektorSDD2 authors' code.

Datasets without published per-category counts (DTD-Synthetic, MVTec AD 2, Real-IAD, a ``folder``) have no entry:
``verify`` checks their layout and files and says that no counts were checked.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["EXPECTED_COUNTS", "EXPECTED_IMAGE_TOTALS", "EXPECTED_TOTALS", "Counts", "ImageTotals"]


class Counts(NamedTuple):
    """Image counts of one category (or a whole dataset): normal training images, normal and anomalous test images,
    and anomalous training images (KolektorSDD2 and DAGM ship some; they are listed but never used as
    references)."""

    train: int
    test_normal: int
    test_anomalous: int
    train_anomalous: int = 0

    @property
    def test(self) -> int:
        return self.test_normal + self.test_anomalous

    @property
    def masks(self) -> int:
        """One mask per anomalous test image."""
        return self.test_anomalous

    def __add__(self, other: object) -> Counts:  # type: ignore[override]
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(*(a + b for a, b in zip(self, other, strict=True)))


# Per-category counts of the official releases (VisA: the official ``split_csv/1cls.csv`` split).
# Their sums are the totals of the papers: MVTec 3,629 train / 467 + 1,258 test; VisA 8,659 train / 962 + 1,200
# test; MPDD 888 train / 176 + 282 test (checked by the tests).
EXPECTED_COUNTS: dict[str, dict[str, Counts]] = {
    "mvtec": {
        "bottle": Counts(209, 20, 63),
        "cable": Counts(224, 58, 92),
        "capsule": Counts(219, 23, 109),
        "carpet": Counts(280, 28, 89),
        "grid": Counts(264, 21, 57),
        "hazelnut": Counts(391, 40, 70),
        "leather": Counts(245, 32, 92),
        "metal_nut": Counts(220, 22, 93),
        "pill": Counts(267, 26, 141),
        "screw": Counts(320, 41, 119),
        "tile": Counts(230, 33, 84),
        "toothbrush": Counts(60, 12, 30),
        "transistor": Counts(213, 60, 40),
        "wood": Counts(247, 19, 60),
        "zipper": Counts(240, 32, 119),
    },
    "visa": {
        "candle": Counts(900, 100, 100),
        "capsules": Counts(542, 60, 100),
        "cashew": Counts(450, 50, 100),
        "chewinggum": Counts(453, 50, 100),
        "fryum": Counts(450, 50, 100),
        "macaroni1": Counts(900, 100, 100),
        "macaroni2": Counts(900, 100, 100),
        "pcb1": Counts(904, 100, 100),
        "pcb2": Counts(901, 100, 100),
        "pcb3": Counts(905, 101, 100),
        "pcb4": Counts(904, 101, 100),
        "pipe_fryum": Counts(450, 50, 100),
    },
    "mpdd": {
        "bracket_black": Counts(289, 32, 47),
        "bracket_brown": Counts(185, 26, 51),
        "bracket_white": Counts(110, 30, 30),
        "connector": Counts(128, 30, 14),
        "metal_plate": Counts(54, 26, 71),
        "tubes": Counts(122, 32, 69),
    },
}
# BTAD (``BTech_Dataset_transformed``): train/ok, test/ok, test/ko per product. Totals: 2,540 images, 1,799 train /
# 741 test, 290 ko (ninja/btad SUMMARY.md:3,5). Per product, as counted from the release in a public data check
# (a README table in the code search index: 01 400/21/49, 02 399/30/200, 03 1000/400/41), consistent with those totals
# and with the product-1 ko count 49 of ninja/btad stats/class_balance.json:1. One ko mask of 02 and ten of 03 are
# empty (ninja/btad stats/class_balance.json:1 counts 199 and 31 ko images with a defect region).
# KolektorSDD: 399 images, 52 defective and 347 defect-free (the KolektorSDD paper, as quoted in
# github.com/sybeam27/DOT-Prompt README.md "Datasets" item 2); the authors' loader leaves out kos21/Part7
# (vicoslab data/input_ksdd.py:37). No train/test split for anomaly detection is published: the split is anomalib's
# (every defective image in test, the defect-free ones split 80/20 with scikit-learn's train_test_split, seed 42:
# anomalib datasets/image/kolektor.py:153-162), which gives floor(0.8 * 347) = 277 train and 70 test images.
# KolektorSDD2: train 2,085 negative + 246 positive, test 894 negative + 110 positive (the KolektorSDD2 paper, quoted
# in ninja/kolektor-surface-defect-dataset-2 ABSTRACT.md:7). ninja's own file count (SUMMARY.md:3,5) is 3,336 images,
# 2,332 train: one more than the authors'; we follow the authors.
# MVTec LOCO AD: the paper's Table 1, quoted in ninja/mvtec-loco-ad ABSTRACT.md:11-18 (train, validation, test
# anomaly-free, structural, logical); both categories of an object share its train and anomaly-free test images.
# ninja's file count (SUMMARY.md:5) is 1,778 train / 305 validation against the paper's 1,772 / 304; we follow the
# paper. Validation images are not used and not counted here.
_LOCO = {  # object: (train, test good, structural, logical)
    "breakfast_box": (351, 102, 90, 83),
    "juice_bottle": (335, 94, 94, 142),
    "pushpins": (372, 138, 81, 91),
    "screw_bag": (360, 122, 82, 137),
    "splicing_connectors": (354, 119, 85, 108),
}
EXPECTED_COUNTS.update({
    "btad": {
        "01": Counts(400, 21, 49),
        "02": Counts(399, 30, 200),
        "03": Counts(1000, 400, 41),
    },
    "ksdd": {"electrical_commutators": Counts(277, 70, 52)},
    "ksdd2": {"electrical_commutators": Counts(2085, 894, 110, train_anomalous=246)},
    "loco": {
        f"{obj}_{kind}": Counts(train, good, logical if kind == "logical" else structural)
        for obj, (train, good, structural, logical) in _LOCO.items() for kind in ("logical", "structural")
    },
})

EXPECTED_TOTALS: dict[str, Counts] = {
    "mvtec": Counts(3629, 467, 1258),
    "visa": Counts(8659, 962, 1200),
    "mpdd": Counts(888, 176, 282),
    "btad": Counts(1799, 451, 290),
    "ksdd": Counts(277, 70, 52),
    "ksdd2": Counts(2085, 894, 110, 246),
    # each object's train and anomaly-free test images counted twice (once per kind): 2 x 1,772 and 2 x 575
    "loco": Counts(3544, 1150, 993),
}


class ImageTotals(NamedTuple):
    """What a release publishes when it does not give every count of :class:`Counts`: the images of each split
    (normal and anomalous together) and the anomalous images over both splits."""

    train_images: int
    test_images: int
    anomalous: int


# DAGM 2007: ten classes; classes 1-6 have 1,000 defect-free and 150 defective images, classes 7-10 2,000 and 300,
# each "randomly divided into training and testing subsets of equal sizes" (the dataset's description, quoted in
# ninja/industrial-optical-inspection ABSTRACT.md:8,11; file counts per split in its SUMMARY.md:5: 575 / 1,150).
# How many defective images each half holds is not published, so Counts are not checked for DAGM.
EXPECTED_IMAGE_TOTALS: dict[str, dict[str, ImageTotals]] = {
    "dagm": {f"Class{i}": ImageTotals(575, 575, 150) if i <= 6 else ImageTotals(1150, 1150, 300)
             for i in range(1, 11)},
}
