"""BTAD, KolektorSDD, KolektorSDD2, DAGM 2007, DTD-Synthetic, MVTec LOCO AD, MVTec AD 2 and Real-IAD on stand-ins
in their official layouts (winclip_lib/datasets/standins.py): listing, labels and masks, ``verify`` against the official
counts, one clear line for a wrong layout, and one end-to-end ``winclip run --<name>`` each on the tiny model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_prep import verify as vf
from winclip_lib.cli import build_parser, main
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.datasets.catalog import CATEGORIES, DATASET_LOADERS, DATASETS, class_name
from winclip_lib.datasets.counts import EXPECTED_COUNTS, EXPECTED_IMAGE_TOTALS, EXPECTED_TOTALS, Counts
from winclip_lib.datasets.layout import list_categories
from winclip_lib.datasets.masks import load_mask
from winclip_lib.datasets.references import sample_references
from winclip_lib.datasets.scan import load_split, scan_split
from winclip_lib.datasets.standins import (
    make_btad,
    make_dagm,
    make_dtd,
    make_ksdd,
    make_ksdd2,
    make_loco,
    make_mvtec2,
    make_realiad,
    render,
    write_mask,
)
from winclip_lib.evaluation.metrics import IMAGE_METRIC_NAMES, METRIC_NAMES

NEW = ("btad", "ksdd", "ksdd2", "dagm", "dtd", "loco", "mvtec2", "realiad")


def _split(dataset: str, root: Path, category: str, split: str) -> tuple[int, int, int]:
    """(images, anomalous, with a mask) of a split."""
    s = load_split(dataset, root, category, split)
    return len(s), sum(x.label for x in s), sum(x.mask_path is not None for x in s)


# ------------------------------------------------------------------------------------------ catalog


def test_every_new_dataset_has_a_flag_categories_words_and_cited_counts():
    run = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for name in (*NEW, "folder"):
        assert name in DATASETS and DATASET_LOADERS[name] == name and f"--{name} ROOT" in run
    assert len(CATEGORIES["dagm"]) == 10 and len(CATEGORIES["dtd"]) == 12 and len(CATEGORIES["realiad"]) == 30
    assert CATEGORIES["loco"][:2] == ("breakfast_box_logical", "breakfast_box_structural")
    words = {c: class_name(c, d) for d in NEW for c in CATEGORIES[d]}
    assert words["01"] == "industrial product" and words["Class7"] == "textured surface"
    assert words["Woven_001"] == "woven texture" and words["Stratified_154"] == "stratified texture"
    assert words["splicing_connectors_logical"] == words["splicing_connectors_structural"] == "splicing connectors"
    assert words["electrical_commutators"] == "electrical commutator" and words["transistor1"] == "transistor"
    assert words["fruit_jelly"] == "fruit jelly" and words["audiojack"] == "audio jack"
    assert all("_" not in w and not any(ch.isdigit() for ch in w) for w in words.values())
    for name in ("btad", "ksdd", "ksdd2", "loco"):
        assert tuple(EXPECTED_COUNTS[name]) == CATEGORIES[name]
        assert sum(EXPECTED_COUNTS[name].values(), Counts(0, 0, 0)) == EXPECTED_TOTALS[name]
    assert EXPECTED_TOTALS["btad"] == Counts(1799, 451, 290)  # 2,540 images, 290 ko
    assert EXPECTED_TOTALS["ksdd"].test + EXPECTED_TOTALS["ksdd"].train == 399
    assert sum(EXPECTED_TOTALS["ksdd2"]) == 3335
    loco = EXPECTED_COUNTS["loco"]
    assert sum(c.train for c in loco.values()) == 2 * 1772 and sum(c.test_anomalous for c in loco.values()) == 993
    totals = EXPECTED_IMAGE_TOTALS["dagm"]
    assert sum(t.train_images + t.test_images for t in totals.values()) == 6 * 1150 + 4 * 2300


# ------------------------------------------------------------------------------------------ loaders


def test_btad_products_masks_by_stem_and_empty_masks(tmp_path):
    root = make_btad(tmp_path / "BTech_Dataset_transformed", {"01": (3, 2, 3), "02": (2, 1, 2), "03": (2, 1, 2)})
    assert list_categories("btad", root) == ["01", "02", "03"]
    assert _split("btad", root, "01", "train") == (3, 0, 0) and _split("btad", root, "01", "test") == (5, 3, 3)
    test = load_split("btad", root, "03", "test")
    assert [(s.defect, s.image_path.name, s.mask_path and s.mask_path.name) for s in test] == [
        ("ko", "0000.bmp", "0000.bmp"), ("ko", "0001.bmp", "0001.bmp"), ("good", "0000.bmp", None)]
    empty = root / "02" / "ground_truth" / "ko" / "0000.png"  # the release has such empty masks
    write_mask(empty, np.zeros((32, 32), bool))
    sample = next(s for s in load_split("btad", root, "02", "test") if s.mask_path == empty)
    assert sample.label == 1 and not load_mask(sample).any()


def test_kolektorsdd_labels_from_label_images_authors_exclusion_and_anomalib_split(tmp_path):
    root = make_ksdd(tmp_path / "KolektorSDD", n_items=5, parts=4, defective=[(1, 0), (2, 3), (5, 1)])
    assert list_categories("ksdd", root) == ["electrical_commutators"]
    train = load_split("ksdd", root, "electrical_commutators", "train")
    test = load_split("ksdd", root, "electrical_commutators", "test")
    assert len(train) == 13 and all(s.label == 0 for s in train)  # floor(0.8 * 17 defect-free)
    assert sum(s.label for s in test) == 3 and len(test) == 3 + 4
    assert {s.image_path.relative_to(root).as_posix() for s in test if s.label} == {
        "kos01/Part0.jpg", "kos02/Part3.jpg", "kos05/Part1.jpg"}
    assert not {s.image_path for s in train} & {s.image_path for s in test}
    assert [s.image_path for s in train] == [s.image_path for s in load_split("ksdd", root, "electrical_commutators",
                                                                             "train")]
    defect = next(s for s in test if s.label)
    assert defect.mask_path.name == f"{defect.image_path.stem}_label.bmp" and load_mask(defect).any()
    full = make_ksdd(tmp_path / "full", n_items=21, parts=8, defective=2)  # writes kos21/Part7 too
    listed = load_split("ksdd", full, "electrical_commutators", "train") + load_split(
        "ksdd", full, "electrical_commutators", "test")
    assert len(listed) == 21 * 8 - 1 and not any(s.image_path.parent.name == "kos21" and s.image_path.stem == "Part7"
                                                 for s in listed)


def test_kolektorsdd2_train_positives_are_listed_but_never_references(tmp_path):
    root = make_ksdd2(tmp_path / "KolektorSDD2", train=(4, 3), test=(2, 2))
    assert _split("ksdd2", root, "electrical_commutators", "train") == (7, 3, 3)
    assert _split("ksdd2", root, "electrical_commutators", "test") == (4, 2, 2)
    refs = sample_references("ksdd2", root, "electrical_commutators", 4, seed=0)
    assert len(refs) == 4 and all(s.label == 0 for s in refs)
    with pytest.raises(ValueError, match="only 4 normal training images"):
        sample_references("ksdd2", root, "electrical_commutators", 5, seed=0)


def test_dagm_defective_when_a_label_image_exists(tmp_path):
    root = make_dagm(tmp_path / "DAGM", {"Class2": (3, 2, 2, 2), "Class10": (1, 1, 1, 1)})
    assert list_categories("dagm", root) == ["Class2", "Class10"]
    assert _split("dagm", root, "Class2", "train") == (5, 2, 2) and _split("dagm", root, "Class2", "test") == (4, 2, 2)
    bad = [s for s in load_split("dagm", root, "Class2", "test") if s.label]
    assert [s.mask_path.relative_to(root).as_posix() for s in bad] == ["Class2/Test/Label/0003_label.PNG",
                                                                        "Class2/Test/Label/0004_label.PNG"]


def test_dtd_synthetic_is_read_in_the_mvtec_layout(tmp_path):
    root = make_dtd(tmp_path / "DTD-Synthetic", textures=("Woven_127", "Blotchy_099"), n_train=2, n_good=1, n_bad=2)
    assert list_categories("dtd", root) == ["Blotchy_099", "Woven_127"]  # the canonical (alphabetical) order
    assert _split("dtd", root, "Woven_127", "test") == (3, 2, 2)


def test_loco_kinds_are_categories_and_multi_region_masks_merge(tmp_path):
    root = make_loco(tmp_path / "mvtec_loco_anomaly_detection", {"juice_bottle": (3, 1, 2, 2, 3)})
    assert list_categories("loco", root) == ["juice_bottle_logical", "juice_bottle_structural"]
    logical = load_split("loco", root, "juice_bottle_logical", "test")
    structural = load_split("loco", root, "juice_bottle_structural", "test")
    assert {s.defect for s in logical} == {"good", "logical_anomalies"} and len(logical) == 2 + 3
    assert {s.defect for s in structural} == {"good", "structural_anomalies"} and len(structural) == 2 + 2
    assert [s.image_path for s in logical if not s.label] == [s.image_path for s in structural if not s.label]
    assert len(load_split("loco", root, "juice_bottle_logical", "train")) == 3  # validation/ is not read
    two = next(s for s in logical if s.image_path.name == "002.png")  # two region files: 000.png, 001.png
    assert two.mask_path.is_dir() and sorted(p.name for p in two.mask_path.iterdir()) == ["000.png", "001.png"]
    _, whole = render("disc", ("loco", "juice_bottle", "logical_anomalies", 2), 32, "missing")
    merged = load_mask(two)
    assert merged.any() and np.array_equal(merged, whole)  # the union of both regions, whatever their pixel values


def test_mvtec2_public_test_split_only(tmp_path):
    root = make_mvtec2(tmp_path / "mvtec_ad_2", {"sheet_metal": (3, 1, 2, 3), "can": (2, 1, 1, 1)})
    assert list_categories("mvtec2", root) == ["can", "sheet_metal"]
    test = load_split("mvtec2", root, "sheet_metal", "test")
    assert len(test) == 5 and not any("private" in str(s.image_path) or "ground_truth" in str(s.image_path)
                                      for s in test)
    assert {s.mask_path.name for s in test if s.label} == {"000_regular_mask.png", "001_overexposed_mask.png",
                                                           "002_regular_mask.png"}


@pytest.mark.parametrize("nested", [False, True])
def test_realiad_single_view_from_the_split_files(tmp_path, nested):
    root = make_realiad(tmp_path / "Real-IAD", {"audiojack": (3, 2, 3), "zipper": (1, 1, 1)}, nested_jsons=nested)
    assert list_categories("realiad", root) == ["audiojack", "zipper"]
    train, test = (load_split("realiad", root, "audiojack", s) for s in ("train", "test"))
    assert len(train) == 3 and len(test) == 5 and all("_C1_" in s.image_path.name for s in train + test)
    assert [s.defect for s in test] == ["good", "good", "AK", "BX", "QS"]
    assert all(s.image_path.relative_to(root).parts[:2] == ("realiad_1024", "audiojack") for s in test)
    assert all(s.mask_path.with_suffix(".jpg") == s.image_path for s in test if s.label)


def test_realiad_follows_the_authors_on_labels_and_finds_the_image_folder(tmp_path):
    root = make_realiad(tmp_path / "Real-IAD", {"tape": (1, 1, 2)}, resolution="realiad_256")
    split_file = root / "realiad_jsons_sv" / "tape.json"
    info = json.loads(split_file.read_text())
    info["test"][1]["mask_path"] = None  # an NG sample without a mask is read as normal, as the authors' loader does
    split_file.write_text(json.dumps(info))
    test = load_split("realiad", root, "tape", "test")
    assert [s.label for s in test] == [0, 0, 1] and all("realiad_256" in s.image_path.parts for s in test)


# ------------------------------------------------------------------------------------------ verify


def test_verify_btad_official_counts_of_product_01_and_a_missing_file(tmp_path):
    root = make_btad(tmp_path / "btad", {"01": EXPECTED_COUNTS["btad"]["01"][:3]})
    report = vf.verify_root("btad", root, categories=["01"], check_files=False)
    assert report.ok, report.all_problems
    assert report.rows[0].counts == Counts(400, 21, 49)
    (root / "01" / "test" / "ko" / "0007.bmp").unlink()
    assert vf.verify_root("btad", root, categories=["01"], check_files=False).all_problems == [
        "01: 48 test anomalous images, expected 49"]
    assert "category '02' is missing: expected " + str(root / "02") in vf.verify_root("btad", root).all_problems


def test_verify_kolektorsdd_official_399(tmp_path):
    root = make_ksdd(tmp_path / "KolektorSDD")
    report = vf.verify_root("ksdd", root, check_files=False)
    assert report.ok, report.all_problems
    assert report.total == Counts(277, 70, 52) and report.total.train + report.total.test == 399
    (root / "kos03" / "Part2_label.bmp").unlink()
    problems = vf.verify_root("ksdd", root, check_files=False).all_problems
    assert f"image {root / 'kos03' / 'Part2.jpg'} has no label image: expected {root / 'kos03' / 'Part2_label.bmp'}" \
        in problems


def test_verify_kolektorsdd2_counts_scaled_for_the_stand_in(tmp_path, monkeypatch):
    root = make_ksdd2(tmp_path / "KolektorSDD2", train=(5, 2), test=(3, 2))
    report = vf.verify_root("ksdd2", root)
    assert sorted(report.all_problems) == sorted([
        "electrical_commutators: 5 train images, expected 2085",
        "electrical_commutators: 3 test normal images, expected 894",
        "electrical_commutators: 2 test anomalous images, expected 110",
        "electrical_commutators: 2 train anomalous images, expected 246"])
    monkeypatch.setitem(EXPECTED_COUNTS["ksdd2"], "electrical_commutators", Counts(5, 3, 2, train_anomalous=2))
    assert vf.verify_root("ksdd2", root).ok
    assert "+2" in vf.format_report(vf.verify_root("ksdd2", root))


def test_verify_dagm_published_split_sizes(tmp_path):
    root = make_dagm(tmp_path / "DAGM", {"Class1": (500, 75, 500, 75)}, size=16)
    report = vf.verify_root("dagm", root, categories=["Class1"], check_files=False)
    assert report.ok, report.all_problems
    (root / "Class1" / "Test" / "0001.PNG").unlink()
    assert vf.verify_root("dagm", root, categories=["Class1"], check_files=False).all_problems == [
        "Class1: 574 test images, expected 575"]


def test_verify_loco_official_counts_of_breakfast_box(tmp_path):
    counts = EXPECTED_COUNTS["loco"]
    structural, logical = counts["breakfast_box_structural"], counts["breakfast_box_logical"]
    root = make_loco(tmp_path / "loco", {"breakfast_box": (351, 62, 102, structural.test_anomalous,
                                                           logical.test_anomalous)}, size=16)
    report = vf.verify_root("loco", root, categories=["breakfast_box_logical", "breakfast_box_structural"],
                            check_files=False)
    assert report.ok, report.all_problems
    assert [r.counts for r in report.rows] == [Counts(351, 102, 83), Counts(351, 102, 90)]
    shutil.rmtree(root / "breakfast_box" / "ground_truth" / "logical_anomalies" / "005")
    problems = vf.verify_root("loco", root, categories=["breakfast_box_logical"], check_files=False).all_problems
    assert problems == [f"anomalous test image {root}/breakfast_box/test/logical_anomalies/005.png has no mask: "
                        f"expected {root}/breakfast_box/ground_truth/logical_anomalies/005/000.png"]


@pytest.mark.parametrize("dataset", ["dtd", "mvtec2", "realiad"])
def test_verify_without_published_counts_checks_layout_and_files(tmp_path, dataset):
    make = {"dtd": lambda r: make_dtd(r, ("Mesh_114",), 2, 1, 2),
            "mvtec2": lambda r: make_mvtec2(r, {"vial": (2, 1, 1, 2)}),
            "realiad": lambda r: make_realiad(r, {"mint": (2, 1, 2)})}[dataset]
    root = make(tmp_path / dataset)
    category = list_categories(dataset, root)[0]
    report = vf.verify_root(dataset, root, categories=[category])
    assert report.ok and report.rows[0].counts[:3] == (2, 1, 2)
    assert report.notes == [f"no published per-category counts for {dataset}: layout and files checked, counts not"]
    mask = next(s.mask_path for s in load_split(dataset, root, category, "test") if s.label)
    mask.write_bytes(mask.read_bytes()[:40])  # truncated
    assert any(str(mask) in p for p in vf.verify_root(dataset, root, categories=[category]).all_problems)


# ------------------------------------------------------------------------------------------ wrong layouts


def _one_line_error(argv: list[str], tmp_path: Path, capsys) -> str:
    assert main(["run", *argv, "--model", TINY_MODEL, "--pretrained", "none", "--cache-dir", str(tmp_path / "c"),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("winclip: error: ") and "\n" not in err, err
    return err


def test_a_wrong_layout_is_one_line_naming_what_is_missing(tmp_path, capsys):
    btad = make_btad(tmp_path / "wrap" / "BTech_Dataset_transformed", {"01": (1, 1, 1)})
    assert f"one level down: pass {btad} as the root" in _one_line_error(["--btad", str(btad.parent)], tmp_path,
                                                                           capsys)
    (btad / "01" / "ground_truth" / "ko" / "0000.png").unlink()
    assert f"expected {btad}/01/ground_truth/ko/0000.png" in _one_line_error(["--btad", str(btad)], tmp_path, capsys)
    ksdd2 = make_ksdd2(tmp_path / "KolektorSDD2", train=(1, 0), test=(1, 1))
    assert f"pass its parent folder {ksdd2} as the root" in _one_line_error(["--ksdd2", str(ksdd2 / "train")],
                                                                            tmp_path, capsys)
    dagm = make_dagm(tmp_path / "DAGM", {"Class1": (1, 0, 1, 1)})
    shutil.rmtree(dagm / "Class1" / "Test")
    assert f"missing folder {dagm}/Class1/Test" in _one_line_error(["--dagm", str(dagm)], tmp_path, capsys)
    ad2 = make_mvtec2(tmp_path / "ad2", {"rice": (1, 0, 1, 1)})
    shutil.rmtree(ad2 / "rice" / "test_public")
    assert f"missing folder {ad2}/rice/test_public" in _one_line_error(["--mvtec2", str(ad2)], tmp_path, capsys)
    riad = make_realiad(tmp_path / "Real-IAD", {"pcb": (1, 1, 1)})
    listed = next((riad / "realiad_1024" / "pcb" / "OK").rglob("*_C1_*.jpg"))
    listed.unlink()
    assert f"missing image {listed} (listed in {riad}/realiad_jsons_sv/pcb.json)" in _one_line_error(
        ["--realiad", str(riad)], tmp_path, capsys)
    (riad / "realiad_jsons_sv" / "pcb.json").write_text('{"train": []}')
    assert "is not a Real-IAD split file: expected the keys meta, train and test" in _one_line_error(
        ["--realiad", str(riad)], tmp_path, capsys)
    assert f"no loco categories found under {tmp_path}" in _one_line_error(["--loco", str(tmp_path)], tmp_path, capsys)


# ------------------------------------------------------------------------------------------ end to end


STAND_INS = {
    "btad": lambda r: make_btad(r, {"01": (2, 2, 2), "02": (2, 1, 2)}),
    "ksdd": lambda r: make_ksdd(r, n_items=2, parts=4, defective=[(1, 1), (2, 2)]),
    "ksdd2": lambda r: make_ksdd2(r, train=(2, 1), test=(2, 2)),
    "dagm": lambda r: make_dagm(r, {"Class1": (2, 1, 2, 2)}),
    "dtd": lambda r: make_dtd(r, ("Woven_001",), 2, 2, 2),
    "loco": lambda r: make_loco(r, {"pushpins": (2, 0, 2, 2, 2)}),
    "mvtec2": lambda r: make_mvtec2(r, {"walnuts": (2, 0, 2, 2)}),
    "realiad": lambda r: make_realiad(r, {"switch": (2, 2, 2)}),
}


@pytest.mark.parametrize("dataset", NEW)
def test_winclip_run_end_to_end_on_the_tiny_model(tmp_path, dataset, capsys):
    root = STAND_INS[dataset](tmp_path / dataset)
    out = tmp_path / "out"
    assert main(["run", f"--{dataset}", str(root), "--model", TINY_MODEL, "--pretrained", "none", "--precision", "fp32",
                 "--device", "cpu", "--shots", "0", "1", "--seeds", "0", "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(out), "--no-progress"]) == 0
    assert "DEMO" in capsys.readouterr().out
    metrics = pd.read_csv(out / "metrics.csv", dtype={"category": str})
    categories = list_categories(dataset, root)
    assert set(metrics["dataset"]) == {dataset} and sorted(set(metrics["category"])) == sorted(categories)
    for category in categories:
        rows = metrics[metrics["category"] == category]
        assert sorted(zip(rows["k"], rows["metric"], strict=True)) == sorted(
            (k, m) for k in (0, 1) for m in METRIC_NAMES)
        assert all(0.0 <= v <= 1.0 and math.isfinite(v) for v in rows["value"]), rows  # every test set has masks
    n_test = sum(len(scan_split(dataset, root, c, "test")[0]) for c in categories)
    scores = pd.read_csv(out / "scores.csv", dtype={"category": str})
    assert len(scores) == 2 * n_test and set(metrics["metric"]) >= set(IMAGE_METRIC_NAMES)


# ------------------------------------------------------------------------------------------ extraction, published


def test_extract_finds_the_btad_root_inside_its_archive(tmp_path):
    import zipfile

    from data_prep.extract import extract_dataset

    tree = make_btad(tmp_path / "tree" / "BTech_Dataset_transformed", {"01": (1, 1, 1), "03": (1, 1, 1)})
    archive = tmp_path / "btad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(tree.parent.rglob("*")):
            zf.write(f, f.relative_to(tree.parent).as_posix())
    report = extract_dataset("btad", archive, tmp_path / "data", verify=True, check_files=False)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["01", "03"]
    assert [r.category for r in report.rows] == ["01", "03"] and "category '02' is missing" in report.problems[0]


def test_published_numbers_are_recorded_with_their_check():
    from importlib import resources

    with resources.files("winclip_lib.report").joinpath("published_results.csv").open(encoding="utf-8") as f:
        table = pd.read_csv(f, dtype={"dataset": str, "category": str})
    assert list(table.columns) == ["source", "table", "dataset", "category", "k", "metric", "value", "check", "note"]
    assert set(table["check"]) == {"confirmed", "unconfirmed"} and set(table["dataset"]) <= set(DATASETS)
    assert set(table["metric"]) <= set(METRIC_NAMES) and table["value"].between(0, 100).all()
    zero_shot = table[table["source"].str.startswith("AnomalyCLIP")].set_index(["dataset", "metric"])["value"]
    assert zero_shot[("btad", "image_auroc")] == 68.2 and zero_shot[("ksdd", "pixel_aupro")] == 24.2
    assert zero_shot[("dagm", "image_ap")] == 79.5 and zero_shot[("dtd", "pixel_auroc")] == 83.9
    resad = table[table["source"].str.startswith("ResAD")]
    assert sorted(zip(resad["k"], resad["metric"], resad["value"], strict=True)) == [
        (2, "image_auroc", 85.5), (2, "pixel_auroc", 95.8), (4, "image_auroc", 87.2), (4, "pixel_auroc", 95.8)]
    assert set(resad["check"]) == {"confirmed"}
