"""The image counts of the official releases, per category: what ``data_prep.verify`` and the tests check a dataset
on disk against."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["EXPECTED_COUNTS", "EXPECTED_TOTALS", "Counts"]


class Counts(NamedTuple):
    """Image counts of one category (or a whole dataset): train images, normal and anomalous test images."""

    train: int
    test_normal: int
    test_anomalous: int

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
EXPECTED_TOTALS: dict[str, Counts] = {
    "mvtec": Counts(3629, 467, 1258),
    "visa": Counts(8659, 962, 1200),
    "mpdd": Counts(888, 176, 282),
}
