"""Re-scoring a few images of a finished run from the feature cache — for the heatmaps of the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.model import Prediction
from winclip_lib.datasets.catalog import DATASET_LOADERS, Sample
from winclip_lib.datasets.references import sample_references
from winclip_lib.datasets.scan import load_split
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.feature_cache import FeatureCache
from winclip_lib.experiments.grid import check_backbone, load_run_backbone
from winclip_lib.experiments.unit_eval import model_for
from winclip_lib.experiments.units import Unit

__all__ = ["predict_samples"]


def predict_samples(cfg: RunConfig, dataset: str, category: str, k: int, seed: int,
                    samples: Sequence[Sample | str | Path], backbone: Backbone | None = None) -> Prediction:
    """Re-score a few images from the feature cache with the references of (k, seed).

    Args:
        cfg: the run's config (model, preprocessing, WinCLIP settings, cache_dir, the dataset's root).
        dataset, category: which references and class name; k = 0 is zero-shot.
        samples: B :class:`~winclip_lib.datasets.catalog.Sample` objects or image paths.
        backbone: an already loaded backbone matching ``cfg``.

    Returns:
        :class:`~winclip_lib.core.model.Prediction` with score (B,), map (B, S, S) and the intermediate maps.
    """
    if dataset not in cfg.datasets:
        raise ValueError(f"dataset {dataset!r} is not in this config (has {', '.join(cfg.datasets) or 'none'})")
    if backbone is None:
        backbone = load_run_backbone(cfg)
    else:
        check_backbone(cfg, backbone)
    loader, root = DATASET_LOADERS[dataset], cfg.datasets[dataset]
    cache = FeatureCache.from_config(cfg, backbone, progress=False)
    test = tuple(load_split(loader, root, category, "test", require_masks=cfg.masks))
    model = model_for(Unit(dataset, category, Path(root), loader, test, {}), cfg, backbone)
    model.output_size = backbone.image_size  # maps over the model input, for drawing
    with torch.inference_mode():
        if k > 0:
            refs = sample_references(loader, root, category, k, seed, cfg.reference_sampling)
            model.fit(cache.features([s.image_path for s in refs], desc="references").to(backbone.device))
        paths = [s.image_path if isinstance(s, Sample) else Path(s) for s in samples]
        return model.predict_features(cache.features(paths, desc="samples").to(backbone.device))
