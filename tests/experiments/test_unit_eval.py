"""Scoring a unit: the masks are prepared once for all of its settings, the maps stay tensors, and evaluation at each
mask's own resolution pools the pixels of images of different sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.datasets.synthetic import make_synthetic
from winclip_lib.evaluation import device_metrics
from winclip_lib.evaluation.metrics import METRIC_NAMES
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.grid import run_grid
from winclip_lib.experiments.unit_eval import eval_geometry, eval_masks, model_for
from winclip_lib.experiments.units import plan_units


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory) -> Path:
    """One category whose test images (and masks) come in two sizes: 64 x 64 and, stretched, 64 x 96."""
    data = make_synthetic(tmp_path_factory.mktemp("data") / "syn", categories=("tiles",), n_train=2, n_test_good=2,
                          n_test_bad=4, size=64)
    for path in (data / "tiles" / "test" / "good" / "000.png", data / "tiles" / "test" / "scratch" / "000.png"):
        Image.open(path).resize((96, 64), Image.Resampling.BILINEAR).save(path)
        mask = data / "tiles" / "ground_truth" / path.parent.name / f"{path.stem}_mask.png"
        if mask.exists():
            Image.open(mask).resize((96, 64), Image.Resampling.NEAREST).save(mask)
    return data


def test_masks_are_prepared_once_per_unit_and_different_sizes_pool(mixed_sizes, tiny, tmp_path, monkeypatch):
    calls = []
    real = device_metrics.label_regions

    def counting(masks):
        calls.append(1)
        return real(masks)

    monkeypatch.setattr(device_metrics, "label_regions", counting)
    cfg = RunConfig(datasets={"synthetic": str(mixed_sizes)}, shots=(0, 1), seeds=(0, 1), model_name=TINY_MODEL,
                    pretrained=None, precision="fp32", device="cpu", cache_dir=str(tmp_path / "cache"),
                    out_dir=str(tmp_path / "out"), batch_size=4, eval_resolution="mask")
    result = run_grid(cfg, progress=False, backbone=tiny)
    assert len(calls) == 1  # one unit, three settings: the regions are labelled once
    metrics = result.metrics
    assert sorted(set(zip(metrics["k"], metrics["seed"], strict=True))) == [(0, 0), (1, 0), (1, 1)]
    assert metrics["value"].notna().all()

    # the zero-shot pixel metrics are those of the pooled pixels of every image at its mask's own size
    unit = plan_units(cfg)[0]
    masks, full = eval_masks(unit, eval_geometry(cfg, tiny.image_size), "mask", cfg.mask_resize)
    assert {m.shape for m in masks} == {(64, 64), (64, 96)}
    model = model_for(unit, cfg, tiny)
    with torch.inference_mode():
        pred = model.predict([s.image_path for s in unit.test])
        maps = [model.geometry.map_to_region(pred.map[i : i + 1], *full[i])[0].numpy() for i in range(len(full))]
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([m.ravel() for m in maps])
    zero_shot = metrics[metrics["k"] == 0].set_index("metric")["value"]
    assert list(zero_shot.index) == list(METRIC_NAMES)
    assert zero_shot["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert zero_shot["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-6)
    labels = np.array([m.any() for m in masks])
    assert zero_shot["image_auroc"] == pytest.approx(roc_auc_score(labels, pred.score.numpy()), abs=1e-6)
    expected_pro = device_metrics.aupro(maps, device_metrics.PixelTargets.from_masks(masks))
    assert zero_shot["pixel_aupro"] == pytest.approx(expected_pro, abs=1e-6)
