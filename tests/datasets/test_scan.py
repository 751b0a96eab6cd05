"""Listing a split on tiny generated folders in each official layout, the errors of a broken layout, and the
warnings about masks that look wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.datasets.trees import H, W, make_mvtec_tree, make_visa_raw, write_mask
from winclip_lib.core.imageio import load_image
from winclip_lib.datasets.catalog import DatasetError
from winclip_lib.datasets.layout import detect_layout, list_categories
from winclip_lib.datasets.masks import load_mask
from winclip_lib.datasets.scan import load_split, mask_warnings, scan_split


@pytest.fixture
def mvtec(tmp_path: Path) -> Path:
    return make_mvtec_tree(tmp_path / "mvtec")


def test_list_categories_canonical_order_then_extras(tmp_path):
    root = make_mvtec_tree(tmp_path / "r", categories=("zipper", "bottle", "aaa_extra"), n_train=1)
    (root / "not_a_category").mkdir()
    assert list_categories("mvtec", root) == ["bottle", "zipper", "aaa_extra"]
    with pytest.raises(ValueError, match="mvtec, visa, mpdd"):
        list_categories("mvtec_ad", root)


def test_load_split_mvtec(mvtec):
    train = load_split("mvtec", mvtec, "bottle", "train")
    assert [s.image_path.name for s in train] == ["000.png", "001.png", "002.png"]
    assert all(s.label == 0 and s.defect == "good" and s.mask_path is None and s.split == "train" for s in train)
    test = load_split("mvtec", mvtec, "bottle", "test")
    assert [(s.defect, s.image_path.name) for s in test] == [
        ("broken", "000.png"), ("broken", "001.png"), ("crack", "000.png"), ("crack", "001.png"),
        ("good", "000.png"), ("good", "001.png"),
    ]  # fmt: skip
    bad = [s for s in test if s.label == 1]
    assert len(bad) == 4 and all(s.mask_path.name.endswith("_mask.png") for s in bad)
    assert bad[0].mask_path == mvtec / "bottle" / "ground_truth" / "broken" / "000_mask.png"
    assert all(s.dataset == "mvtec" and s.category == "bottle" for s in test)
    assert test == load_split("mvtec", str(mvtec), "bottle", "test")  # deterministic, str root accepted
    with pytest.raises(dataclasses.FrozenInstanceError):
        test[0].label = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown split"):
        load_split("mvtec", mvtec, "bottle", "val")


def test_load_split_mpdd(tmp_path):
    root = make_mvtec_tree(tmp_path / "mpdd", categories=("tubes", "bracket_black"), defects=("flattening",))
    assert list_categories("mpdd", root) == ["bracket_black", "tubes"]
    test = load_split("mpdd", root, "tubes", "test")
    assert sum(s.label for s in test) == 2 and len(test) == 4
    assert {s.dataset for s in test} == {"mpdd"}
    assert load_mask(test[0]).sum() == 25


def test_load_split_visa_raw(tmp_path):
    root = make_visa_raw(tmp_path / "visa")
    assert detect_layout("visa", root) == "visa_raw"
    assert list_categories("visa", root) == ["candle", "pcb1"]
    train = load_split("visa", root, "pcb1", "train")
    assert len(train) == 3 and all(s.label == 0 and s.split == "train" for s in train)
    test = load_split("visa", root, "pcb1", "test")
    assert [s.label for s in test] == [0, 0, 1, 1, 1]
    anomalous = test[2]
    assert anomalous.mask_path == root / "pcb1" / "Data" / "Masks" / "Anomaly" / "000.png"
    assert anomalous.image_path.suffix == ".JPG" and anomalous.defect == "bad"
    mask = load_mask(anomalous)  # multi-class values 1 and 2 are both defect
    assert mask.dtype == bool and mask.shape == (H, W) and mask.sum() == 16 + 10
    assert load_image(anomalous.image_path).shape == (H, W, 3)


def test_load_split_visa_reorganised_1cls(tmp_path):
    root = make_mvtec_tree(tmp_path / "visa_1cls", categories=("pcb1", "candle"), defects=("bad",), suffix="")
    assert detect_layout("visa", root) == "mvtec"
    assert list_categories("visa", root) == ["candle", "pcb1"]
    test = load_split("visa", root, "candle", "test")
    bad = [s for s in test if s.label]
    assert len(bad) == 2 and bad[0].mask_path == root / "candle" / "ground_truth" / "bad" / "000.png"


def test_anomalous_image_without_mask_names_file(mvtec):
    (mvtec / "bottle" / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(DatasetError) as info:
        load_split("mvtec", mvtec, "bottle", "test")
    assert str(mvtec / "bottle" / "test" / "crack" / "001.png") in str(info.value)
    assert "001_mask.png" in str(info.value)
    samples, problems = scan_split("mvtec", mvtec, "bottle", "test")
    assert len(problems) == 1 and len(samples) == 6
    assert [s for s in samples if s.label and s.mask_path is None][0].image_path.name == "001.png"


def test_visa_raw_missing_mask_and_missing_image(tmp_path):
    root = make_visa_raw(tmp_path / "visa")
    (root / "candle" / "Data" / "Masks" / "Anomaly" / "001.png").unlink()
    (root / "candle" / "Data" / "Images" / "Normal" / "0004.JPG").unlink()
    with pytest.raises(DatasetError) as info:
        load_split("visa", root, "candle", "test")
    msg = str(info.value)
    assert "Anomaly/001.JPG has no mask" in msg and "Normal/0004.JPG" in msg


def test_unknown_empty_category_and_wrong_root(mvtec, tmp_path):
    with pytest.raises(DatasetError, match="'cable' not found.*bottle, carpet"):
        load_split("mvtec", mvtec, "cable", "test")
    (mvtec / "cable").mkdir()
    with pytest.raises(DatasetError, match="cable is empty"):
        load_split("mvtec", mvtec, "cable", "test")
    (mvtec / "pill" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no train images"):
        load_split("mvtec", mvtec, "pill", "train")
    with pytest.raises(DatasetError, match="single category folder; pass its parent"):
        load_split("mvtec", mvtec / "bottle", "bottle", "test")
    with pytest.raises(DatasetError, match=f"one level down: pass {mvtec}"):
        load_split("mvtec", tmp_path, "bottle", "test")
    with pytest.raises(DatasetError, match="does not exist"):
        load_split("mvtec", tmp_path / "nope", "bottle", "test")
    with pytest.raises(ValueError, match="valid datasets"):
        load_split("no_such_dataset", mvtec, "bottle", "test")


def test_visa_raw_without_split_csv(tmp_path):
    root = make_visa_raw(tmp_path / "visa")
    (root / "split_csv" / "1cls.csv").unlink()
    with pytest.raises(DatasetError, match="split_csv/1cls.csv"):
        load_split("visa", root, "candle", "test")


def test_masks_that_look_wrong_are_named(mvtec, tmp_path):
    """An anomalous image whose mask marks no pixel, and a mask beside a good image (MVTec layout and VisA's split
    file) give one warning each, naming both files; correct masks give none."""
    test = load_split("mvtec", mvtec, "bottle", "test")
    assert mask_warnings("mvtec", mvtec, "bottle", test) == []
    empty = mvtec / "bottle" / "ground_truth" / "crack" / "001_mask.png"
    write_mask(empty, np.zeros((H, W), np.uint8))
    stray = write_mask(mvtec / "bottle" / "ground_truth" / "good" / "000_mask.png", np.ones((H, W), np.uint8))
    warnings = mask_warnings("mvtec", mvtec, "bottle", test)
    assert len(warnings) == 2
    assert warnings[0].startswith(f"{mvtec}/bottle/test/good/000.png is a good test image but has a mask {stray}")
    assert warnings[1].startswith(f"{mvtec}/bottle/test/crack/001.png is an anomalous test image but its mask {empty} "
                                  "marks no pixel (all zero)")
    assert mask_warnings("mvtec", mvtec, "bottle", test, masks=False) == warnings[:1]  # masks not used: not decoded
    root = make_visa_raw(tmp_path / "visa")
    csv_path = root / "split_csv" / "1cls.csv"
    lines = csv_path.read_text().splitlines()
    normal = next(i for i, line in enumerate(lines) if line.startswith("candle,test,normal"))
    lines[normal] += "candle/Data/Masks/Anomaly/000.png"  # a mask named on a normal row
    csv_path.write_text("\n".join(lines) + "\n")
    (warning,) = mask_warnings("visa", root, "candle", load_split("visa", root, "candle", "test"))
    assert "is a good test image but has a mask" in warning and "Anomaly/000.png" in warning
