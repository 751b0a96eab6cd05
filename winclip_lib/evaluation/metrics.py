"""Anomaly-detection metrics of one category: image and pixel AUROC / AP / F1-max, and exact AUPRO.

Definitions (all values are fractions in 0..1):

* image metrics use one score per test image; AUROC and AP are scikit-learn's ``roc_auc_score`` and
  ``average_precision_score``; F1-max is the maximum over the precision-recall curve of 2PR / (P + R) (0 where
  P + R = 0).
* pixel metrics pool all pixels of all test images of the category (normal images included). They share one sort of
  the pixel scores (scikit-learn needs ~4 s for three sorts of a 100 x 240 x 240 category); the results equal
  scikit-learn's to float rounding, which the tests check.
* ``aupro`` is the per-region overlap curve of the MVTec AD evaluation code (Bergmann et al.): regions are the
  8-connected components of each mask; at every distinct score threshold t, a region's overlap is the fraction of its
  pixels with score >= t, PRO(t) is the mean over all regions of the category, FPR(t) is the number of defect-free
  pixels (mask 0, across all images) with score >= t over the number of defect-free pixels. The curve, with (0, 0)
  and (1, 1) added, is integrated with the trapezoid rule up to FPR = ``fpr_limit`` (interpolating linearly at the
  limit) and divided by ``fpr_limit``. It is computed exactly with one sort (no threshold grid).
  :func:`aupro_sampled` is the variant the AnomalyCLIP authors' WinCLIP code (and caoyunkang/WinClip) computes:
  200 evenly spaced thresholds, the points with FPR below the limit, their FPRs rescaled to [0, 1].

This module is the numpy reference, written for reading: the grid computes the same metrics with
:mod:`winclip_lib.evaluation.device_metrics` (masks prepared once per category, one value sort per evaluation, on the
run's device), which the tests hold equal to these functions to 1e-9.

Degenerate categories: when the category has no anomalous images (or no defect pixels), every metric that needs
positives (AUROC, AP, F1-max, AUPRO) is NaN; when it has no normal images (or no defect-free pixels), AUROC and
AUPRO are NaN while AP and F1-max are computed (trivially 1). Each NaN comes with a :class:`MetricWarning`; nothing
reaches scikit-learn's own errors. Inputs may be numpy arrays or torch tensors at any resolution (masks and maps must
have the same shape).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from winclip_lib.core.choices import check_choice
from winclip_lib.evaluation.regions import label_regions

__all__ = [
    "METRIC_NAMES",
    "IMAGE_METRIC_NAMES",
    "PIXEL_METRIC_NAMES",
    "MetricWarning",
    "check_fpr_limit",
    "image_metrics",
    "pixel_metrics",
    "AUPRO_METHODS",
    "aupro",
    "aupro_sampled",
    "pro_curve",
    "sampled_pro_area",
    "evaluate_category",
    "mean_metrics",
    "f1_max",
    "as_labels",
]

IMAGE_METRIC_NAMES = ("image_auroc", "image_ap", "image_f1_max")
PIXEL_METRIC_NAMES = ("pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_aupro")
METRIC_NAMES = IMAGE_METRIC_NAMES + PIXEL_METRIC_NAMES
#: How PRO is integrated: exactly (every distinct threshold), or on a grid of 200 thresholds as public code does.
AUPRO_METHODS = ("exact", "thresholds200")


class MetricWarning(UserWarning):
    """A metric is undefined for this input (one class only) and was set to NaN."""


# ------------------------------------------------------------------------------------------------- inputs


def _as_numpy(x: Any) -> np.ndarray:
    """numpy view of an array-like or a (possibly CUDA / half precision) torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        t = x.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return t.numpy()
    return np.asarray(x)


def as_labels(x: Any, name: str) -> np.ndarray:
    """Binary labels of any shape as bool: bool, integer (non-zero = 1) or float arrays holding only 0/1."""
    a = _as_numpy(x)
    if a.dtype == bool:
        return a
    if np.issubdtype(a.dtype, np.integer):
        return a != 0
    if np.issubdtype(a.dtype, np.floating):
        if not np.isin(a, (0.0, 1.0)).all():
            raise ValueError(f"{name} must be binary (bool, integers, or floats 0/1); got other float values")
        return a != 0
    raise ValueError(f"{name} must be binary (bool or 0/1), got dtype {a.dtype}")


def _as_scores(x: Any, name: str) -> np.ndarray:
    a = _as_numpy(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    n_nan = int(np.isnan(a).sum())
    if n_nan:
        raise ValueError(f"{name} holds {n_nan} NaN values")
    return a


def _check_pixels(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray]:
    m = as_labels(masks, "masks")
    s = _as_scores(maps, "maps")
    if m.shape != s.shape:
        raise ValueError(f"masks and maps must have the same shape, got masks {m.shape} and maps {s.shape}")
    if m.ndim != 3:
        raise ValueError(f"masks and maps must be (N, H, W), got shape {m.shape}")
    return m, s


def check_fpr_limit(fpr_limit: Any) -> float:
    """The FPR limit of the AUPRO as a Python float (so that a float32 limit computes nothing in float32), checked
    to lie in (0, 1]."""
    limit = float(fpr_limit)
    if not 0.0 < limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    return limit


def _nan_warning(what: str | Sequence[str], why: str) -> float:
    """Warn once that the metric(s) ``what`` are NaN because ``why``; return NaN."""
    names = what if isinstance(what, str) else ", ".join(what)
    warnings.warn(f"{names} set to NaN: {why}", MetricWarning, stacklevel=3)
    return float("nan")


# ------------------------------------------------------------------------------------------ image metrics


def f1_max(labels: Any, scores: Any) -> float:
    """Maximum of 2PR / (P + R) over scikit-learn's precision-recall curve (0/0 counts as 0)."""
    from sklearn.metrics import precision_recall_curve  # (a second of imports: only where the reference runs)

    precision, recall, _ = precision_recall_curve(as_labels(labels, "labels"), _as_scores(scores, "scores"))
    return float(_f1(precision, recall).max())


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    denom = precision + recall
    return np.divide(2 * precision * recall, denom, out=np.zeros_like(denom, dtype=np.float64), where=denom > 0)


def image_metrics(labels: Any, scores: Any) -> dict[str, float]:
    """Image AUROC, AP and F1-max of one category. labels (N,) 0/1, scores (N,) float (higher = anomalous)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = as_labels(labels, "labels").reshape(-1)
    s = _as_scores(scores, "scores").reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have the same length, got {y.shape} and {s.shape}")
    if n_inf := int(np.isinf(s).sum()):
        raise ValueError(f"scores holds {n_inf} infinite values")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0:
        nan = _nan_warning(IMAGE_METRIC_NAMES, f"no anomalous image among {len(y)}")
        return dict.fromkeys(IMAGE_METRIC_NAMES, nan)
    out = {
        "image_auroc": float(roc_auc_score(y, s)) if n_neg else _nan_warning("image_auroc", "no normal image"),
        "image_ap": float(average_precision_score(y, s)),
        "image_f1_max": f1_max(y, s),
    }
    return out


# ------------------------------------------------------------------------------------------ pixel metrics


class _SortedPixels:
    """Pixels of a category sorted once by descending score; cumulative counts at every distinct threshold.

    ``tps[j]`` / ``fps[j]``: defect / defect-free pixels with score >= the j-th largest distinct score.
    """

    def __init__(self, masks: np.ndarray, maps: np.ndarray) -> None:
        scores = maps.reshape(-1)
        self.order = np.argsort(scores)[::-1]
        sorted_scores = scores[self.order]
        ends = np.append(sorted_scores[1:] != sorted_scores[:-1], True) if len(scores) else np.zeros(0, dtype=bool)
        self.last = np.flatnonzero(ends)  # end of each tie
        self.positive = masks.reshape(-1)[self.order]
        self.tps = np.cumsum(self.positive, dtype=np.int64)[self.last]
        self.fps = (self.last + 1) - self.tps
        self.n_pos = int(self.tps[-1]) if len(self.tps) else 0
        self.n_neg = int(self.fps[-1]) if len(self.fps) else 0
        self.masks = masks


def _pixel_metrics_from(sp: _SortedPixels) -> dict[str, float]:
    """AUROC (trapezoid over the ROC points, in exact integer arithmetic), AP (sum over thresholds of the recall
    increase times the precision) and F1-max (2 TP / (TP + FP + P) at the thresholds where TP grows)."""
    if sp.n_pos == 0:
        nan = _nan_warning(PIXEL_METRIC_NAMES[:3], "no defect pixel in the category's masks")
        return dict.fromkeys(PIXEL_METRIC_NAMES[:3], nan)
    tps, fps = sp.tps, sp.fps
    if sp.n_neg:
        d_fps = np.diff(fps, prepend=0)
        twice_area = int(np.dot(d_fps, tps + np.concatenate(([0], tps[:-1]))))
        auroc = twice_area / (2 * sp.n_pos * sp.n_neg)
    else:
        auroc = _nan_warning("pixel_auroc", "no defect-free pixel")
    d_tps = np.diff(tps, prepend=0)
    grow = np.flatnonzero(d_tps)
    tp, fp = tps[grow].astype(np.float64), fps[grow].astype(np.float64)
    ap = float(np.sum(d_tps[grow] * (tp / (tp + fp))) / sp.n_pos)
    f1 = float(np.max(2.0 * tp / (tp + fp + sp.n_pos)))
    return {"pixel_auroc": float(auroc), "pixel_ap": ap, "pixel_f1_max": f1}


def pixel_metrics(masks: Any, maps: Any) -> dict[str, float]:
    """Pixel AUROC, AP and F1-max over all pixels of a category. masks (N, H, W) bool, maps (N, H, W) float.

    Same values as scikit-learn's ``roc_auc_score`` / ``average_precision_score`` / F1-max over
    ``precision_recall_curve`` on the flattened pixels, from a single sort.
    """
    m, s = _check_pixels(masks, maps)
    return _pixel_metrics_from(_SortedPixels(m, s))


def _pro_curve_from(sp: _SortedPixels) -> tuple[np.ndarray, np.ndarray] | None:
    if sp.n_pos == 0 or sp.n_neg == 0:
        return None
    labels, sizes = label_regions(sp.masks)
    n_regions = len(sizes) - 1
    # weight 1 / |region| of each defect pixel, in descending score order; only defect pixels are gathered
    region_of = labels.reshape(-1)[sp.order[np.flatnonzero(sp.positive)]]
    overlap = np.concatenate(([0.0], np.cumsum(1.0 / sizes[region_of])))  # summed overlaps after k defect pixels
    pro = overlap[sp.tps] / n_regions
    fpr = sp.fps / sp.n_neg
    fpr = np.concatenate(([0.0], np.minimum(fpr, 1.0), [1.0]))
    pro = np.concatenate(([0.0], np.minimum(pro, 1.0), [1.0]))
    return fpr, pro


def pro_curve(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray]:
    """The exact PRO curve: (fpr, pro), both (T + 2,) float64 over the T distinct thresholds in descending order,
    with (0, 0) prepended and (1, 1) appended as in the MVTec AD evaluation code. Needs defect and defect-free
    pixels (ValueError otherwise)."""
    m, s = _check_pixels(masks, maps)
    curve = _pro_curve_from(_SortedPixels(m, s))
    if curve is None:
        raise ValueError("the PRO curve needs both defect and defect-free pixels")
    return curve


def _trapezoid_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Area under y(x) for x in [0, x_max] (x non-decreasing), interpolating linearly at x_max when it is not a
    curve point — the MVTec AD evaluation code's ``trapezoid``."""
    correction = 0.0
    if not np.any(x == x_max):
        ins = int(np.searchsorted(x, x_max, side="right"))
        if not 0 < ins < len(x):
            raise ValueError(f"fpr_limit {x_max} lies outside the curve's FPR range [{x[0]}, {x[-1]}]")
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def _aupro_from(sp: _SortedPixels, fpr_limit: float) -> float:
    if sp.n_pos == 0:
        return _nan_warning("pixel_aupro", "no defect pixel in the category's masks")
    if sp.n_neg == 0:
        return _nan_warning("pixel_aupro", "no defect-free pixel")
    curve = _pro_curve_from(sp)
    assert curve is not None
    return _trapezoid_to(*curve, fpr_limit) / fpr_limit


def aupro(masks: Any, maps: Any, fpr_limit: float = 0.3) -> float:
    """Exact normalised area under the PRO curve up to FPR = ``fpr_limit`` (see the module docstring).

    masks (N, H, W) bool (any resolution), maps (N, H, W) float. Returns a fraction in 0..1 (NaN with a
    :class:`MetricWarning` when there is no defect or no defect-free pixel).
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    m, s = _check_pixels(masks, maps)
    return _aupro_from(_SortedPixels(m, s), fpr_limit)


def aupro_sampled(masks: Any, maps: Any, steps: int = 200, fpr_limit: float = 0.3) -> float:
    """The PRO area as the AnomalyCLIP authors' WinCLIP code computes it (after CFlow-AD's evaluation).

    ``steps`` thresholds ``t = min + i (max - min) / steps`` (i = 0 .. steps - 1) over all the category's scores;
    at each, a pixel is positive when its score > t; PRO(t) is the mean over all regions (8-connected components of
    the masks) of the fraction of the region's pixels that are positive, FPR(t) the fraction of defect-free pixels
    that are positive. The points with FPR(t) < ``fpr_limit`` are kept, their FPRs rescaled to [0, 1] by their own
    minimum and maximum, and the area under PRO over the rescaled FPR is the trapezoid rule's. Unlike :func:`aupro`
    the curve is sampled and its FPR axis stretched, so the two differ (the tests show by how much).
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    m, s = _check_pixels(masks, maps)
    labels, sizes = label_regions(m)
    n_regions, n_neg = len(sizes) - 1, int((~m).sum())
    if n_regions == 0 or n_neg == 0:
        return _nan_warning("pixel_aupro", "no defect region" if n_regions == 0 else "no defect-free pixel")
    lo, hi = float(s.min()), float(s.max())
    if hi <= lo:
        return _nan_warning("pixel_aupro", "the maps are constant")
    flat, lab = s.reshape(-1), labels.reshape(-1)
    positive = lab > 0
    pos_scores, pos_regions = flat[positive], lab[positive]
    neg_scores = np.sort(flat[~m.reshape(-1)])
    fprs, pros = [], []
    for t in np.arange(lo, hi, (hi - lo) / steps):
        fprs.append((n_neg - np.searchsorted(neg_scores, t, side="right")) / n_neg)
        hits = np.bincount(pos_regions[pos_scores > t], minlength=n_regions + 1)[1:]
        pros.append(float(np.mean(hits / sizes[1:])))
    return sampled_pro_area(np.asarray(fprs), np.asarray(pros), fpr_limit)


def sampled_pro_area(fpr: np.ndarray, pro: np.ndarray, fpr_limit: float = 0.3) -> float:
    """The last step of :func:`aupro_sampled`: from (fpr, pro) at the sampled thresholds (T,) each, the points with
    FPR below ``fpr_limit``, their FPRs rescaled to [0, 1], the trapezoid area (scikit-learn's ``auc``); NaN with a
    :class:`MetricWarning` when fewer than two distinct FPRs remain."""
    from sklearn.metrics import auc

    keep = fpr < fpr_limit
    if keep.sum() < 2 or fpr[keep].max() == fpr[keep].min():
        return _nan_warning("pixel_aupro", "fewer than two distinct thresholds below the FPR limit")
    x = (fpr[keep] - fpr[keep].min()) / (fpr[keep].max() - fpr[keep].min())
    return float(auc(x, pro[keep]))


# -------------------------------------------------------------------------------------------- a category


def evaluate_category(
    labels: Any, image_scores: Any, masks: Any, maps: Any, fpr_limit: float = 0.3, aupro_method: str = "exact"
) -> dict[str, float]:
    """All seven metrics of one category, keys in :data:`METRIC_NAMES` order.

    labels (N,) 0/1, image_scores (N,) float, masks (N, H, W) bool, maps (N, H, W) float. The pixel metrics and
    the exact AUPRO share one sort of the pixel scores; ``aupro_method="thresholds200"`` uses :func:`aupro_sampled`.
    """
    check_choice("AUPRO method", aupro_method, AUPRO_METHODS)
    fpr_limit = check_fpr_limit(fpr_limit)
    m, s = _check_pixels(masks, maps)
    y = as_labels(labels, "labels").reshape(-1)
    if len(y) != m.shape[0]:
        raise ValueError(f"labels has {len(y)} entries but masks/maps hold {m.shape[0]} images (shape {m.shape})")
    out = image_metrics(y, image_scores)
    sp = _SortedPixels(m, s)
    out.update(_pixel_metrics_from(sp))
    out["pixel_aupro"] = _aupro_from(sp, fpr_limit) if aupro_method == "exact" else aupro_sampled(m, s, 200,
                                                                                                    fpr_limit)
    return {k: out[k] for k in METRIC_NAMES}


def mean_metrics(per_category: Mapping[str, Mapping[str, float]] | Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over categories, ignoring NaN entries (NaN if a metric is NaN everywhere)."""
    rows = list(per_category.values()) if isinstance(per_category, Mapping) else list(per_category)
    out: dict[str, float] = {}
    for k in METRIC_NAMES:
        vals = np.array([r[k] for r in rows if k in r], dtype=np.float64)
        finite = vals[~np.isnan(vals)]
        out[k] = float(finite.mean()) if len(finite) else float("nan")
    return out
