"""``winclip run --folder ROOT``: your own labelled images (good/, one folder per defect, optional masks matched by
name, optional train/ references), evaluated with every metric — or with the image metrics alone where there are
no masks (pixel metrics NaN)."""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pytest

from data_prep import verify as vf
from winclip_lib.cli import main
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.datasets.catalog import DatasetError
from winclip_lib.datasets.layout import list_categories
from winclip_lib.datasets.scan import load_split
from winclip_lib.datasets.standins import make_folder
from winclip_lib.evaluation.metrics import IMAGE_METRIC_NAMES, METRIC_NAMES


def _run(tmp_path, root, *extra: str) -> pd.DataFrame:
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    assert main(["run", "--folder", str(root), "--model", TINY_MODEL, "--pretrained", "none", "--precision", "fp32",
                 "--device", "cpu", "--seeds", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                 "--no-progress", *extra]) == 0
    return pd.read_csv(out / "metrics.csv", dtype={"category": str})


def test_one_category_with_masks_and_the_defect_folders(tmp_path):
    root = make_folder(tmp_path / "metal_nut", n_good=3, defects={"scratch": 2, "spot": 1}, mask_suffix="_mask")
    assert list_categories("folder", root) == ["metal_nut"]
    test = load_split("folder", root, "metal_nut", "test")
    assert [(s.defect, s.label, s.mask_path is not None) for s in test] == [
        ("good", 0, False)] * 3 + [("scratch", 1, True)] * 2 + [("spot", 1, True)]
    assert test[3].mask_path == root / "masks" / "scratch" / "part_0_mask.png"
    assert [s.image_path.name for s in load_split("folder", root, "metal_nut", "train")] == ["ref_0.png", "ref_1.png"]


def test_every_metric_with_masks_image_metrics_alone_without(tmp_path, capsys):
    with_masks = make_folder(tmp_path / "sets" / "with_masks")
    metrics = _run(tmp_path, with_masks, "--shots", "0", "1")
    assert sorted(set(metrics["metric"])) == sorted(METRIC_NAMES) and set(metrics["k"]) == {0, 1}
    assert all(math.isfinite(v) for v in metrics["value"])
    without = make_folder(tmp_path / "sets" / "without_masks", masks=False)
    metrics = _run(tmp_path, without, "--shots", "0", "1")
    assert set(metrics["category"]) == {"without_masks"} and len(metrics) == 2 * len(METRIC_NAMES)
    image = metrics[metrics["metric"].isin(IMAGE_METRIC_NAMES)]["value"]
    pixel = metrics[~metrics["metric"].isin(IMAGE_METRIC_NAMES)]["value"]
    assert len(image) == 6 and all(math.isfinite(v) for v in image)
    assert len(pixel) == 8 and all(math.isnan(v) for v in pixel)
    assert "NaN" in capsys.readouterr().out  # the summary shows the pixel metrics as not available


def test_several_categories_and_mixed_mask_availability(tmp_path):
    root = tmp_path / "line"
    make_folder(root / "bracket", defects={"bent": 2})
    make_folder(root / "washer", masks=False, n_train=0)
    assert list_categories("folder", root) == ["bracket", "washer"]
    metrics = _run(tmp_path, root, "--shots", "0")
    pixel = metrics[~metrics["metric"].isin(IMAGE_METRIC_NAMES)].set_index("category")["value"]
    assert all(math.isfinite(v) for v in pixel["bracket"]) and all(math.isnan(v) for v in pixel["washer"])
    report = vf.verify_root("folder", root)
    assert report.ok, report.all_problems  # no train/ for washer is fine: zero-shot only


def test_clear_errors_for_a_missing_mask_no_references_and_no_good_folder(tmp_path, capsys):
    root = make_folder(tmp_path / "cable", n_train=0)
    (root / "masks" / "spot" / "part_1.png").unlink()
    with pytest.raises(DatasetError, match=f"{root}/spot/part_1.png has no mask: expected {root}/masks/spot/part_1"):
        load_split("folder", root, "cable", "test")
    assert len(load_split("folder", root, "cable", "test", require_masks=False)) == 7  # --no-masks
    argv = ["run", "--folder", str(root), "--model", TINY_MODEL, "--pretrained", "none", "--no-masks", "--shots", "1",
            "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 2
    assert f"no normal reference images for k > 0: put them in {root}/train/" in capsys.readouterr().err
    shutil.rmtree(root / "good")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"no folder categories found under {root}: expected {root}/good/*.png" in err and err.count("\n") == 1
