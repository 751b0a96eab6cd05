"""The paper's ablations and the public reproductions' presets, scored from one encoding per encoder setting.

An *ablation* is a list of *variants*, each a few settings changed from a base configuration and, where the paper
reports one, the paper's number for that row. :func:`run_ablations` runs every variant as its own grid
(:func:`~winclip_lib.experiments.grid.run_or_load`, so finished variants are read back), after first encoding every
image once with the union of what the variants need — the windows of every scale, every patch-token variant, the
multi-crop views, the tiles — per encoder setting (the variants that only change scoring share one encoding).
:func:`run_presets` does the same for the presets of :mod:`~winclip_lib.experiments.presets`.

The paper's ablation numbers are stored in ``winclip_lib/report/paper_results.csv`` with the category
``ablation:<ablation>/<row>``; they come from a secondary copy of the paper's tables (see that file's notes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.encoder import encode_images
from winclip_lib.core.options import WinCLIPOptions
from winclip_lib.core.preprocess import preprocess
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.feature_cache import FeatureCache, FeatureRequest
from winclip_lib.experiments.grid import load_run_backbone, run_or_load
from winclip_lib.experiments.labels import run_label
from winclip_lib.experiments.results import RunResult
from winclip_lib.experiments.units import plan_units

__all__ = ["ABLATIONS", "Ablation", "Variant", "prewarm", "run_ablations", "run_presets", "time_dense_features"]


@dataclass(frozen=True)
class Variant:
    """One row of an ablation: a label, the settings it changes, and its key among the paper's ablation numbers."""

    label: str
    settings: dict[str, Any] = field(default_factory=dict)
    paper_row: str | None = None


@dataclass(frozen=True)
class Ablation:
    """A named ablation: its variants, the metric the paper reports for it and the k it runs at."""

    name: str
    title: str
    metric: str
    shots: tuple[int, ...]
    variants: tuple[Variant, ...]
    note: str = ""


_MULTI_CROP = "the paper's '+ multi-crop' row (91.8) is not specified precisely; these are its candidate readings"

#: The paper's ablations, in the paper's order.
ABLATIONS: dict[str, Ablation] = {a.name: a for a in (
    Ablation("cpe", "Compositional prompt ensemble (zero-shot image AUROC)", "image_auroc", (0,), (
        Variant("one-class: 'normal [c]' only", {"prompt_ensemble": "one_class"}, "one_class"),
        Variant("two-class: 'normal [c]' vs 'anomalous [c]'", {"prompt_ensemble": "two_class"}, "two_class"),
        Variant("+ state ensemble", {"prompt_ensemble": "states"}, "states"),
        Variant("+ template ensemble (the full CPE; score s0)", {}, "templates"),
        Variant("+ multi-crop? s0 with the map's max", {"image_score": "s0_map_max"}, "multicrop"),
        Variant("+ multi-crop? s0 with the windows' mean", {"image_score": "s0_windows_mean"}, "multicrop"),
        Variant("+ multi-crop? s0 with the windows' max", {"image_score": "s0_windows_max"}, "multicrop"),
        Variant("+ multi-crop? s0 over five crops", {"image_score": "multicrop"}, "multicrop"),
    ), _MULTI_CROP),
    Ablation("dense", "Dense features (zero-shot pixel AUROC)", "pixel_auroc", (0,), (
        Variant("raw patch tokens against the text", {"dense_features": "patch_tokens"}, "patch_tokens"),
        Variant("image tiling (each window region encoded whole)", {"dense_features": "tiles"}, "tiling"),
        Variant("windows (WinCLIP)", {}, "windows"),
        Variant("windows, without harmonic averaging", {"window_aggregation": "mean"}, "no_harmonic"),
        Variant("windows, without the image-scale term", {"image_term": False}, "no_image_term"),
    )),
    Ablation("scales", "Window scales (zero-shot pixel AUROC)", "pixel_auroc", (0,), (
        Variant("{2}", {"scales": (2,)}), Variant("{3}", {"scales": (3,)}), Variant("{2, 3} (the paper)", {}),
        Variant("{1, 2, 3}", {"scales": (1, 2, 3)}),
    )),
    Ablation("fewshot", "WinCLIP+ components (image AUROC)", "image_auroc", (1, 4, 8), (
        Variant("patch memory only", {"memories": ("patches",)}),
        Variant("window memories only", {"memories": ("windows",)}),
        Variant("all three memories, without the language term", {"fusion": "visual"}, "no_language"),
        Variant("all three memories with the language term (WinCLIP+)", {}, "with_language"),
    ), "the paper reports the language term at 8 shots only"),
    Ablation("patch_features", "WinCLIP+ patch features (image AUROC)", "image_auroc", (1, 4), (
        Variant("last block, after ln_post (open_clip's tokens)", {}),
        Variant("last block, without ln_post", {"patch_tokens": "raw"}),
        Variant("second-to-last block", {"patch_tokens": "penultimate"}),
        Variant("second-to-last block, after ln_post", {"patch_tokens": "penultimate_ln_post"}),
    )),
    Ablation("temperature", "Softmax temperature (zero-shot image AUROC)", "image_auroc", (0,), (
        Variant("T = 0.07 (CLIP's)", {}), Variant("T = 0.01 (logit scale 100)", {"temperature": 0.01}),
    )),
    Ablation("smoothing", "Map smoothing (pixel AUROC)", "pixel_auroc", (0, 1), (
        Variant("none", {}), Variant("Gaussian, sigma = 4 px", {"smoothing_sigma": 4.0}),
    )),
    Ablation("eval_resolution", "Evaluation resolution (pixel AUROC)", "pixel_auroc", (0,), (
        Variant("240 x 240 (the model input)", {}), Variant("each mask's own resolution", {"eval_resolution": "mask"}),
    )),
    Ablation("defect_states", "Defect-specific state words (zero-shot image AUROC) — uses the test set's defect "
             "names", "image_auroc", (0,), (
        Variant("the paper's state words", {}, "generic"),
        Variant("+ '{} with <defect>' from the defect folder names", {"defect_states": True}, "defect_specific"),
    ), "the paper reports this on VisA; the official VisA split names no defect types, so it needs a layout whose "
       "defect folders are named"),
)}


def _config(base: RunConfig, settings: Mapping[str, Any], shots: Sequence[int]) -> RunConfig:
    return base.replace(**{**settings, "shots": tuple(shots)})


def prewarm(configs: Iterable[RunConfig], backbone_for: Callable[[RunConfig], Backbone], progress: bool = False
            ) -> dict[str, int]:
    """Encode every image the configs use once, per encoder setting (the feature cache's spec), with the union of
    what the configs that use that image need (the tiles of the tiling rows only for their test images, say);
    return the summed encode counts."""
    groups: dict[str, tuple[FeatureCache, dict[Path, FeatureRequest]]] = {}
    for cfg in configs:
        cache = FeatureCache.from_config(cfg, backbone_for(cfg), progress=progress)
        request = FeatureRequest.from_options(WinCLIPOptions.from_config(cfg))
        cache, needs = groups.setdefault(cache.spec.key, (cache, {}))
        for unit in plan_units(cfg):
            for s in (*unit.test, *unit.reference_union):
                needs[s.image_path] = needs[s.image_path].union(request) if s.image_path in needs else request
    totals = {"encoded": 0, "hits": 0, "extended": 0, "encoder_settings": len(groups)}
    for cache, needs in groups.values():
        by_request: dict[FeatureRequest, list[Path]] = {}
        for path, request in needs.items():
            by_request.setdefault(request, []).append(path)
        for request, paths in by_request.items():
            cache.features(paths, desc="encode once", request=request)
        for name in ("encoded", "hits", "extended"):
            totals[name] += cache.counts()[name]
    return totals


def _summary_rows(result: RunResult) -> pd.DataFrame:
    s = result.summary.copy()
    s["ours"], s["ours_std"] = 100 * s["mean"], 100 * s["std"]
    return s[["dataset", "k", "metric", "ours", "ours_std", "n_seeds", "n_categories"]]


def run_ablations(base: RunConfig, results_dir: str | Path, names: Sequence[str] | None = None, *,
                  backbone_for: Callable[[RunConfig], Backbone] | None = None, max_test_images: int | None = None,
                  shots: Mapping[str, Sequence[int]] | None = None, progress: bool | None = None
                  ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the named ablations (all by default) on the base configuration's data.

    Args:
        base: datasets, categories, backbone and every setting the variants do not change.
        results_dir: where each variant's run goes (``results_dir/run-<identity>``; finished ones are read).
        backbone_for: the loaded backbone of a config (default: the config's own, loaded once per model, weights,
            precision and device).
        max_test_images: evaluate every variant on this many test images per category (the tiling rows are
            expensive); None: all.
        shots: {ablation name: k values} instead of the ablation's own (e.g. fewer shots than 8 on a small set).

    Returns:
        (one row per ablation, variant, dataset, k and metric — ``ours`` and ``ours_std`` in %, the variant's label
        and paper row —, and the encode counts: the pre-encoding's and each variant's own).
    """
    names = list(names) if names is not None else list(ABLATIONS)
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; choose from {', '.join(ABLATIONS)}")
    backbone_for = backbone_for or _backbone_loader()
    if max_test_images is not None:
        base = base.replace(max_test_images=max_test_images)
    ks = dict(shots or {})
    plan = [(a, v, _config(base, v.settings, ks.get(a.name, a.shots)))
            for a in (ABLATIONS[n] for n in names) for v in a.variants]
    counts: dict[str, Any] = {"prewarm": prewarm([c for _, _, c in plan], backbone_for)}
    rows, variant_encodes = [], 0
    for ablation, variant, cfg in plan:
        result = run_or_load(cfg, results_dir, backbone=backbone_for(cfg), progress=progress)
        variant_encodes += int(result.info.get("encode_counts", {}).get("encoded", 0))
        frame = _summary_rows(result)
        frame.insert(0, "paper_row", variant.paper_row)
        frame.insert(0, "variant", variant.label)
        frame.insert(0, "ablation", ablation.name)
        rows.append(frame)
    counts["variants_encoded"] = variant_encodes
    return pd.concat(rows, ignore_index=True), counts


def run_presets(explicit: Mapping[str, Any], presets: Sequence[str], results_dir: str | Path, *,
                backbone_for: Callable[[RunConfig], Backbone] | None = None, progress: bool | None = None
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every preset on the same data: ``explicit`` settings (datasets, the backbone, folders, k, ...) win over each
    preset's. Returns (one row per preset, dataset, k and metric with ``ours`` in %, the preset run's DEMO ``label``
    (:func:`~winclip_lib.experiments.labels.run_label`, naming the tiny model), the encode counts)."""
    from winclip_lib.experiments.presets import PRESETS

    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise ValueError(f"unknown preset(s) {unknown}; choose from {', '.join(PRESETS)}")
    backbone_for = backbone_for or _backbone_loader()
    configs = [(p, RunConfig.from_settings(explicit, preset=p)) for p in presets]
    counts: dict[str, Any] = {"prewarm": prewarm([c for _, c in configs], backbone_for)}
    rows = []
    for name, cfg in configs:
        result = run_or_load(cfg, results_dir, backbone=backbone_for(cfg), progress=progress)
        frame = _summary_rows(result)
        frame.insert(0, "label", run_label(result.info, name_model=True))
        frame.insert(0, "preset", name)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True), counts


def _backbone_loader() -> Callable[[RunConfig], Backbone]:
    loaded: dict[tuple, Backbone] = {}

    def backbone_for(cfg: RunConfig) -> Backbone:
        key = (cfg.model_name, cfg.pretrained, cfg.precision, cfg.device)
        if key not in loaded:
            loaded[key] = load_run_backbone(cfg)
        return loaded[key]

    return backbone_for


def time_dense_features(backbone: Backbone, images: Sequence[str | Path], scales: Sequence[int] = (2, 3),
                        repeats: int = 1) -> dict[str, float]:
    """Seconds per image to encode the dense features two ways on the same images, measured in one run: the masked
    windows of WinCLIP, and image tiling (each window region cropped, resized and encoded whole)."""
    mean, std = backbone.mean_std
    x = preprocess(list(images), backbone.image_size, mean=mean, std=std)
    out = {}
    ways = (("windows", {"scales": tuple(scales)}), ("tiling", {"scales": (), "tile_scales": tuple(scales)}))
    for name, kwargs in ways:
        best = float("inf")
        for _ in range(repeats):
            if backbone.device.type == "cuda":
                torch.cuda.synchronize(backbone.device)
            t0 = time.perf_counter()
            encode_images(backbone, x, **kwargs)
            if backbone.device.type == "cuda":
                torch.cuda.synchronize(backbone.device)
            best = min(best, time.perf_counter() - t0)
        out[name] = best / x.shape[0]
    out["tiling_over_windows"] = out["tiling"] / out["windows"]
    return out
