"""Metrics against scikit-learn and against a slow, obviously-correct AUPRO; hand-made cases; degenerate input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from tests.evaluation.blobs import blob_masks
from winclip_lib.evaluation import metrics as M


def slow_f1_max(y: np.ndarray, s: np.ndarray) -> float:
    best = 0.0
    for t in np.unique(s):
        pred = s >= t
        tp = int((pred & y).sum())
        p = tp / pred.sum()
        r = tp / y.sum()
        if p + r > 0:
            best = max(best, 2 * p * r / (p + r))
    return best


def slow_aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Every distinct threshold, explicit loops, scipy's 8-connected labelling, explicit piecewise integration."""
    regions = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    negatives = ~masks
    fprs, pros = [0.0], [0.0]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        pred = maps >= t
        fprs.append((pred & negatives).sum() / negatives.sum())
        pros.append(np.mean([pred[i][region].mean() for i, region in regions]))
    fprs.append(1.0)
    pros.append(1.0)
    area = 0.0
    for x0, y0, x1, y1 in zip(fprs[:-1], pros[:-1], fprs[1:], pros[1:], strict=True):
        if x0 >= fpr_limit:
            break
        if x1 <= fpr_limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            y_at = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            area += (fpr_limit - x0) * (y0 + y_at) / 2
            break
    return area / fpr_limit


def random_category(seed: int, n: int = 6, h: int = 12, w: int = 15, levels: int = 40):
    """Masks with several blobs of different sizes (some images normal) and maps correlated with them, quantised
    to ``levels`` values so that ties occur."""
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, n, h, w)
    maps = rng.random((n, h, w)) + masks * rng.uniform(0.1, 0.8)
    maps = np.round(maps * levels) / levels
    return masks, maps


# ------------------------------------------------------------------------------------ against scikit-learn


@pytest.mark.parametrize("seed", range(4))
def test_image_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(60) < 0.4
    s = np.round(rng.random(60) + 0.5 * y, 1)  # ties
    out = M.image_metrics(y.astype(int), s)
    assert tuple(out) == M.IMAGE_METRIC_NAMES
    assert out["image_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert out["image_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert out["image_f1_max"] == pytest.approx(slow_f1_max(y, s), abs=1e-12)
    assert 0.5 < out["image_auroc"] < 1.0


@pytest.mark.parametrize("seed", range(4))
def test_pixel_metrics_match_sklearn(seed):
    masks, maps = random_category(seed, n=8, h=20, w=17)
    y, s = masks.ravel(), maps.ravel()
    out = M.pixel_metrics(masks, maps)
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert out["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    p, r, _ = precision_recall_curve(y, s)
    assert out["pixel_f1_max"] == pytest.approx(np.max(2 * p * r / np.maximum(p + r, 1e-300)), abs=1e-12)
    assert out["pixel_f1_max"] == pytest.approx(slow_f1_max(y, s), abs=1e-12)


def test_f1_guard_zero_over_zero():
    # the top-scored image is normal: at that threshold precision = recall = 0
    assert M.f1_max([0, 1, 1], [0.9, 0.1, 0.2]) == pytest.approx(
        slow_f1_max(np.array([0, 1, 1], bool), np.array([0.9, 0.1, 0.2]))
    )


# ------------------------------------------------------------------------------------ AUPRO


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
def test_aupro_matches_slow_reference(seed, fpr_limit):
    masks, maps = random_category(seed)
    assert M.aupro(masks, maps, fpr_limit) == pytest.approx(slow_aupro(masks, maps, fpr_limit), abs=1e-12)


def test_aupro_continuous_scores_match_slow_reference():
    masks, _ = random_category(11, n=4, h=10, w=10)
    maps = np.random.default_rng(0).random(masks.shape).astype(np.float32) + masks * 0.3  # float32, no ties
    assert M.aupro(masks, maps) == pytest.approx(slow_aupro(masks, maps), abs=1e-12)


def test_aupro_perfect_and_inverted():
    masks, _ = random_category(3)
    perfect = masks.astype(float) + np.random.default_rng(0).random(masks.shape) * 0.1
    assert M.aupro(masks, perfect) == pytest.approx(1.0, abs=1e-12)
    assert M.aupro(masks, -perfect) == pytest.approx(0.0, abs=1e-12)
    assert M.aupro(masks, masks.astype(float)) == pytest.approx(1.0, abs=1e-12)


def test_aupro_regions_of_different_size_weigh_equally():
    masks = np.zeros((2, 20, 20), bool)
    masks[0, 2:12, 2:12] = True  # 100-pixel region, found
    masks[1, 5:7, 5:7] = True  # 4-pixel region, missed
    maps = np.full(masks.shape, 2.0)
    maps[0][masks[0]] = 3.0
    maps[1][masks[1]] = 1.0
    # thresholds 3, 2, 1: PRO 0.5 at FPR 0, then FPR jumps to 1. Pixel-weighted this would be 100 / 104.
    assert M.aupro(masks, maps) == pytest.approx(0.5, abs=1e-12)
    fpr, pro = M.pro_curve(masks, maps)
    np.testing.assert_allclose(fpr, [0, 0, 1, 1, 1])
    np.testing.assert_allclose(pro, [0, 0.5, 0.5, 1, 1])
    maps[0][masks[0]], maps[1][masks[1]] = 1.0, 3.0  # now only the small one is found
    assert M.aupro(masks, maps) == pytest.approx(0.5, abs=1e-12)


def test_aupro_uses_8_connectivity():
    masks = np.zeros((1, 8, 8), bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # diagonal neighbours: one region under 8-connectivity
    masks[0, 5, 5] = True
    maps = np.zeros(masks.shape)
    maps[0, 0, 0] = maps[0, 5, 5] = 1.0
    fpr, pro = M.pro_curve(masks, maps)
    assert pro[1] == pytest.approx((0.5 + 1.0) / 2)  # 4-connectivity would give 2 / 3


def test_aupro_interpolates_at_the_limit():
    # one region of 4 pixels, 10 defect-free pixels; scores give curve points (0, .25), (.2, .5), (.4, 1)
    masks = np.zeros((1, 2, 7), bool)
    masks[0, 0, :4] = True
    maps = np.zeros(masks.shape)
    maps[0, 0, :4] = [5, 4, 3, 3]
    maps[0, 1, :4] = [4, 4, 3, 3]  # 2 FPs at t=4, 4 FPs at t=3
    fpr, pro = M.pro_curve(masks, maps)
    np.testing.assert_allclose(fpr, [0, 0, 0.2, 0.4, 1, 1])
    np.testing.assert_allclose(pro, [0, 0.25, 0.5, 1, 1, 1])
    # area to 0.3: 0.2 * (0.25 + 0.5) / 2 + 0.1 * (0.5 + 0.75) / 2 = 0.075 + 0.0625
    assert M.aupro(masks, maps, 0.3) == pytest.approx((0.075 + 0.0625) / 0.3, abs=1e-12)
    assert M.aupro(masks, maps, 0.2) == pytest.approx(0.075 / 0.2, abs=1e-12)  # exactly on a point


def test_resolution_agnostic_and_torch_inputs():
    masks, maps = random_category(5, n=4, h=33, w=9)
    ref = M.evaluate_category(masks.any(axis=(1, 2)), maps.max(axis=(1, 2)), masks, maps)
    got = M.evaluate_category(
        torch.from_numpy(masks.any(axis=(1, 2))), torch.from_numpy(maps.max(axis=(1, 2))),
        torch.from_numpy(masks), torch.from_numpy(maps),
    )  # fmt: skip
    assert got == ref
    half = M.aupro(torch.from_numpy(masks), torch.from_numpy(maps).half())
    assert half == pytest.approx(M.aupro(masks, maps.astype(np.float16)), abs=1e-12)


# ------------------------------------------------------------------------------------ evaluate_category


def test_evaluate_category_keys_and_values():
    masks, maps = random_category(7, n=10)
    labels = masks.any(axis=(1, 2))
    scores = maps.max(axis=(1, 2))
    out = M.evaluate_category(labels, scores, masks, maps)
    assert tuple(out) == M.METRIC_NAMES == (
        "image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_aupro",
    )  # fmt: skip
    assert out == {
        **M.image_metrics(labels, scores),
        **M.pixel_metrics(masks, maps),
        "pixel_aupro": M.aupro(masks, maps),
    }
    assert all(0.0 <= v <= 1.0 for v in out.values())


def test_shape_and_value_errors():
    masks, maps = random_category(1)
    with pytest.raises(ValueError, match=r"masks \(6, 12, 15\) and maps \(6, 12, 14\)"):
        M.aupro(masks, maps[:, :, :-1])
    with pytest.raises(ValueError, match="same length"):
        M.image_metrics([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="labels has 5 entries"):
        M.evaluate_category(np.ones(5), np.ones(5), masks, maps)
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        M.pixel_metrics(masks, bad)
    with pytest.raises(ValueError, match="binary"):
        M.pixel_metrics(maps, maps)  # float maps passed as masks
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        M.aupro(masks[0], maps[0])
    with pytest.raises(ValueError, match="fpr_limit"):
        M.aupro(masks, maps, 0.0)


def test_single_class_categories_give_nan_with_warning():
    masks, maps = random_category(2)
    normal = np.zeros_like(masks)
    with pytest.warns(M.MetricWarning) as record:
        out = M.evaluate_category(np.zeros(len(masks)), maps.max(axis=(1, 2)), normal, maps)
    messages = [str(r.message) for r in record]
    assert len(messages) == 3 and "image_auroc, image_ap, image_f1_max set to NaN: no anomalous image" in messages[0]
    assert "pixel_auroc, pixel_ap, pixel_f1_max" in messages[1] and "pixel_aupro" in messages[2]
    assert all(np.isnan(v) for v in out.values())
    with pytest.warns(M.MetricWarning, match="no normal image"):
        img = M.image_metrics(np.ones(5), np.arange(5.0))
    assert np.isnan(img["image_auroc"]) and img["image_ap"] == 1.0 and img["image_f1_max"] == 1.0
    with pytest.warns(M.MetricWarning, match="no defect-free pixel"):
        assert np.isnan(M.aupro(np.ones((1, 3, 3), bool), maps[:1, :3, :3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a normal category raises no warning
        M.evaluate_category(masks.any(axis=(1, 2)), maps.max(axis=(1, 2)), masks, maps)


def test_mean_metrics_ignores_nan():
    rows = {
        "a": dict.fromkeys(M.METRIC_NAMES, 0.5),
        "b": {**dict.fromkeys(M.METRIC_NAMES, 1.0), "pixel_aupro": float("nan")},
    }
    mean = M.mean_metrics(rows)
    assert mean["image_auroc"] == 0.75 and mean["pixel_aupro"] == 0.5
    assert tuple(mean) == M.METRIC_NAMES


def _loop_aupro_sampled(masks: np.ndarray, maps: np.ndarray, steps: int = 200, limit: float = 0.3) -> float:
    """The public codes' PRO loop written plainly: thresholds, per-region overlaps, FPR, rescaled trapezoid."""
    from scipy import ndimage

    lo, hi = maps.min(), maps.max()
    fprs, pros = [], []
    for t in np.arange(lo, hi, (hi - lo) / steps):
        binary = maps > t
        overlaps = []
        for b, m in zip(binary, masks, strict=True):
            lab, n = ndimage.label(m, structure=np.ones((3, 3)))
            overlaps += [b[lab == r].sum() / (lab == r).sum() for r in range(1, n + 1)]
        fprs.append(np.logical_and(~masks, binary).sum() / (~masks).sum())
        pros.append(np.mean(overlaps))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs < limit
    x = (fprs[keep] - fprs[keep].min()) / (fprs[keep].max() - fprs[keep].min())
    return float(-np.trapezoid(pros[keep], x))  # in threshold order: the FPR falls as the threshold rises


@pytest.mark.parametrize("seed", [1, 3])
def test_aupro_on_200_thresholds_as_the_public_codes_compute_it(seed):
    masks, maps = random_category(seed, n=4, h=16, w=18)
    masks = masks.astype(bool)
    sampled = M.aupro_sampled(masks, maps)
    assert sampled == pytest.approx(_loop_aupro_sampled(masks, maps), abs=1e-12)
    assert abs(sampled - M.aupro(masks, maps)) > 1e-3  # the rescaled FPR axis: not the exact AUPRO
    values = M.evaluate_category(np.array([0, 1, 1, 1]), np.arange(4.0), masks, maps, aupro_method="thresholds200")
    assert values["pixel_aupro"] == sampled
    with pytest.raises(ValueError, match="unknown AUPRO method"):
        M.evaluate_category(np.array([0, 1, 1, 1]), np.arange(4.0), masks, maps, aupro_method="fast")
