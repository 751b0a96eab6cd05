"""The metrics computed from prepared masks equal the numpy reference (evaluation.metrics) to 1e-9: random, tie-heavy
and degenerate categories, both AUPRO methods, every input form, the same NaN warnings and errors — with the CPU's
kernels (numpy, in one sorted piece and in several: one per core on a large category, forced here on small ones) and
with the GPU's (torch, run here on the CPU; tests/test_gpu.py runs them on CUDA)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from tests.evaluation.blobs import blob_masks
from winclip_lib.evaluation import device_metrics as D
from winclip_lib.evaluation import metrics as M
from winclip_lib.evaluation.kernels import NumpyOps, TorchOps
from winclip_lib.evaluation.regions import label_regions

TOL = 1e-9
KERNELS = {"numpy": NumpyOps(threads=1), "numpy-pieces": NumpyOps(threads=3, min_piece=1),
           "torch": TorchOps(torch.device("cpu"))}


@pytest.fixture(params=list(KERNELS))
def ops(request):
    """Each set of kernels: numpy (the CPU's) in one sorted piece and in three, and torch (a GPU's)."""
    return KERNELS[request.param]


def category(seed: int, n: int = 8, h: int = 20, w: int = 17, levels: int | None = None, dtype=np.float32):
    """Masks with 1-3 blobs on half the images (some single pixels), maps that respond to them; ``levels``
    quantises the maps to that many values (ties within and across the classes)."""
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, n, h, w, single_pixel=True)
    maps = rng.normal(size=(n, h, w)) + masks * rng.uniform(0.5, 2.0)
    if levels is not None:
        maps = np.round((maps - maps.min()) / np.ptp(maps) * (levels - 1)) / (levels - 1)
    return masks, maps.astype(dtype)


def both(labels, scores, masks, maps, fpr_limit=0.3, method="exact", ops=None):
    """(reference, device) metrics of one category, with the MetricWarning messages each raised."""
    with warnings.catch_warnings(record=True) as ref_w:
        warnings.simplefilter("always")
        ref = M.evaluate_category(labels, scores, masks, maps, fpr_limit, method)
    with warnings.catch_warnings(record=True) as dev_w:
        warnings.simplefilter("always")
        dev = D.category_metrics(labels, scores, maps, D.PixelTargets.from_masks(masks, ops=ops), fpr_limit, method)
    assert tuple(dev) == M.METRIC_NAMES
    return ref, dev, [str(w.message) for w in ref_w], [str(w.message) for w in dev_w]


def assert_same(ref: dict, dev: dict) -> None:
    for k in M.METRIC_NAMES:
        if np.isnan(ref[k]):
            assert np.isnan(dev[k]), k
        else:
            assert abs(dev[k] - ref[k]) <= TOL, (k, ref[k], dev[k])


CASES = [  # (seed, levels, dtype)
    *[(s, None, np.float32) for s in range(4)],  # continuous float32: (almost) no ties
    (4, None, np.float64),
    *[(s, lv, np.float32) for s, lv in ((5, 2), (6, 3), (7, 5), (8, 12), (9, 40))],  # tie-heavy
    (10, 7, np.float64),
]


@pytest.mark.parametrize("seed, levels, dtype", CASES)
@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
@pytest.mark.parametrize("method", M.AUPRO_METHODS)
def test_equal_to_the_numpy_reference(seed, levels, dtype, fpr_limit, method, ops):
    masks, maps = category(seed, levels=levels, dtype=dtype)
    labels = masks.any(axis=(1, 2))
    scores = np.round(maps.max(axis=(1, 2)).astype(np.float64), 1 if levels else 6)  # image ties too
    ref, dev, ref_w, dev_w = both(labels, scores, masks, maps, fpr_limit, method, ops)
    assert_same(ref, dev)
    assert dev_w == ref_w  # none, but where a few levels leave fewer than two sampled thresholds below the limit
    assert 0.5 < dev["pixel_auroc"] < 1.0 and (method != "exact" or 0.0 < dev["pixel_aupro"] < 1.0)


def test_larger_category_with_many_regions_and_ties(ops):
    masks, maps = category(20, n=24, h=64, w=48, levels=300)
    labels = masks.any(axis=(1, 2))
    for method in M.AUPRO_METHODS:
        ref, dev, _, _ = both(labels, maps.max(axis=(1, 2)), masks, maps, 0.3, method, ops)
        assert_same(ref, dev)


@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 0.5, 0.9])
def test_defects_scored_low(ops, fpr_limit):
    """Maps that miss the defects (they score lowest): the threshold where the curve crosses the limit lies just
    below the top scores, with hardly any defect pixel above it."""
    masks, maps = category(12, n=10, h=24, w=20)
    maps = maps - 3.0 * masks
    for method in M.AUPRO_METHODS:
        ref, dev, _, _ = both(masks.any(axis=(1, 2)), maps.max(axis=(1, 2)), masks, maps, fpr_limit, method, ops)
        assert_same(ref, dev)


def test_many_tiny_categories(ops):
    """200 tiny random categories (a few pixels, few score levels, defects scored high, low or anywhere, random FPR
    limits): every corner of the exact curve near the limit, against the reference."""
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        for _ in range(200):
            masks = rng.random((2, 3, 4)) < rng.uniform(0.05, 0.6)
            maps = rng.integers(0, rng.integers(2, 9), masks.shape) + rng.choice([-2, 0, 2]) * masks
            maps = maps.astype(np.float32)
            fpr_limit = float(rng.choice([rng.uniform(0.01, 1.0), 0.25, 0.5, 1.0]))
            ref = M.evaluate_category(masks.any(axis=(1, 2)), maps.max(axis=(1, 2)), masks, maps, fpr_limit)
            dev = D.category_metrics(masks.any(axis=(1, 2)), maps.max(axis=(1, 2)), maps,
                                     D.PixelTargets.from_masks(masks, ops=ops), fpr_limit)
            assert_same(ref, dev)


def test_limit_between_and_on_curve_points(ops):
    """One region of 4 pixels, 10 defect-free pixels: curve points (0, .25), (.2, .5), (.4, 1); the limit 0.3
    interpolates, 0.2 and 0.4 fall on points."""
    masks = np.zeros((1, 2, 7), bool)
    masks[0, 0, :4] = True
    maps = np.zeros(masks.shape, np.float32)
    maps[0, 0, :4] = [5, 4, 3, 3]
    maps[0, 1, :4] = [4, 4, 3, 3]
    t = D.PixelTargets.from_masks(masks, ops=ops)
    expected = {0.3: (0.075 + 0.0625) / 0.3, 0.2: 0.075 / 0.2, 0.4: (0.075 + 0.15) / 0.4, 1.0: (0.225 + 0.6) / 1.0}
    for limit, value in expected.items():
        assert D.aupro(maps, t, limit) == pytest.approx(value, abs=1e-12)
        assert abs(D.aupro(maps, t, limit) - M.aupro(masks, maps, limit)) <= TOL


def test_thresholds_on_score_values_are_counted_exactly(ops):
    """200-step thresholds that land exactly on (float32) score values, and float64 thresholds between float32
    neighbours: the counts at each threshold are those of a float64 comparison, as in the reference."""
    masks, _ = category(3, n=6, h=16, w=16)
    rng = np.random.default_rng(0)
    on_grid = (rng.integers(0, 200, masks.shape) + 40 * masks) .astype(np.float32) / 8  # exact: k / 8
    between = (rng.random(masks.shape) * 1e-3 + 1.0 + 1e-4 * masks).astype(np.float32)  # dense float32 values
    for maps in (on_grid, between):
        ref, dev, _, _ = both(masks.any(axis=(1, 2)), maps.max(axis=(1, 2)), masks, maps, 0.3, "thresholds200", ops)
        assert_same(ref, dev)


# ------------------------------------------------------------------------------------ degenerate input


def _degenerate_cases():
    masks, maps = category(2)
    labels = masks.any(axis=(1, 2))
    scores = maps.max(axis=(1, 2))
    full = np.ones_like(masks)
    single = np.zeros_like(masks)
    single[0, 3, 3] = single[1, 0, 0] = single[1, 19, 16] = True  # single-pixel regions, one in a corner
    return {
        "all normal (empty masks)": (np.zeros(len(masks)), scores, np.zeros_like(masks), maps),
        "all images anomalous": (np.ones(len(masks)), scores, masks | single, maps),
        "masks cover everything": (np.ones(len(masks)), scores, full, maps),
        "constant maps": (labels, np.full(len(masks), 0.5), masks, np.full_like(maps, 0.25)),
        "constant maps, no defect": (np.zeros(len(masks)), scores, np.zeros_like(masks), np.zeros_like(maps)),
        "single-pixel regions": (single.any(axis=(1, 2)), scores, single, maps),
        "perfect maps": (labels, scores, masks, masks.astype(np.float32) + maps * 1e-3),
        "inverted maps": (labels, -scores, masks, -masks.astype(np.float32)),
        "one image": (labels[:1], scores[:1], masks[:1], maps[:1]),
    }


@pytest.mark.parametrize("name", list(_degenerate_cases()))
@pytest.mark.parametrize("method", M.AUPRO_METHODS)
def test_degenerate_categories_give_the_same_values_and_warnings(name, method, ops):
    labels, scores, masks, maps = _degenerate_cases()[name]
    for fpr_limit in (0.3, 1.0):
        ref, dev, ref_w, dev_w = both(labels, scores, masks, maps, fpr_limit, method, ops)
        assert_same(ref, dev)
        assert dev_w == ref_w  # the same MetricWarnings, in the same order


def test_nan_warnings_of_an_all_normal_category():
    masks, maps = category(2)
    with pytest.warns(M.MetricWarning) as record:
        out = D.category_metrics(np.zeros(len(masks)), maps.max(axis=(1, 2)), maps,
                                 D.PixelTargets.from_masks(np.zeros_like(masks)))
    messages = [str(r.message) for r in record]
    assert len(messages) == 3 and "image_auroc, image_ap, image_f1_max set to NaN: no anomalous image" in messages[0]
    assert "pixel_auroc, pixel_ap, pixel_f1_max" in messages[1] and "pixel_aupro" in messages[2]
    assert all(np.isnan(v) for v in out.values())


# ------------------------------------------------------------------------------------ inputs


def test_prepared_regions_and_weights():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # diagonal neighbours: one region under 8-connectivity
    masks[0, 5, 5:8] = True
    masks[1, 2:4, 2:4] = True
    t = D.PixelTargets.from_masks(masks)
    assert t.n_regions == 3 and t.n_defect == 9 and t.n_normal == 128 - 9 and t.shapes == ((8, 8), (8, 8))
    assert t.defect_index.tolist() == np.flatnonzero(masks).tolist()
    np.testing.assert_array_equal(t.defect_weight.numpy(), [1 / 2, 1 / 2, 1 / 3, 1 / 3, 1 / 3, 1 / 4, 1 / 4, 1 / 4,
                                                            1 / 4])
    labels, sizes = label_regions(masks)
    scipy_regions = sum(ndimage.label(m, structure=np.ones((3, 3)))[1] for m in masks)
    assert labels.shape == (128,) and len(sizes) - 1 == scipy_regions == 3


def test_every_input_form_gives_the_same_numbers():
    masks, maps = category(7, levels=30)
    labels, scores = masks.any(axis=(1, 2)), maps.max(axis=(1, 2))
    expected = M.evaluate_category(labels, scores, masks, maps)
    forms = [
        (torch.from_numpy(masks), torch.from_numpy(maps)),
        (masks.astype(np.uint8), maps.astype(np.float64)),  # float32 -> float64: the same values
        (masks.astype(np.float32), torch.from_numpy(maps).bfloat16().float().numpy()),  # exact in bf16 anyway
        (list(masks), list(torch.from_numpy(maps))),  # sequences of (H, W)
        (masks, list(maps)),
    ]
    for m, s in forms:
        got = D.category_metrics(torch.from_numpy(labels), torch.from_numpy(scores), s, D.PixelTargets.from_masks(m))
        assert_same(expected, got)
    half = torch.from_numpy(maps).half()  # float16 maps are evaluated as (exact) float32
    assert abs(D.aupro(half, D.PixelTargets.from_masks(masks)) - M.aupro(masks, half)) <= TOL
    ints = (maps * 10).astype(np.int64)  # integer maps are evaluated as float64
    assert abs(D.aupro(ints, D.PixelTargets.from_masks(masks)) - M.aupro(masks, ints)) <= TOL


def slow_pooled_aupro(masks: list[np.ndarray], maps: list[np.ndarray], fpr_limit: float) -> float:
    """AUPRO over images of any sizes, written plainly: every distinct threshold, scipy's 8-connected regions image
    by image, the FPR over all defect-free pixels, the trapezoid with linear interpolation at the limit."""
    regions = [(i, lab == r) for i, m in enumerate(masks)
               for lab, n in [ndimage.label(m, structure=np.ones((3, 3)))] for r in range(1, n + 1)]
    scores = np.concatenate([s.ravel() for s in maps])
    normal = ~np.concatenate([m.ravel() for m in masks])
    points = [(0.0, 0.0)]
    for t in np.unique(scores)[::-1]:
        fpr = ((scores >= t) & normal).sum() / normal.sum()
        points.append((fpr, np.mean([(maps[i][r] >= t).mean() for i, r in regions])))
    points.append((1.0, 1.0))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
        if x1 > fpr_limit:
            y_at = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            return (area + (fpr_limit - x0) * (y0 + y_at) / 2) / fpr_limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


def test_images_of_different_sizes_pool_their_pixels(ops):
    """Masks and maps of different sizes per image (evaluation at each mask's own resolution): the pixels of all
    images are pooled — AUROC and AP are scikit-learn's on them, AUPRO the plain definition's."""
    rng = np.random.default_rng(3)
    sizes = [(12, 15), (20, 9), (12, 15), (7, 30)]
    masks = [np.zeros(s, bool) for s in sizes]
    masks[0][2:6, 3:8] = masks[1][10:13, 2:4] = masks[3][1:3, 20:29] = True
    masks[1][0, 0] = True
    maps = [np.round(rng.normal(size=s) + m * 1.5, 1).astype(np.float32) for s, m in zip(sizes, masks, strict=True)]
    t = D.PixelTargets.from_masks(masks, ops=ops)
    assert t.stacked_shape is None and t.n_pixels == sum(h * w for h, w in sizes) and t.n_regions == 4
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([m.ravel() for m in maps])
    px = D.pixel_metrics(maps, t)
    assert abs(px["pixel_auroc"] - roc_auc_score(y, s)) <= 1e-12
    assert abs(px["pixel_ap"] - average_precision_score(y, s)) <= 1e-12
    for fpr_limit in (0.3, 0.05):
        assert abs(D.aupro(maps, t, fpr_limit) - slow_pooled_aupro(masks, maps, fpr_limit)) <= TOL


def test_errors_name_the_problem():
    masks, maps = category(1, n=6, h=12, w=15)
    t = D.PixelTargets.from_masks(masks)
    labels = masks.any(axis=(1, 2))
    with pytest.raises(ValueError, match=r"masks \(6, 12, 15\) and maps \(6, 12, 14\)"):
        D.aupro(maps[:, :, :-1], t)
    with pytest.raises(ValueError, match=r"image 1: mask \(12, 15\), map \(12, 14\)"):
        D.aupro([maps[0], maps[1, :, :-1], *maps[2:]], t)
    with pytest.raises(ValueError, match="same length"):
        D.image_metrics([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="labels has 5 entries"):
        D.category_metrics(np.ones(5), np.ones(5), maps, t)
    bad = maps.copy()
    bad[0, 0, 0] = bad[3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="2 NaN"):
        D.pixel_metrics(bad, t)
    with pytest.raises(ValueError, match="1 NaN"):
        D.image_metrics(labels, np.array([0.1, np.nan, 0.3, 0.4, 0.5, 0.6]))
    with pytest.raises(ValueError, match="binary"):
        D.PixelTargets.from_masks(maps)  # float maps passed as masks
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        D.PixelTargets.from_masks(masks[0])
    with pytest.raises(ValueError, match="fpr_limit"):
        D.aupro(maps, t, 0.0)
    with pytest.raises(ValueError, match="unknown AUPRO method"):
        D.category_metrics(labels, labels, maps, t, aupro_method="fast")



def test_a_float32_limit_computes_as_a_python_float(ops):
    """The FPR limit is taken as a Python float on both sides: a numpy float32 limit gives the float64 result of
    the same limit (a float32 limit once rounded the interpolated segment in float32, differently on each side)."""
    masks, maps = category(3, levels=9)
    labels, scores = masks.any(axis=(1, 2)), maps.max(axis=(1, 2))
    limit = np.float32(0.7)
    ref, dev, _, _ = both(labels, scores, masks, maps, limit, "exact", ops)
    assert_same(ref, dev)
    assert type(dev["pixel_aupro"]) is float and type(ref["pixel_aupro"]) is float
    assert dev["pixel_aupro"] == D.aupro(maps, D.PixelTargets.from_masks(masks, ops=ops), float(limit))
    targets = D.PixelTargets.from_masks(masks)
    for bad in (np.float32(0.0), 1.5, float("nan")):
        for f, args in ((M.aupro, (masks, maps, bad)), (D.aupro, (maps, targets, bad)),
                        (M.aupro_sampled, (masks, maps, 200, bad)), (D.aupro_sampled, (maps, targets, 200, bad))):
            with pytest.raises(ValueError, match="fpr_limit must be in"):
                f(*args)


def test_infinite_image_scores_are_refused_by_both():
    labels = np.array([0, 1, 0, 1])
    for scores in ([0.1, np.inf, 0.2, 0.7], [0.1, 0.9, -np.inf, 0.7]):
        for f in (M.image_metrics, D.image_metrics):
            with pytest.raises(ValueError, match="scores holds 1 infinite values"):
                f(labels, np.array(scores))


def test_reversed_and_foreign_byte_order_arrays_give_the_same_numbers(ops):
    """Views with negative strides and arrays in the other byte order (as numpy reads some files) are evaluated
    as their values, as the reference evaluates them."""
    masks, maps = category(5, levels=20, dtype=np.float64)
    labels, scores = masks.any(axis=(1, 2)), maps.max(axis=(1, 2))
    flipped_masks, flipped_maps = masks[:, ::-1], maps[:, ::-1]
    expected = M.evaluate_category(labels[::-1], scores[::-1], flipped_masks[::-1], flipped_maps[::-1])
    got = D.category_metrics(labels[::-1], scores[::-1], flipped_maps[::-1],
                             D.PixelTargets.from_masks(flipped_masks[::-1], ops=ops))
    assert_same(expected, got)
    swapped = maps.astype(maps.dtype.newbyteorder(">" if maps.dtype.byteorder in "=<" else "<"))
    assert not swapped.dtype.isnative
    assert_same(M.evaluate_category(labels, scores.astype(swapped.dtype), masks, swapped),
                D.category_metrics(labels, scores.astype(swapped.dtype), swapped,
                                   D.PixelTargets.from_masks(masks, ops=ops)))


def test_an_empty_category_is_nan_on_both_sides(ops):
    for shape in ((0, 5, 5), (2, 0, 5)):
        masks, maps = np.zeros(shape, bool), np.zeros(shape, np.float32)
        ref, dev, ref_w, dev_w = both(np.zeros(shape[0]), np.zeros(shape[0]), masks, maps, 0.3, "exact", ops)
        assert all(np.isnan(v) for v in ref.values()) and all(np.isnan(v) for v in dev.values())
        assert dev_w == ref_w
