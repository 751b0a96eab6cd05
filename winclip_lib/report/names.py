"""How the report, the figures and the command line name metrics, datasets and settings: one table of each.

The metric names of the results (:data:`winclip_lib.evaluation.metrics.METRIC_NAMES`, e.g. ``pixel_aupro``) are
shown as :data:`METRIC_LABELS` (``"Pixel PRO"``) in every table, figure and printed summary.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DATASET_LABELS", "METRIC_LABELS", "NOT_AVAILABLE", "dataset_label", "metric_label", "setting_label"]

#: Display names of the datasets (in the report's order).
DATASET_LABELS: dict[str, str] = {
    "mvtec": "MVTec-AD", "visa": "VisA", "mpdd": "MPDD", "synthetic": "Synthetic", "btad": "BTAD",
    "ksdd": "KolektorSDD", "ksdd2": "KolektorSDD2", "dagm": "DAGM 2007", "dtd": "DTD-Synthetic",
    "loco": "MVTec LOCO AD", "mvtec2": "MVTec AD 2", "realiad": "Real-IAD", "folder": "Your folder",
}
#: Display names of the metrics (PRO is the pixel-level AUPRO up to FPR 0.3, hence "Pixel PRO" beside the other
#: pixel metrics).
METRIC_LABELS: dict[str, str] = {
    "image_auroc": "Image AUROC", "image_ap": "Image AP", "image_f1_max": "Image F1-max",
    "pixel_auroc": "Pixel AUROC", "pixel_ap": "Pixel AP", "pixel_f1_max": "Pixel F1-max", "pixel_aupro": "Pixel PRO",
}

#: Written where a table or figure has no number (figures follow it with the reason: "n/a — ...").
NOT_AVAILABLE = "n/a"


def metric_label(metric: str) -> str:
    """Display name of a metric (a name outside :data:`METRIC_LABELS` as is)."""
    return METRIC_LABELS.get(metric, metric)


def setting_label(k: int) -> str:
    """``"0-shot"``, ``"1-shot"``, ... as in the paper's tables."""
    return f"{int(k)}-shot"


def dataset_label(dataset: str, paper_alias: Mapping[str, str] | None = None) -> str:
    """Display name of a dataset; one compared with another's numbers says so ("Synthetic (vs MVTec-AD)")."""
    label = DATASET_LABELS.get(dataset, dataset)
    ref = (paper_alias or {}).get(dataset)
    if ref and ref != dataset:
        label += f" (vs {DATASET_LABELS.get(ref, ref)} numbers)"
    return label
