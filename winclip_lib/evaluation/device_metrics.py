"""The metrics of one category computed on the run's device from masks prepared once: torch on a GPU, numpy on the CPU.

The definitions are those of :mod:`winclip_lib.evaluation.metrics` — image and pixel AUROC, AP, F1-max, the exact
AUPRO and the 200-threshold variant — and so are the values: the tests hold these functions equal to that numpy
implementation (the reference) to 1e-9 on random, tie-heavy and degenerate input. What differs is the work:

* **Masks once.** A grid evaluates every (k, seed) setting of a category against the same masks, so
  :meth:`PixelTargets.from_masks` does their part once: the flat indices of the defect pixels, the weight
  1 / |region| of each (its 8-connected region, :func:`~winclip_lib.evaluation.regions.label_regions`), the
  counts — held on the device.
* **One value sort per evaluation, no argsort of every pixel.** The scores of all pixels are sorted by value only
  (on the CPU in one piece per core, sorted at once and never merged:
  :class:`~winclip_lib.evaluation.kernels.SortedUnion`), and the defect pixels (a few percent) with their order;
  every pixel metric reads these two:

  - for each distinct defect score u (ascending), binary search in the sorted scores gives the pixels below and at
    u, hence the defect-free pixels below / at u and the true and false positives at threshold u. AUROC is the
    Mann-Whitney count 2 #(defect > defect-free) + #(ties) over 2 P N, in exact integers (the trapezoid over the
    ROC points, the same number); AP sums the precision at each u times the recall step; F1-max is the largest
    2 TP / (TP + FP + P).
  - the exact AUPRO is summed by defect pixel, the way AUROC is: between consecutive thresholds only the
    defect-free pixels move the FPR, each by 1/N, under the mean of the PRO just above and at its score; exchanging
    the sums, each defect pixel adds its region weight times the defect-free pixels below it plus those at or below
    it — counted among those above the threshold where the curve crosses the FPR limit, which is found among the
    ~P sorted scores at that rank. The one crossing segment is interpolated as the reference does. No per-threshold
    array is built: the work after the sort is O(P log T).
  - the 200-threshold variant counts at its thresholds by binary search in the same arrays.

On a CUDA device every step runs there with torch (a few scalars come back per evaluation); on the CPU the same code
runs on numpy's kernels (:mod:`~winclip_lib.evaluation.kernels` says why). Scores keep their precision: float32 maps
are sorted as float32 (bfloat16 / float16 become float32, integers float64, exactly), and the float64 thresholds of
the 200-step grid are compared exactly.

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
from winclip_lib.evaluation.kernels import ArrayOps, SortedUnion, ops_for
from winclip_lib.evaluation.metrics import (
    AUPRO_METHODS,
    IMAGE_METRIC_NAMES,
    METRIC_NAMES,
    PIXEL_METRIC_NAMES,
    MetricWarning,
    as_labels,
    check_fpr_limit,
    sampled_pro_area,
)
from winclip_lib.evaluation.regions import label_regions

__all__ = ["PixelTargets", "category_metrics", "image_metrics", "pixel_metrics", "aupro", "aupro_sampled"]


def _nan(what: str | Sequence[str], why: str) -> float:
    names = what if isinstance(what, str) else ", ".join(what)
    warnings.warn(f"{names} set to NaN: {why}", MetricWarning, stacklevel=3)
    return float("nan")


# ------------------------------------------------------------------------------------------------- inputs


def _as_tensor(x: Any) -> torch.Tensor:
    """A tensor of ``x`` (a torch tensor as it is; any numpy layout — reversed strides, the other byte order — as a
    native contiguous copy where torch needs one; long double as float64)."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    a = np.asarray(x)
    if a.dtype == np.longdouble and a.dtype != np.float64:
        a = a.astype(np.float64)
    elif not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return torch.as_tensor(np.ascontiguousarray(a) if any(st < 0 for st in a.strides) else a)


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


def _stacked_shape(x: Any, name: str) -> tuple[int, ...] | None:
    """(N, H, W) of an array / tensor of N images, or None for a sequence of (H_i, W_i) ones."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        if x.ndim != 3:
            raise ValueError(f"masks and maps must be (N, H, W), got {name} of shape {tuple(x.shape)}")
        return tuple(x.shape)
    return None


def _per_image(x: Any, name: str) -> list[Any]:
    """The images of an (N, H, W) array / tensor or of a sequence of (H_i, W_i) ones, checked to be 2-D."""
    items = list(x)
    for i, m in enumerate(items):
        if np.ndim(m) != 2:
            raise ValueError(f"{name}[{i}] must be (H, W), got shape {tuple(np.shape(m))}")
    return items


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
        stacked = _stacked_shape(masks, "masks")
        binary = [as_labels(m, "masks") for m in _per_image(masks, "masks")]
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
        stacked = _stacked_shape(maps, "maps")
        if stacked is not None and self.stacked_shape is not None:
            if stacked != self.stacked_shape:
                raise ValueError(f"masks and maps must have the same shape, got masks {self.stacked_shape} and "
                                 f"maps {stacked}")
            return _as_scores(maps, "maps", self.device).reshape(-1)
        per_image = _per_image(maps, "maps")
        shapes = [tuple(np.shape(m)) for m in per_image]
        if len(shapes) != self.n_images or any(s != t for s, t in zip(shapes, self.shapes, strict=False)):
            bad = next((i for i, (s, t) in enumerate(zip(shapes, self.shapes, strict=False)) if s != t), None)
            where = f"image {bad}: mask {self.shapes[bad]}, map {shapes[bad]}" if bad is not None else (
                f"{self.n_images} masks, {len(shapes)} maps")
            raise ValueError(f"masks and maps must have the same shape, got {where}")
        if not per_image:
            return torch.zeros(0, dtype=torch.float64, device=self.device)
        flat = [_as_scores(m, "maps", self.device).reshape(-1) for m in per_image]  # float32 or float64 each
        dtype = torch.float64 if any(f.dtype == torch.float64 for f in flat) else torch.float32
        return torch.cat([f.to(dtype) for f in flat])


# ------------------------------------------------------------------------------------------------- sorting


@dataclass(frozen=True)
class _Ranks:
    """Where the positives stand among the negatives, by distinct positive score u (M,) ascending: ``count`` the
    positives at u, ``first`` those below u, ``neg_lt`` / ``neg_le`` the negatives below / at or below u."""

    count: Any
    first: Any
    neg_lt: Any
    neg_le: Any
    n_pos: int
    n_neg: int


class _SortedScores:
    """One evaluation's scores, sorted once, shared by every pixel metric (arrays of ``targets.ops``).

    ``all``: every pixel's score, sorted (:class:`~winclip_lib.evaluation.kernels.SortedUnion`). ``defect``: (P,)
    the defect pixels' scores ascending; ``weight`` (P,) their region weights 1 / |region| in that order;
    ``overlap_from`` (P + 1,) float64, element i the summed weights of ``defect[i:]`` (0 at P) — R times the PRO at
    a threshold with i defect pixels below it. ``ranks``:
    the defect pixels among the defect-free ones (:class:`_Ranks`).
    """

    def __init__(self, scores: torch.Tensor, targets: PixelTargets) -> None:
        ops = self.ops = targets.ops
        x = ops.asarray(scores)
        self.all = SortedUnion(ops.sort_pieces(x), ops)
        if len(x) and (n_nan := self.all.count_nan()):
            raise ValueError(f"maps holds {n_nan} NaN values")
        self.defect, order = ops.sort_with_order(x[ops.asarray(targets.defect_index)])
        self.weight = ops.asarray(targets.defect_weight)[order]
        self.overlap_from = ops.suffix_sums(self.weight)
        self.n_pixels, self.n_pos = len(x), len(self.defect)
        self.n_neg = self.n_pixels - self.n_pos
        self.n_regions = targets.n_regions
        self.dtype = scores.dtype
        u, count = ops.run_lengths(self.defect)
        first = count.cumsum(0) - count
        self.ranks = _Ranks(count, first, self.all.searchsorted(u) - first,
                            self.all.searchsorted(u, right=True) - first - count, self.n_pos, self.n_neg)

    def normal_below(self, values: Any, right: bool = False) -> Any:
        """Defect-free pixels with score < each of ``values`` (<= with ``right``)."""
        ops = self.ops
        return self.all.searchsorted(values, right) - ops.searchsorted(self.defect, values, right)


# ------------------------------------------------------------------------------------- AUROC, AP, F1-max


def _ranking(ops: ArrayOps, r: _Ranks) -> tuple[float, float, float]:
    """AUROC (NaN without negatives), AP and F1-max of P > 0 positives against N negatives."""
    auroc = float("nan")
    if r.n_neg:
        twice_area = int((r.count * (r.neg_lt + r.neg_le)).sum())  # 2 #(pos > neg) + #(pos = neg), exact
        auroc = twice_area / (2 * r.n_pos * r.n_neg)
    tp = ops.float64(r.n_pos - r.first)  # positives >= u
    fp = ops.float64(r.n_neg - r.neg_lt)  # negatives >= u
    ap = float((ops.float64(r.count) * (tp / (tp + fp))).sum()) / r.n_pos
    f1 = float((2.0 * tp / (tp + fp + r.n_pos)).max())
    return auroc, ap, f1


def image_metrics(labels: Any, scores: Any) -> dict[str, float]:
    """Image AUROC, AP and F1-max of one category. labels (N,) 0/1, scores (N,) float (higher = anomalous); on the
    scores' device. Same values and NaN rules as :func:`winclip_lib.evaluation.metrics.image_metrics`."""
    s = _as_scores(scores, "scores").reshape(-1)
    y = torch.from_numpy(np.ascontiguousarray(as_labels(labels, "labels").reshape(-1))).to(s.device)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have the same length, got {tuple(y.shape)} and {tuple(s.shape)}")
    n_nan = int(torch.isnan(s).sum())
    if n_nan:
        raise ValueError(f"scores holds {n_nan} NaN values")
    if n_inf := int(torch.isinf(s).sum()):
        raise ValueError(f"scores holds {n_inf} infinite values")
    n_pos = int(y.sum())
    if n_pos == 0:
        nan = _nan(IMAGE_METRIC_NAMES, f"no anomalous image among {len(y)}")
        return dict.fromkeys(IMAGE_METRIC_NAMES, nan)
    ops = ops_for(s.device)
    pos, neg = ops.sort(ops.asarray(s[y])), ops.sort(ops.asarray(s[~y]))
    u, count = ops.run_lengths(pos)
    ranks = _Ranks(count, count.cumsum(0) - count, ops.searchsorted(neg, u), ops.searchsorted(neg, u, right=True),
                   n_pos, len(neg))
    auroc, ap, f1 = _ranking(ops, ranks)
    if len(neg) == 0:
        auroc = _nan("image_auroc", "no normal image")
    return {"image_auroc": auroc, "image_ap": ap, "image_f1_max": f1}


def _pixel_metrics(ss: _SortedScores) -> dict[str, float]:
    if ss.n_pos == 0:
        nan = _nan(PIXEL_METRIC_NAMES[:3], "no defect pixel in the category's masks")
        return dict.fromkeys(PIXEL_METRIC_NAMES[:3], nan)
    auroc, ap, f1 = _ranking(ss.ops, ss.ranks)
    if ss.n_neg == 0:
        auroc = _nan("pixel_auroc", "no defect-free pixel")
    return {"pixel_auroc": auroc, "pixel_ap": ap, "pixel_f1_max": f1}


def pixel_metrics(maps: Any, targets: PixelTargets) -> dict[str, float]:
    """Pixel AUROC, AP and F1-max over all pixels of a category: maps (shaped as the masks) against ``targets``.
    Same values as :func:`winclip_lib.evaluation.metrics.pixel_metrics`."""
    return _pixel_metrics(_SortedScores(targets.flat_scores(maps), targets))


# ------------------------------------------------------------------------------------------------- AUPRO


def _aupro_exact(ss: _SortedScores, fpr_limit: float) -> float:
    """The reference's trapezoid area under the PRO curve to ``fpr_limit``, summed by defect pixel.

    The curve has a point at every distinct score v (descending): FPR(v) = #defect-free >= v / N, PRO(v) = the summed
    weights of the defect pixels >= v over R. Only the defect-free pixels move FPR, so the area is a sum over them:
    each one n adds 1/N times the mean of PRO just above and at its score, i.e. (sum of w_p over the defect pixels
    p > n, plus over p >= n) / 2 N R. Exchanging the sums, each defect pixel p adds w_p / 2 N R times the number of
    defect-free pixels below it plus those at or below it — counted among the defect-free pixels above the threshold
    v* whose segment crosses the limit (all of them when none does); the crossing segment, from (FPR(> v*), PRO(> v*))
    to (FPR(v*), PRO(v*)), is interpolated at the limit as the reference does.
    """
    if ss.n_pos == 0:
        return _nan("pixel_aupro", "no defect pixel in the category's masks")
    if ss.n_neg == 0:
        return _nan("pixel_aupro", "no defect-free pixel")
    ops, r = ss.ops, ss.ranks
    n_all, n_pos, n_neg, n_regions = ss.n_pixels, ss.n_pos, ss.n_neg, ss.n_regions
    # v*, the highest score with FPR > limit, is among the sorted scores at ranks m + P + 3 .. m - 1 from the top
    # (m = floor(limit N)): the lowest of them has more than m + 2 defect-free pixels at or above it, and a score
    # with more than limit N of them at or above has its first place at least m + 1 from the top
    m = math.floor(fpr_limit * n_neg)
    window = ss.all.ranks(max(0, n_all - m - n_pos - 3), max(0, n_all - m + 2))
    at_or_above = n_neg - ss.normal_below(window)  # FPR x N at each, falling
    n_over = int((ops.float64(at_or_above) / n_neg > fpr_limit).sum())
    correction, below_star = 0.0, 0
    if n_over:
        v_star = window[n_over - 1 : n_over]
        fp_at = int(at_or_above[n_over - 1])
        fp_above = n_neg - int(ss.normal_below(v_star, right=True)[0])  # the point before: scores > v*
        below_star = n_neg - fp_above  # defect-free pixels <= v*: outside the full segments
        x0, x1 = fp_above / n_neg, fp_at / n_neg
        if x0 != fpr_limit:
            y0 = min(float(ss.overlap_from[int(ops.searchsorted(ss.defect, v_star, right=True)[0])]) / n_regions, 1.0)
            y1 = min(float(ss.overlap_from[int(ops.searchsorted(ss.defect, v_star)[0])]) / n_regions, 1.0)
            y_interp = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            correction = 0.5 * (y_interp + y0) * (fpr_limit - x0)
    # per distinct defect score u: the defect-free pixels in (v*, u) plus those in (v*, u]; then per defect pixel
    lt, le = r.neg_lt - below_star, r.neg_le - below_star
    pairs = lt * (lt > 0) + le * (le > 0)
    area = 0.5 * float((ops.float64(ops.repeat(pairs, r.count)) * ss.weight).sum()) / (n_neg * n_regions)
    return (area + correction) / fpr_limit


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
    lo, hi = ss.all.first(), ss.all.last()
    if hi <= lo:
        return _nan("pixel_aupro", "the maps are constant")
    ops = ss.ops
    t = ops.from_numpy(_at_or_below(np.arange(lo, hi, (hi - lo) / steps), ss.dtype))
    fpr = ops.to_numpy(ss.n_neg - ss.normal_below(t, right=True)) / ss.n_neg  # defect-free pixels > t
    pro = ops.to_numpy(ss.overlap_from[ops.searchsorted(ss.defect, t, right=True)] / ss.n_regions)
    return sampled_pro_area(fpr, pro, fpr_limit)


def aupro(maps: Any, targets: PixelTargets, fpr_limit: float = 0.3) -> float:
    """Exact normalised area under the PRO curve up to FPR = ``fpr_limit``: maps (shaped as the masks) against
    ``targets``. Same value and NaN rules as :func:`winclip_lib.evaluation.metrics.aupro`."""
    fpr_limit = check_fpr_limit(fpr_limit)
    return _aupro_exact(_SortedScores(targets.flat_scores(maps), targets), fpr_limit)


def aupro_sampled(maps: Any, targets: PixelTargets, steps: int = 200, fpr_limit: float = 0.3) -> float:
    """The 200-threshold PRO area of public reproductions; same value and NaN rules as
    :func:`winclip_lib.evaluation.metrics.aupro_sampled`."""
    fpr_limit = check_fpr_limit(fpr_limit)
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
    fpr_limit = check_fpr_limit(fpr_limit)
    scores = targets.flat_scores(maps)
    n_labels = as_labels(labels, "labels").size
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
