"""Scoring the checked inputs of ``winclip predict``: zero-shot WinCLIP without references, WinCLIP+ with k = every
usable reference. Every image is encoded through the experiment layer's feature cache (a second run on the same files
encodes nothing); :class:`PredictionRun` holds the scores, maps, threshold and what was skipped."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from winclip_lib.core.backbone import TINY_MODEL, Backbone, load_backbone
from winclip_lib.core.model import Prediction, WinCLIP
from winclip_lib.experiments.config import RunConfig, is_random_weights
from winclip_lib.experiments.feature_cache import FeatureCache
from winclip_lib.experiments.grid import check_backbone
from winclip_lib.experiments.labels import demo_label
from winclip_lib.experiments.progress import bar, progress_enabled
from winclip_lib.experiments.stages import StageTimes
from winclip_lib.inspection.inputs import Inputs, Skipped, image_key
from winclip_lib.inspection.threshold import Threshold, choose_threshold, decide, leave_one_out_scores

__all__ = ["EXIT_SKIPPED", "PREDICT_SETTINGS", "SCORES_COLUMNS", "PredictionRun", "explain_image", "predict_images"]

#: The RunConfig settings ``winclip predict`` offers as flags (the same flags, help and defaults as ``run``).
PREDICT_SETTINGS: tuple[str, ...] = (
    "model_name", "pretrained", "precision", "device", "cache_dir", "batch_size", "resize_mode", "scales",
    "temperature", "template_set", "normalize_each", "extra_normal", "extra_anomalous", "patch_tokens",
    "smoothing_sigma",
)
#: Exit status of ``winclip predict`` when some inputs were skipped (the rest were scored).
EXIT_SKIPPED = 3
SCORES_COLUMNS = ("rank", "name", "path", "score", "s0", "visual_max", "decision", "width", "height")


@dataclass
class PredictionRun:
    """The outcome of :func:`predict_images`.

    Attributes:
        config: the settings (a :class:`RunConfig`). class_name: the prompt's object name.
        images, names, sizes: the scored image files in input order, their stable names (:func:`image_key`) and
            (height, width).
        references: the normal references used (k = their number; 0 is zero-shot).
        score: (N,) final scores. s0: (N,) zero-shot image scores. visual_max: (N,) max of the visual map
            (few-shot only, else None).
        maps: (N, S, S) final anomaly maps at the model's input resolution.
        threshold: :class:`Threshold`. skipped: :class:`Skipped` files. excluded: references found among IMAGES.
        backbone: the backbone as loaded (``describe()``); is_random: random weights; label: the DEMO label or None.
        weights: which weights ran (:meth:`~winclip_lib.core.checkpoints.WeightsVerdict.as_dict`; None when nothing
            was loaded).
        precision: the precision actually used.
        encode_counts: the feature cache's counts (``encoded`` 0 on a re-run). seconds: wall time of the scoring.
        stages: the seconds of each stage and the images per second
            (:meth:`~winclip_lib.experiments.stages.StageTimes.as_dict`; None when nothing was scored).
        model, cache: the fitted model and the cache (for :func:`explain_image`; None when nothing was scored).
    """

    config: RunConfig
    class_name: str
    images: list[Path]
    names: list[str]
    sizes: list[tuple[int, int]]
    references: list[Path]
    score: np.ndarray
    s0: np.ndarray
    visual_max: np.ndarray | None
    maps: np.ndarray
    threshold: Threshold
    skipped: list[Skipped]
    excluded: list[Path]
    backbone: str
    is_random: bool
    label: str | None
    encode_counts: dict[str, int]
    seconds: float
    precision: str
    weights: dict[str, Any] | None = None
    stages: dict[str, Any] | None = None
    model: WinCLIP | None = field(default=None, repr=False)
    cache: FeatureCache | None = field(default=None, repr=False)

    @property
    def k(self) -> int:
        return len(self.references)

    @property
    def mode(self) -> str:
        return f"WinCLIP+ (few-shot, k = {self.k})" if self.k else "WinCLIP (zero-shot)"

    @property
    def decisions(self) -> list[str]:
        return decide(self.score, self.threshold.value)

    @property
    def exit_status(self) -> int:
        """0 when every input was scored, :data:`EXIT_SKIPPED` when anything was skipped."""
        return EXIT_SKIPPED if self.skipped else 0

    def color_range(self) -> tuple[float, float]:
        """(min, max) over every map of the run: the one colour scale of all its overlays."""
        if self.maps.size == 0:
            return 0.0, 1.0
        lo, hi = float(np.nanmin(self.maps)), float(np.nanmax(self.maps))
        return (lo, hi) if hi > lo else (lo, lo + 1e-6)

    def table(self) -> pd.DataFrame:
        """One row per scored image, highest score first (:data:`SCORES_COLUMNS`)."""
        df = pd.DataFrame({
            "name": self.names,
            "path": [str(p) for p in self.images],
            "score": self.score.astype(np.float64),
            "s0": self.s0.astype(np.float64),
            "visual_max": np.full(len(self.images), np.nan) if self.visual_max is None
            else self.visual_max.astype(np.float64),
            "decision": self.decisions,
            "width": [w for _, w in self.sizes],
            "height": [h for h, _ in self.sizes],
        })
        df = df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df[list(SCORES_COLUMNS)]

    def index(self, name_or_path: str | Path | int) -> int:
        """Position of an image given by its name, its path or its rank in :meth:`table` (an int)."""
        if isinstance(name_or_path, int):
            return self.names.index(self.table()["name"].iloc[name_or_path - 1])
        key = str(name_or_path)
        for i, (n, p) in enumerate(zip(self.names, self.images, strict=True)):
            if key in (n, str(p)) or os.path.abspath(key) == str(p):
                return i
        raise KeyError(f"{name_or_path!r} is not one of the scored images")


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def predict_images(cfg: RunConfig, class_name: str, inputs: Inputs, threshold: float | None = None, *,
                   backbone: Backbone | None = None, progress: bool | None = None,
                   times: StageTimes | None = None) -> PredictionRun:
    """Score the checked inputs: zero-shot without references, WinCLIP+ with k = every usable reference.

    Every image is encoded through the feature cache of ``cfg`` (``cache_dir``, in batches of ``batch_size``; many
    batches per call, so that decoding, encoding and cache writes overlap); the references' leave-one-out scores
    (k >= 2) set the threshold unless ``threshold`` is given (:func:`choose_threshold`). With no image to score,
    nothing is loaded and the run is empty. The seconds of each stage are in ``stages`` (charged to ``times`` when
    given — e.g. with the checks of the inputs already in it — and counted from its start).

    Raises:
        ValueError / FileNotFoundError / WeightsUnavailableError: a setting this machine cannot run (before any
            encoding).
    """
    started = time.perf_counter()
    is_random = is_random_weights(cfg.pretrained)
    label = demo_label(is_random, inputs.synthetic, tiny_model=cfg.model_name == TINY_MODEL)
    choose_threshold(threshold)  # checks a given threshold before any work
    paths = [p for p, _ in inputs.images]
    refs = [p for p, _ in inputs.normal]
    if not paths:
        nothing = Threshold(threshold, "given" if threshold is not None else "none", "no image could be scored")
        return PredictionRun(cfg, class_name, [], [], [], refs, np.zeros(0), np.zeros(0), None, np.zeros((0, 0, 0)),
                             nothing, list(inputs.skipped), list(inputs.excluded), "none (no image to score)",
                             is_random, label, {}, 0.0, cfg.precision)
    cfg.check_runnable()
    if backbone is None:
        backbone = load_backbone(cfg.model_name, cfg.pretrained, precision=cfg.precision, device=cfg.device)
    else:
        check_backbone(cfg, backbone)
    show = progress_enabled(progress)
    times = times if times is not None else StageTimes()
    cache = FeatureCache.from_config(cfg, backbone, progress=show, times=times)
    model = WinCLIP.from_config(backbone, cfg, class_name)
    device = backbone.device
    scores, s0s, vmax, maps = [], [], [], []
    loo: np.ndarray = np.zeros(0)
    try:
        with torch.inference_mode():
            with times.stage("text"):
                model.text  # noqa: B018 - the prompts encoded now, so that their time is the text's
            if refs:
                ref_features = cache.features(refs, desc="encode references", wait=False).to(device)
                with times.stage("scoring"):
                    if len(refs) >= 2:
                        loo = leave_one_out_scores(model, ref_features)
                    model.fit(ref_features)
            step = max(cache.batch_size, 32)  # images scored per call
            per_call = step * max(1, (8 * cache.batch_size) // step)  # images encoded per cache call (pipelined)
            for part in bar(list(_chunks(paths, per_call)), enabled=show, desc="score", unit="chunk", leave=False):
                feats = cache.features(part, desc="encode images", wait=False)
                with times.stage("scoring"):
                    for i in range(0, len(part), step):
                        pred = model.predict_features(feats[i : i + step].to(device), details=False)
                        scores.append(pred.score.float().cpu())
                        s0s.append(pred.image_score.float().cpu())
                        if model.memory is not None:
                            vmax.append((2 * pred.score.double() - pred.image_score.double()).float().cpu())  # eq. 4
                        maps.append(pred.map.float().cpu())
                cache.end_unit()  # without a disk cache, a part's features are not kept
            cache.flush()
    finally:
        cache.close()
    seconds = time.perf_counter() - started
    return PredictionRun(
        config=cfg, class_name=class_name, images=paths, names=[image_key(p) for p in paths],
        sizes=[hw for _, hw in inputs.images], references=refs,
        score=torch.cat(scores).numpy(), s0=torch.cat(s0s).numpy(),
        visual_max=torch.cat(vmax).numpy() if vmax else None, maps=torch.cat(maps).numpy(),
        threshold=choose_threshold(threshold, loo), skipped=list(inputs.skipped), excluded=list(inputs.excluded),
        backbone=backbone.describe(), is_random=backbone.is_random,
        label=demo_label(backbone.is_random, inputs.synthetic, backbone.weights,
                         tiny_model=backbone.model_name == TINY_MODEL),
        encode_counts=cache.counts(), seconds=seconds, precision=backbone.precision,
        weights=backbone.weights.as_dict(), stages=times.as_dict(None, len(paths) + len(refs)), model=model,
        cache=cache,
    )


def explain_image(run: PredictionRun, image: str | Path | int) -> Prediction:
    """The full :class:`~winclip_lib.core.model.Prediction` of one scored image (per-scale zero-shot maps, visual
    maps when few-shot), re-scored from the feature cache with the run's fitted model. ``image``: its name, path,
    or rank (1 = highest score)."""
    if run.model is None or run.cache is None:
        raise ValueError("this run scored no image")
    i = run.index(image)
    with torch.inference_mode():
        feats = run.cache.features([run.images[i]], desc="encode").to(run.model.backbone.device)
        return run.model.predict_features(feats)
