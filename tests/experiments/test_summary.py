"""The run's summary: the mean over categories per seed, then mean and population std over seeds; per category the
mean and std over seeds."""

from __future__ import annotations

import pandas as pd
import pytest

from winclip_lib.experiments.summary import SUMMARY_COLUMNS, per_category, summarize


def test_summarize_means_over_categories_then_over_seeds():
    rows = []
    values = {  # (category, k, seed) -> value of image_auroc
        ("a", 0, 0): 0.8, ("b", 0, 0): 0.6,
        ("a", 1, 0): 0.9, ("b", 1, 0): 0.7, ("a", 1, 1): 1.0, ("b", 1, 1): 0.4,
    }  # fmt: skip
    for (c, k, s), v in values.items():
        rows.append({"dataset": "mvtec", "category": c, "k": k, "seed": s, "metric": "image_auroc", "value": v})
        rows.append({"dataset": "mvtec", "category": c, "k": k, "seed": s, "metric": "pixel_auroc", "value": v / 2})
    metrics = pd.DataFrame(rows)
    s = summarize(metrics.sample(frac=1.0, random_state=0))  # input order does not matter
    assert list(s.columns) == SUMMARY_COLUMNS
    assert list(zip(s["k"], s["metric"], strict=True)) == [
        (0, "image_auroc"), (0, "pixel_auroc"), (1, "image_auroc"), (1, "pixel_auroc")]
    k0 = s[(s["k"] == 0) & (s["metric"] == "image_auroc")].iloc[0]
    assert k0["mean"] == pytest.approx(0.7) and k0["std"] == 0 and k0["n_seeds"] == 1 and k0["n_categories"] == 2
    k1 = s[(s["k"] == 1) & (s["metric"] == "image_auroc")].iloc[0]
    # per seed: (0.9 + 0.7) / 2 = 0.8 and (1.0 + 0.4) / 2 = 0.7 -> mean 0.75, population std 0.05
    assert k1["mean"] == pytest.approx(0.75) and k1["std"] == pytest.approx(0.05)
    assert k1["n_seeds"] == 2 and k1["n_categories"] == 2
    assert s[(s["k"] == 1) & (s["metric"] == "pixel_auroc")].iloc[0]["mean"] == pytest.approx(0.375)

    pc = per_category(metrics)
    a1 = pc[(pc["category"] == "a") & (pc["k"] == 1) & (pc["metric"] == "image_auroc")].iloc[0]
    assert a1["mean"] == pytest.approx(0.95) and a1["std"] == pytest.approx(0.05)
    assert list(pc.columns) == ["dataset", "category", "k", "metric", "mean", "std"] and len(pc) == 8
