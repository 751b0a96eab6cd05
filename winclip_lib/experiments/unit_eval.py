"""Scoring one unit of a grid: every (k, seed) setting from the unit's cached features, evaluated against its masks.

The masks go through the same geometry as the images (:class:`~winclip_lib.core.geometry.Geometry`): at
``eval_resolution="N"`` (240: the model input) they are resized (and, in crop mode, cropped) to N x N with the
``mask_resize`` method and the maps are upsampled from the patch grid to N x N, so mask pixel (i, j) is map pixel
(i, j); at ``"mask"`` the maps are carried onto the covered part of each mask at its own resolution (sizes may
differ between images: the pixel metrics pool the pixels of all of them). With ``masks=False``, or for a unit whose
anomalous images have no masks (a ``folder`` without masks), only the image metrics are computed (pixel metrics are
NaN: not available).

The masks are prepared once per unit (:class:`~winclip_lib.evaluation.device_metrics.PixelTargets`: regions labelled,
defect pixels indexed on the model's device) and every setting's maps stay on that device, where they are evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.fewshot import unit_features
from winclip_lib.core.geometry import Geometry
from winclip_lib.core.model import Queries, WinCLIP
from winclip_lib.core.options import WinCLIPOptions
from winclip_lib.core.prompts import TextEmbeddingCache
from winclip_lib.datasets.catalog import Sample
from winclip_lib.datasets.masks import load_mask
from winclip_lib.evaluation.device_metrics import PixelTargets, category_metrics, image_metrics
from winclip_lib.evaluation.metrics import IMAGE_METRIC_NAMES, METRIC_NAMES
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.feature_cache import FeatureCache
from winclip_lib.experiments.image_loader import ImageLoader
from winclip_lib.experiments.summary import METRICS_COLUMNS, SCORES_COLUMNS
from winclip_lib.experiments.units import Unit

__all__ = ["UnitScores", "eval_masks", "model_for", "score_unit"]


def eval_geometry(cfg: RunConfig, input_size: int) -> Geometry:
    """The geometry the pixel metrics are computed in: the images' own resize mode at the evaluation side (the
    model's input size for "mask", where only the covered region matters)."""
    side = input_size if cfg.eval_resolution == "mask" else int(cfg.eval_resolution)
    return Geometry(side, cfg.resize_mode)


@dataclass(frozen=True)
class UnitScores:
    """What :func:`score_unit` gives: the metric rows, the per-image score rows, and for each anomalous test image's
    mask that was decoded, whether it marks any pixel (``marked``: mask path -> bool)."""

    metrics: pd.DataFrame
    scores: pd.DataFrame
    marked: dict[Path, bool] = field(default_factory=dict)


def _eval_mask(sample: Sample, geometry: Geometry, eval_resolution: str, method: str
               ) -> tuple[np.ndarray, tuple[int, int], bool]:
    full = load_mask(sample)
    if eval_resolution != "mask":
        return geometry.mask(full, method), full.shape, bool(full.any())
    return full[geometry.region(*full.shape)], full.shape, bool(full.any())


_Masks = tuple[list[np.ndarray], list[tuple[int, int]], dict[Path, bool]]


def _gathered(unit: Unit, done: list[tuple[np.ndarray, tuple[int, int], bool]]) -> _Masks:
    marked = {s.mask_path: any_ for s, (_, _, any_) in zip(unit.test, done, strict=True)
              if s.label == 1 and s.mask_path is not None}
    return [m for m, _, _ in done], [shape for _, shape, _ in done], marked


def _start_masks(unit: Unit, geometry: Geometry, eval_resolution: str, method: str, loader: ImageLoader | None
                 ) -> Callable[[], _Masks]:
    """Start the masks of :func:`eval_masks` on the loader's threads; the function returned waits for them and
    gives (masks, full shapes, whether each anomalous image's mask marks any pixel)."""
    if loader is None:
        done = [_eval_mask(s, geometry, eval_resolution, method) for s in unit.test]
        return lambda: _gathered(unit, done)
    futures = [loader.submit("decode", _eval_mask, s, geometry, eval_resolution, method) for s in unit.test]

    def collect() -> _Masks:
        with loader.times.stage("decode"):
            done = [loader.result(f) for f in futures]
        return _gathered(unit, done)

    return collect


def eval_masks(unit: Unit, geometry: Geometry, eval_resolution: str, method: str = "area",
               loader: ImageLoader | None = None) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Ground-truth masks of the unit's test images — through ``geometry`` to (N, N) bool (``method`` resizing),
    or for "mask" the covered region of each mask at its own resolution — and each mask's full (H, W). With a
    ``loader``, the masks are decoded and resized on its threads."""
    masks, shapes, _ = _start_masks(unit, geometry, eval_resolution, method, loader)()
    return masks, shapes


def model_for(unit: Unit, cfg: RunConfig, backbone: Backbone, text_cache: TextEmbeddingCache | None = None
              ) -> WinCLIP:
    """The model that scores a unit: the config's options, the unit's class name in the config's style, the defect
    state words when asked, and maps at the evaluation side."""
    extra = unit.defect_states() if cfg.defect_states else ()
    options = WinCLIPOptions.from_config(cfg).replace(extra_anomalous=(*cfg.extra_anomalous, *extra))
    side = backbone.image_size if cfg.eval_resolution == "mask" else int(cfg.eval_resolution)
    return WinCLIP(backbone, unit.prompt_name(cfg.class_names), options=options, text_cache=text_cache,
                   output_size=side)


def _score(model: WinCLIP, test: Queries, mask_shapes: list[tuple[int, int]] | None, full_shapes: list | None,
           draws: list[torch.Tensor | None], map_memory: torch.Tensor | None = None
           ) -> list[tuple[np.ndarray, torch.Tensor | list[torch.Tensor] | None]]:
    """For each draw of references (positions among the unit's references; None: zero-shot), the image scores (N,)
    float64 and the maps of the test images, every draw scored together (:meth:`WinCLIP.predict_draws`) from the
    queries :meth:`WinCLIP.prepare` made. The maps stay on the model's device as float32: one (N, H, W) tensor when
    all have one size, else N tensors (H_i, W_i) — each map at its mask's shape (carried onto the covered region of
    the mask where the model's map has another shape). ``mask_shapes`` None: scores only (maps None).
    ``map_memory``: the memory the maps are written into (:meth:`WinCLIP.predict_draws`; the maps returned may be
    views of it, valid until it is used again)."""
    all_scores, all_maps = model.predict_draws(test, draws, out=map_memory)
    out = []
    for s in range(len(draws)):
        scores = all_scores[s].double().cpu().numpy()
        if mask_shapes is None:
            out.append((scores, None))
            continue
        maps = all_maps[s].float()
        if all(tuple(maps.shape[1:]) == shape for shape in mask_shapes):
            out.append((scores, maps))
            continue
        pieces = [m if tuple(m.shape[1:]) == mask_shapes[j] else model.geometry.map_to_region(m, *full_shapes[j])
                  for j, m in enumerate(maps.split(1))]
        same = len({tuple(m.shape[1:]) for m in pieces}) <= 1
        out.append((scores, torch.cat(pieces) if same else [m[0] for m in pieces]))
    return out


#: Bytes of maps scored together (every setting of a group at once, :func:`_score`).
MAP_GROUP_BYTES = 64 << 20


def _settings_per_group(n_test: int, mask_shapes: list[tuple[int, int]] | None, side: int) -> int:
    """How many settings are scored together: their maps (float32) within :data:`MAP_GROUP_BYTES`."""
    pixels = sum(h * w for h, w in mask_shapes) if mask_shapes is not None else n_test * side * side
    return max(1, MAP_GROUP_BYTES // max(1, 4 * pixels))


def _prepare_targets(masks: list[np.ndarray], device: torch.device) -> PixelTargets:
    """The unit's masks prepared once for all its settings (regions labelled, defect pixels indexed on ``device``):
    stacked when they have one size, else image by image (the pixels of all images are pooled either way)."""
    same = len({m.shape for m in masks}) <= 1
    return PixelTargets.from_masks(np.stack(masks) if same and masks else masks, device=device)


@torch.inference_mode()
def score_unit(unit: Unit, cfg: RunConfig, backbone: Backbone, cache: FeatureCache, progress: bool = True,
               text_cache: TextEmbeddingCache | None = None, ahead: Sequence[Path] = (),
               map_memory: torch.Tensor | None = None) -> UnitScores:
    """Encode (through the cache) and score one unit for every (k, seed).

    The masks are decoded on the cache's loader threads while the images are encoded (after them when the loader
    decodes nothing ahead), and once the images are encoded the next unit's images (``ahead``) are prepared ahead
    (:meth:`FeatureCache.prefetch`; on the CPU while the main thread leaves cores spare); the test features are
    prepared once with the unit's references (the zero-shot maps, the best cosine of every query against each
    reference: :class:`~winclip_lib.core.fewshot.ReferenceMaxima`), and every setting is scored from them, its draw
    of references picked by position — as many settings together as :data:`MAP_GROUP_BYTES` of maps hold
    (:meth:`~winclip_lib.core.model.WinCLIP.predict_draws`), each then evaluated. Each step's time goes to
    ``cache.times``. The cache's writes may still be
    running when this returns (:meth:`FeatureCache.flush`). ``map_memory``: an empty 1-D float32 tensor on the
    backbone's device that takes every group's maps, grown as needed (:func:`~winclip_lib.core.scoring.upsample`) —
    :func:`~winclip_lib.experiments.grid.run_grid` passes one to all its units, so that the maps are written into
    memory already touched, not fresh pages (scoring at half of MVTec-AD's size on the 2-core EPYC: 5.2 s into fresh
    memory, 3.4 s so); default: one for this unit.

    Returns:
        :class:`UnitScores`: metrics rows with :data:`~winclip_lib.experiments.summary.METRICS_COLUMNS`, per-image
        score rows with :data:`~winclip_lib.experiments.summary.SCORES_COLUMNS`, and whether each decoded mask of an
        anomalous image marks any pixel (so that :func:`~winclip_lib.datasets.scan.mask_warnings` need not read it
        again).
    """
    name = f"{unit.dataset}/{unit.category}"
    times = cache.times
    refs = unit.reference_union
    wants_masks = cfg.masks and unit.has_masks
    mask_args = (unit, eval_geometry(cfg, backbone.image_size), cfg.eval_resolution, cfg.mask_resize, cache.loader)
    pending_masks = _start_masks(*mask_args) if wants_masks and cache.loader.ahead else None  # beside the encoder
    feats = cache.features([s.image_path for s in unit.test] + [s.image_path for s in refs], desc=f"encode {name}",
                           wait=False)
    masks = full_shapes = None
    marked: dict[Path, bool] = {}
    if wants_masks and pending_masks is None:
        masks, full_shapes, marked = _start_masks(*mask_args)()  # now, with every core
    cache.prefetch(ahead)
    ref_index = {s.image_path: i for i, s in enumerate(refs)}

    model = model_for(unit, cfg, backbone, text_cache)
    with times.stage("text"):
        model.text  # noqa: B018 - the class's prompts encoded now, so that their time is the text's
    labels = np.array([s.label for s in unit.test], dtype=np.int64)
    if pending_masks is not None:
        masks, full_shapes, marked = pending_masks()
    mask_shapes = targets = None
    if masks is not None:
        with times.stage("metrics"):  # what every setting's pixel metrics share
            targets = _prepare_targets(masks, backbone.device)
        mask_shapes = [m.shape for m in masks]

    chunk = max(1, 4 * cache.batch_size)
    with times.stage("scoring"):
        unit_refs = unit_features(feats[len(unit.test) :].to(backbone.device)) if refs else None
        # Prepared in pieces of four encoder batches — the zero-shot products round according to the rows they hold,
        # so these are the pieces the numbers were always made with — then scored as one batch, so that every
        # setting's maps come out as one tensor (joining them copied every map: 0.75 s of a 32 s grid on 2 cores).
        test = Queries.cat([model.prepare(feats[i : min(i + chunk, len(unit.test))].to(backbone.device),
                                          unit_norm=bool(refs), references=unit_refs)
                            for i in range(0, len(unit.test), chunk)])
    metric_rows: list[dict[str, Any]] = []
    score_columns: dict[str, list[Any]] = {c: [] for c in SCORES_COLUMNS}  # the per-image rows, column by column
    images = [unit.relative(s.image_path) for s in unit.test]
    image_labels, defects, n = labels.tolist(), [s.defect for s in unit.test], len(unit.test)
    settings = unit.settings
    group = _settings_per_group(len(unit.test), mask_shapes, model.output_size)
    bar = tqdm(total=len(settings), desc=f"score {name}", unit="setting", disable=not progress, leave=False)
    map_memory = torch.empty(0, device=backbone.device) if map_memory is None else map_memory
    for start in range(0, len(settings), group):
        batch = settings[start : start + group]
        with times.stage("scoring"):
            draws = [None if k == 0 else torch.tensor([ref_index[s.image_path] for s in unit.references[(k, seed)]])
                     for k, seed in batch]
            scored = _score(model, test, mask_shapes, full_shapes, draws, map_memory)
        for (k, seed), (scores, maps) in zip(batch, scored, strict=True):
            with times.stage("metrics"), cache.loader.spare_cores():
                if targets is not None:
                    values = category_metrics(labels, scores, maps, targets, aupro_method=cfg.aupro)
                else:
                    values = {**image_metrics(labels, scores), **{m: float("nan") for m in METRIC_NAMES
                                                                  if m not in IMAGE_METRIC_NAMES}}
            metric_rows += [{"dataset": unit.dataset, "category": unit.category, "k": k, "seed": seed,
                             "metric": m, "value": float(values[m])} for m in METRIC_NAMES]
            for column, cells in (("dataset", [unit.dataset] * n), ("category", [unit.category] * n), ("k", [k] * n),
                                  ("seed", [seed] * n), ("image", images), ("label", image_labels),
                                  ("defect", defects), ("score", scores.tolist())):
                score_columns[column] += cells
            bar.update(1)
        del scored  # the group's maps
    bar.close()
    return UnitScores(pd.DataFrame(metric_rows, columns=METRICS_COLUMNS),
                      pd.DataFrame(score_columns, columns=SCORES_COLUMNS), marked)
