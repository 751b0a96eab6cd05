"""The metrics of one category computed with torch on the run's device, from masks prepared once.

The definitions are those of :mod:`winclip_lib.evaluation.metrics` — image and pixel AUROC, AP, F1-max, the exact
AUPRO and the 200-threshold variant — and so are the values: the tests hold these functions equal to that numpy
implementation (the reference) to 1e-9 on random, tie-heavy and degenerate input. What differs is the work:

* **Masks once.** A grid evaluates every (k, seed) setting of a category against the same masks, so
  :meth:`PixelTargets.from_masks` does their part once: the flat indices of the defect pixels, the weight
  1 / |region| of each (its 8-connected region, :func:`~winclip_lib.evaluation.regions.label_regions`), the
  counts — held on the device.
* **One value sort per evaluation, no argsort of every pixel.** The scores of all pixels are sorted by value only,
  and the defect pixels (a few percent) with their order; every pixel metric reads these two arrays:

  - for each distinct defect score u (ascending), binary search in the sorted scores gives the pixels below and at
    u, hence the defect-free pixels below / at u and the true and false positives at threshold u. AUROC is the
    Mann-Whitney count 2 #(defect > defect-free) + #(ties) over 2 P N, in exact integers (the trapezoid over the
    ROC points, the same number); AP sums the precision at each u times the recall step; F1-max is the largest
    2 TP / (TP + FP + P).
  - the exact PRO curve is needed only up to the FPR limit: the top of the sorted scores holding the
    ``floor(limit * N) + 2`` highest defect-free pixels and every defect pixel gives its distinct thresholds, their
    false positives, and (by binary search among the sorted defect scores and a suffix sum of their region weights)
    the summed overlap above each — the curve points of the reference up to the first beyond the limit, integrated
    the same way.
  - the 200-threshold variant counts at its thresholds by binary search in the same arrays.

On a CUDA device every step runs there with torch (a few scalars come back per evaluation); on the CPU the same code
runs on numpy's kernels (:mod:`~winclip_lib.evaluation.kernels` says why), the sort of all pixels in one run per
torch thread. Scores keep their precision: float32 maps are sorted as float32 (bfloat16 / float16 become float32,
integers float64, exactly), and the float64 thresholds of the 200-step grid are compared exactly.

Inputs: masks and maps may be (N, H, W) arrays / tensors, or sequences of (H_i, W_i) ones whose sizes differ between
images (pixels are pooled over the category either way).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from winclip_lib.core.choices import check_choice
from winclip_lib.evaluation.kernels import ArrayOps, ops_for
from winclip_lib.evaluation.metrics import (
    AUPRO_METHODS,
    IMAGE_METRIC_NAMES,
    METRIC_NAMES,
    PIXEL_METRIC_NAMES,
    MetricWarning,
    sampled_pro_area,
)
from winclip_lib.evaluation.regions import label_regions

__all__ = ["PixelTargets", "category_metrics", "image_metrics", "pixel_metrics", "aupro", "aupro_sampled"]


def _nan(what: str | Sequence[str], why: str) -> float:
    names = what if isinstance(what, str) else ", ".join(what)
    warnings.warn(f"{names} set to NaN: {why}", MetricWarning, stacklevel=3)
    return float("nan")


def _check_fpr_limit(fpr_limit: float) -> None:
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")


# ------------------------------------------------------------------------------------------------- inputs


def _as_tensor(x: Any) -> torch.Tensor:
    return x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _as_scores(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    """Scores on ``device`` at a precision that keeps every value: float32 / float64 as they are, bfloat16 / float16
    as float32, integers and bool as float64."""
    t = _as_tensor(x)
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    elif not t.is_floating_point():
        if t.is_complex():
            raise ValueError(f"{name} must be real numbers, got dtype {t.dtype}")
        t = t.double()
    return t.to(device) if device is not None else t


def _binary_mask(m: Any, name: str = "masks") -> np.ndarray:
    """A mask as numpy bool: bool, integer (non-zero = 1) or float holding only 0 / 1."""
    a = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    if a.dtype == bool:
        return a
    if np.issubdtype(a.dtype, np.integer):
        return a != 0
    if np.issubdtype(a.dtype, np.floating):
        if not np.isin(a, (0.0, 1.0)).all():
            raise ValueError(f"{name} must be binary (bool, integers, or floats 0/1); got other float values")
        return a != 0
    raise ValueError(f"{name} must be binary (bool or 0/1), got dtype {a.dtype}")


def _per_image(x: Any, name: str) -> tuple[list[Any], tuple[int, ...] | None]:
    """Split an (N, H, W) array / tensor into its N images (and give its shape), or check a sequence of 2-D ones."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        if x.ndim != 3:
            raise ValueError(f"masks and maps must be (N, H, W), got {name} of shape {tuple(x.shape)}")
        return list(x), tuple(x.shape)
    items = list(x)
    for i, m in enumerate(items):
        if np.ndim(m) != 2:
            raise ValueError(f"{name}[{i}] must be (H, W), got shape {tuple(np.shape(m))}")
    return items, None


# ------------------------------------------------------------------------------------------ prepared masks


@dataclass(frozen=True, eq=False)
class PixelTargets:
    """The ground-truth masks of one category, prepared once for any number of evaluations on one device.

    Attributes:
        shapes: (H_i, W_i) of each image's mask; the pixels of the category are the masks flattened row-major and
            concatenated in this order (T = sum H_i W_i).
        stacked_shape: (N, H, W) when the masks were given as one array (for error messages), else None.
        defect_index: (P,) int64 on ``device``, ascending flat indices of the defect pixels.
        defect_weight: (P,) float64 on ``device``, 1 / |region| of the 8-connected region of each defect pixel.
        n_regions: R, the regions of the category.
        device: where the evaluation runs; ops: its kernels (:func:`~winclip_lib.evaluation.kernels.ops_for`).
    """

    shapes: tuple[tuple[int, int], ...]
    stacked_shape: tuple[int, ...] | None
    defect_index: torch.Tensor
    defect_weight: torch.Tensor
    n_regions: int
    device: torch.device
    ops: ArrayOps

    @classmethod
    def from_masks(cls, masks: Any, device: torch.device | str | None = None, ops: ArrayOps | None = None
                   ) -> PixelTargets:
        """Prepare masks — (N, H, W) or a sequence of (H_i, W_i); bool, integers, or floats 0/1; numpy or torch —
        for evaluations on ``device`` (default: the CPU, or the masks' own device when they are a tensor) with the
        kernels ``ops`` (default: the device's). Region labelling (OpenCV) runs here, once."""
        if device is None:
            device = masks.device if isinstance(masks, torch.Tensor) else "cpu"
        per_image, stacked = _per_image(masks, "masks")
        binary = [_binary_mask(m) for m in per_image]
        labels, sizes = label_regions(binary)
        defect = np.flatnonzero(labels)
        weight = 1.0 / sizes[labels[defect]]
        device = torch.device(device)
        return cls(
            shapes=tuple((int(m.shape[0]), int(m.shape[1])) for m in binary),
            stacked_shape=stacked,
            defect_index=torch.from_numpy(defect.astype(np.int64)).to(device),
            defect_weight=torch.from_numpy(weight).to(device),
            n_regions=len(sizes) - 1,
            device=device,
            ops=ops or ops_for(device),
        )

    @property
    def n_images(self) -> int:
        return len(self.shapes)

    @property
    def n_pixels(self) -> int:
        """T, the pixels of the category."""
        return sum(h * w for h, w in self.shapes)

    @property
    def n_defect(self) -> int:
        """P, the defect pixels."""
        return int(self.defect_index.numel())

    @property
    def n_normal(self) -> int:
        """N, the defect-free pixels."""
        return self.n_pixels - self.n_defect

    def flat_scores(self, maps: Any) -> torch.Tensor:
        """The maps (same shapes as the masks: (N, H, W), or a sequence of (H_i, W_i)) as one flat (T,) tensor on the
        device, in the masks' pixel order."""
        per_image, stacked = _per_image(maps, "maps")
        if stacked is not None and self.stacked_shape is not None:
            if stacked != self.stacked_shape:
                raise ValueError(f"masks and maps must have the same shape, got masks {self.stacked_shape} and "
                                 f"maps {stacked}")
            return _as_scores(maps, "maps", self.device).reshape(-1)
        shapes = [tuple(np.shape(m)) for m in per_image]
        if len(shapes) != self.n_images or any(s != t for s, t in zip(shapes, self.shapes, strict=False)):
            bad = next((i for i, (s, t) in enumerate(zip(shapes, self.shapes, strict=False)) if s != t), None)
            where = f"image {bad}: mask {self.shapes[bad]}, map {shapes[bad]}" if bad is not None else (
                f"{self.n_images} masks, {len(shapes)} maps")
            raise ValueError(f"masks and maps must have the same shape, got {where}")
        if not per_image:
            return torch.zeros(0, dtype=torch.float64, device=self.device)
        flat = [_as_scores(m, "maps", self.device).reshape(-1) for m in per_image]
        dtype = torch.promote_types(*{f.dtype for f in flat}) if len({f.dtype for f in flat}) > 1 else flat[0].dtype
        return torch.cat([f.to(dtype) for f in flat])


# ------------------------------------------------------------------------------------------------- sorting

#: Scores sorted in one run per torch thread on the CPU from this many on (below, in one run).
PARALLEL_SORT_MIN = 1 << 20


class _SortedScores:
    """One evaluation's scores, sorted once, shared by every pixel metric (arrays of ``targets.ops``).

    ``runs``: every pixel's score in one or more ascending runs. ``defect``: (P,) the defect pixels' scores
    ascending. ``overlap_from``: (P + 1,) float64, ``overlap_from[i]`` the summed region weights of the defect pixels
    ``i .. P-1`` of ``defect`` (0 at P) — R times the PRO at a threshold with ``i`` defect pixels below it.
    """

    def __init__(self, scores: torch.Tensor, targets: PixelTargets) -> None:
        ops = self.ops = targets.ops
        x = ops.asarray(scores)
        n_runs = torch.get_num_threads() if scores.device.type == "cpu" and len(x) >= PARALLEL_SORT_MIN else 1
        self.runs = ops.sorted_runs(x, n_runs)
        if any(ops.count_nan(r[-1:]) for r in self.runs):
            raise ValueError(f"maps holds {ops.count_nan(x)} NaN values")
        self.defect, order = ops.sort_with_order(x[ops.asarray(targets.defect_index)])
        self.overlap_from = ops.suffix_sums(ops.asarray(targets.defect_weight)[order])
        self.n_pixels, self.n_pos = len(x), len(self.defect)
        self.n_neg = self.n_pixels - self.n_pos
        self.n_regions = targets.n_regions
        self.dtype = scores.dtype

    def count_below(self, values: Any, right: bool = False) -> Any:
        """Pixels with score < each of ``values`` (<= with ``right``)."""
        counts = [self.ops.searchsorted(r, values, right) for r in self.runs]
        return sum(counts[1:], counts[0])

    def extremes(self) -> tuple[float, float]:
        """The lowest and highest score (T > 0)."""
        return min(float(r[0]) for r in self.runs if len(r)), max(float(r[-1]) for r in self.runs if len(r))

    def top(self, n: int) -> Any:
        """The highest scores ascending: at least ``n`` of them (all when n >= T) and every score tied with the lowest
        one taken."""
        ops = self.ops
        if n >= self.n_pixels:
            return ops.merge(self.runs)
        candidates = ops.merge([r[-n:] for r in self.runs])  # every run's n highest hold the n highest of all
        cut = candidates[len(candidates) - n :][:1]  # the n-th highest score
        below = [int(ops.searchsorted(r, cut)[0]) for r in self.runs]
        if all(len(r) - b <= n for r, b in zip(self.runs, below, strict=True)):  # every run's ties are in
            return candidates[int(ops.searchsorted(candidates, cut)[0]) :]
        return ops.merge([r[b:] for r, b in zip(self.runs, below, strict=True)])


# ------------------------------------------------------------------------------------- AUROC, AP, F1-max


def _ranking(ops: ArrayOps, pos_sorted: Any, n_neg: int, neg_below: Any) -> tuple[float, float, float]:
    """AUROC (NaN without negatives), AP and F1-max of P > 0 positives sorted ascending, against N negatives.

    ``neg_below(u, first, count)`` gives (#negatives < u, #negatives <= u) for the distinct positive scores u (M,)
    ascending, ``first`` (M,) the positives below each and ``count`` (M,) the positives equal to each.
    """
    n_pos = len(pos_sorted)
    u, count = ops.run_lengths(pos_sorted)
    first = count.cumsum(0) - count
    neg_lt, neg_le = neg_below(u, first, count)
    auroc = float("nan")
    if n_neg:
        twice_area = int((count * (neg_lt + neg_le)).sum())  # 2 #(pos > neg) + #(pos = neg), exact
        auroc = twice_area / (2 * n_pos * n_neg)
    tp = ops.float64(n_pos - first)  # positives >= u
    fp = ops.float64(n_neg - neg_lt)  # negatives >= u
    ap = float((ops.float64(count) * (tp / (tp + fp))).sum()) / n_pos
    f1 = float((2.0 * tp / (tp + fp + n_pos)).max())
    return auroc, ap, f1


def image_metrics(labels: Any, scores: Any) -> dict[str, float]:
    """Image AUROC, AP and F1-max of one category. labels (N,) 0/1, scores (N,) float (higher = anomalous); on the
    scores' device. Same values and NaN rules as :func:`winclip_lib.evaluation.metrics.image_metrics`."""
    s = _as_scores(scores, "scores").reshape(-1)
    y = torch.from_numpy(_binary_mask(labels, "labels").reshape(-1)).to(s.device)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have the same length, got {tuple(y.shape)} and {tuple(s.shape)}")
    n_nan = int(torch.isnan(s).sum())
    if n_nan:
        raise ValueError(f"scores holds {n_nan} NaN values")
    n_pos = int(y.sum())
    if n_pos == 0:
        nan = _nan(IMAGE_METRIC_NAMES, f"no anomalous image among {len(y)}")
        return dict.fromkeys(IMAGE_METRIC_NAMES, nan)
    ops = ops_for(s.device)
    neg = ops.sort(ops.asarray(s[~y]))

    def neg_below(u: Any, first: Any, count: Any) -> tuple[Any, Any]:
        return ops.searchsorted(neg, u), ops.searchsorted(neg, u, right=True)

    auroc, ap, f1 = _ranking(ops, ops.sort(ops.asarray(s[y])), len(neg), neg_below)
    if len(neg) == 0:
        auroc = _nan("image_auroc", "no normal image")
    return {"image_auroc": auroc, "image_ap": ap, "image_f1_max": f1}


def _pixel_metrics(ss: _SortedScores) -> dict[str, float]:
    if ss.n_pos == 0:
        nan = _nan(PIXEL_METRIC_NAMES[:3], "no defect pixel in the category's masks")
        return dict.fromkeys(PIXEL_METRIC_NAMES[:3], nan)

    def neg_below(u: Any, first: Any, count: Any) -> tuple[Any, Any]:
        return ss.count_below(u) - first, ss.count_below(u, right=True) - first - count

    auroc, ap, f1 = _ranking(ss.ops, ss.defect, ss.n_neg, neg_below)
    if ss.n_neg == 0:
        auroc = _nan("pixel_auroc", "no defect-free pixel")
    return {"pixel_auroc": auroc, "pixel_ap": ap, "pixel_f1_max": f1}


def pixel_metrics(maps: Any, targets: PixelTargets) -> dict[str, float]:
    """Pixel AUROC, AP and F1-max over all pixels of a category: maps (shaped as the masks) against ``targets``.
    Same values as :func:`winclip_lib.evaluation.metrics.pixel_metrics`."""
    return _pixel_metrics(_SortedScores(targets.flat_scores(maps), targets))


# ------------------------------------------------------------------------------------------------- AUPRO


def _area_to(x: Any, y: Any, x_max: float) -> float:
    """Area under a curve for x in [0, x_max], its points given from the highest x to the lowest (x non-increasing),
    interpolating linearly at x_max when it is not a curve point — the reference's trapezoid (the MVTec AD evaluation
    code's) on the same points, read backwards."""
    first = int((x > x_max).sum())  # the points with x <= x_max are the last ones
    correction = 0.0
    if float(x[first]) != x_max:  # x[first] is the largest x <= x_max
        if first == 0:
            raise ValueError(f"fpr_limit {x_max} lies outside the curve's FPR range [{float(x[-1])}, {float(x[0])}]")
        x1, x0 = x[first - 1 : first + 1].tolist()
        y1, y0 = y[first - 1 : first + 1].tolist()
        y_interp = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        correction = 0.5 * (y_interp + y0) * (x_max - x0)
    x, y = x[first:], y[first:]
    return float((0.5 * (y[:-1] + y[1:]) * (x[:-1] - x[1:])).sum()) + correction


def _aupro_exact(ss: _SortedScores, fpr_limit: float) -> float:
    if ss.n_pos == 0:
        return _nan("pixel_aupro", "no defect pixel in the category's masks")
    if ss.n_neg == 0:
        return _nan("pixel_aupro", "no defect-free pixel")
    n_pos, n_neg = ss.n_pos, ss.n_neg
    # the top of the sorted scores that holds every threshold up to the first with FPR > fpr_limit: at least
    # floor(limit N) + 2 defect-free pixels at or above its lowest value, whole tie groups
    top = ss.top(math.floor(fpr_limit * n_neg) + 2 + n_pos)
    ops = ss.ops
    values, count = ops.run_lengths(top)  # the thresholds, ascending
    at_or_above = len(top) - (count.cumsum(0) - count)  # pixels >= each threshold
    # defect pixels below each threshold: those whose score is below threshold k are the ones with at most k
    # thresholds at or under their score (counted, not searched: P searches among K thresholds, not K among P)
    slot = ops.searchsorted(values, ss.defect, right=True)
    defect_below = ops.bincount(slot, minlength=len(values) + 1).cumsum(0)[: len(values)]
    false_pos = at_or_above - (n_pos - defect_below)
    # the reference's curve from its last point read backwards: FPR and PRO at each threshold, then its first
    # point (0, 0); its (1, 1) after the lowest threshold would add nothing (the lowest has FPR 1)
    zero = ops.from_numpy(np.zeros(1))
    fpr = ops.concat([ops.minimum(ops.float64(false_pos) / n_neg, 1.0), zero])
    pro = ops.concat([ops.minimum(ss.overlap_from[defect_below] / ss.n_regions, 1.0), zero])
    return _area_to(fpr, pro, fpr_limit) / fpr_limit


def _at_or_below(t: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The largest value of ``dtype`` (float32 or float64) at or below each float64 threshold: for scores x of that
    dtype, ``x <= t`` exactly when ``x <= result`` (so counts at float64 thresholds stay exact)."""
    if dtype == torch.float64:
        return t
    low = t.astype(np.float32)
    above = low > t
    low[above] = np.nextafter(low[above], np.float32(-np.inf))
    return low


def _aupro_sampled(ss: _SortedScores, steps: int, fpr_limit: float) -> float:
    if ss.n_regions == 0 or ss.n_neg == 0:
        return _nan("pixel_aupro", "no defect region" if ss.n_regions == 0 else "no defect-free pixel")
    lo, hi = ss.extremes()
    if hi <= lo:
        return _nan("pixel_aupro", "the maps are constant")
    t = np.arange(lo, hi, (hi - lo) / steps)
    ops = ss.ops
    t_dev = ops.from_numpy(_at_or_below(t, ss.dtype))
    all_le, defect_le = ss.count_below(t_dev, right=True), ops.searchsorted(ss.defect, t_dev, right=True)
    false_pos = (ss.n_pixels - all_le) - (ss.n_pos - defect_le)  # defect-free pixels > t
    fpr = ops.to_numpy(false_pos) / ss.n_neg
    pro = ops.to_numpy(ss.overlap_from[defect_le] / ss.n_regions)
    return sampled_pro_area(fpr, pro, fpr_limit)


def aupro(maps: Any, targets: PixelTargets, fpr_limit: float = 0.3) -> float:
    """Exact normalised area under the PRO curve up to FPR = ``fpr_limit``: maps (shaped as the masks) against
    ``targets``. Same value and NaN rules as :func:`winclip_lib.evaluation.metrics.aupro`."""
    _check_fpr_limit(fpr_limit)
    return _aupro_exact(_SortedScores(targets.flat_scores(maps), targets), fpr_limit)


def aupro_sampled(maps: Any, targets: PixelTargets, steps: int = 200, fpr_limit: float = 0.3) -> float:
    """The 200-threshold PRO area of public reproductions; same value and NaN rules as
    :func:`winclip_lib.evaluation.metrics.aupro_sampled`."""
    return _aupro_sampled(_SortedScores(targets.flat_scores(maps), targets), steps, fpr_limit)


# -------------------------------------------------------------------------------------------- a category


def category_metrics(labels: Any, image_scores: Any, maps: Any, targets: PixelTargets, fpr_limit: float = 0.3,
                     aupro_method: str = "exact") -> dict[str, float]:
    """All seven metrics of one category, keys in :data:`~winclip_lib.evaluation.metrics.METRIC_NAMES` order.

    labels (N,) 0/1 and image_scores (N,) float (on any device), maps (N, H, W) or N maps (H_i, W_i) shaped as the
    masks of ``targets`` (moved to its device). The pixel metrics and the AUPRO share one sort of the scores;
    ``aupro_method="thresholds200"`` gives the 200-threshold variant. Same values and NaN rules as
    :func:`winclip_lib.evaluation.metrics.evaluate_category`.
    """
    check_choice("AUPRO method", aupro_method, AUPRO_METHODS)
    _check_fpr_limit(fpr_limit)
    scores = targets.flat_scores(maps)
    n_labels = _binary_mask(labels, "labels").size
    if n_labels != targets.n_images:
        shape = targets.stacked_shape or f"{targets.n_images} masks"
        raise ValueError(f"labels has {n_labels} entries but masks/maps hold {targets.n_images} images "
                         f"(shape {shape})")
    ss = _SortedScores(scores, targets)
    out = image_metrics(labels, image_scores)
    out.update(_pixel_metrics(ss))
    out["pixel_aupro"] = _aupro_exact(ss, fpr_limit) if aupro_method == "exact" else _aupro_sampled(ss, 200,
                                                                                                      fpr_limit)
    return {k: out[k] for k in METRIC_NAMES}
