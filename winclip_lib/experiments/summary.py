"""The tables of a run: tidy metrics and scores, and the paper's summary (mean over categories, then over seeds).

Values are fractions 0..1. ``metrics.csv`` has one row per (dataset, category, k, seed, metric); k = 0 rows have
seed 0. ``summary.csv`` is :func:`summarize` of it, ``per_category`` its mean and std over seeds per category.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from winclip_lib.evaluation.metrics import METRIC_NAMES

__all__ = [
    "METRICS_COLUMNS",
    "PER_CATEGORY_COLUMNS",
    "SCORES_COLUMNS",
    "SUMMARY_COLUMNS",
    "order_rows",
    "per_category",
    "summarize",
]

METRICS_COLUMNS = ["dataset", "category", "k", "seed", "metric", "value"]
SCORES_COLUMNS = ["dataset", "category", "k", "seed", "image", "label", "defect", "score"]
SUMMARY_COLUMNS = ["dataset", "k", "metric", "mean", "std", "n_seeds", "n_categories"]
PER_CATEGORY_COLUMNS = ["dataset", "category", "k", "metric", "mean", "std"]


def order_rows(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Sort by ``by`` keeping datasets / categories in first-appearance order and metrics in METRIC_NAMES order."""
    keys = {}
    for col in by:
        if col == "metric":
            known = {m: i for i, m in enumerate(METRIC_NAMES)}
            extra = {m: len(known) + i for i, m in enumerate(sorted(set(df[col]) - set(known)))}
            keys[col] = df[col].map({**known, **extra})
        elif col in ("dataset", "category"):
            first = {v: i for i, v in enumerate(dict.fromkeys(df[col]))}
            keys[col] = df[col].map(first)
        else:
            keys[col] = df[col]
    order = pd.DataFrame(keys).sort_values(list(by), kind="stable").index
    return df.loc[order].reset_index(drop=True)


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """The paper's summary: per (dataset, k, seed) the mean over categories, then mean and std (ddof=0) over seeds.

    Args:
        metrics: rows with :data:`METRICS_COLUMNS`.

    Returns:
        :data:`SUMMARY_COLUMNS`; ``n_categories`` counts the categories averaged (NaN values are skipped, as in
        :func:`winclip_lib.evaluation.metrics.mean_metrics`), ``n_seeds`` the seeds.
    """
    if metrics.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    metrics = order_rows(metrics, ["dataset", "k", "metric", "seed", "category"])
    per_seed = metrics.groupby(["dataset", "k", "metric", "seed"], sort=False)["value"].agg(["mean", "count"])
    per_seed = per_seed.reset_index()
    g = per_seed.groupby(["dataset", "k", "metric"], sort=False)
    out = pd.DataFrame({
        "mean": g["mean"].mean(),
        "std": g["mean"].std(ddof=0),
        "n_seeds": g["seed"].nunique(),
        "n_categories": g["count"].max(),
    }).reset_index()
    return order_rows(out[SUMMARY_COLUMNS], ["dataset", "k", "metric"])


def per_category(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, category, k, metric): mean and std (ddof=0) over seeds. Columns :data:`PER_CATEGORY_COLUMNS`."""
    if metrics.empty:
        return pd.DataFrame(columns=PER_CATEGORY_COLUMNS)
    metrics = order_rows(metrics, ["dataset", "category", "k", "metric", "seed"])
    g = metrics.groupby(["dataset", "category", "k", "metric"], sort=False)["value"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0)}).reset_index()
    return order_rows(out[PER_CATEGORY_COLUMNS], ["dataset", "category", "k", "metric"])
