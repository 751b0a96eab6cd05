# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 — Anomaly maps per category
#
# For every category of the run, a few test images (one per defect type, then a normal one) with, left to right: the
# image, its ground-truth region (green contour), the zero-shot WinCLIP map and the few-shot WinCLIP+ map (the
# largest $k$ of the run, first seed), overlaid on the image as in the seed report's Fig. 7. Each map column shares
# one colour scale across its rows.
#
# This notebook only reads: the run's configuration comes from `results_dir/run.json`, and the maps are re-scored
# from the feature cache (`predict_samples`), so nothing is encoded again.

# %% tags=["parameters"]
# Parameters — papermill injects new values in a cell right after this one.
results_dir = "../build/results"  # a finished run (notebooks 02/03 or `winclip run`)
figures_dir = "../figures"
n_anomalous = 3            # anomalous images per category (one per defect type first)
n_normal = 1               # normal images per category
few_shot_k = None          # None: the largest k of the run
few_shot_seed = None       # None: the run's first seed
max_categories = None      # None: every category of the run

# %%
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

from winclip_lib import report, viz
from winclip_lib.runner import load_results, load_run_backbone, plan_units, predict_samples

result = load_results(results_dir)
cfg = result.config
banner = report.run_banner(result.info)
figures = Path(figures_dir)
backbone = load_run_backbone(cfg)
k_few = few_shot_k if few_shot_k is not None else max(cfg.shots)
seed = few_shot_seed if few_shot_seed is not None else cfg.seeds[0]
print(result.info["backbone"])
print(banner or "real weights on real data", "| few-shot column: k =", k_few or "none", "seed", seed)

# %%
written = []
for unit in plan_units(cfg)[:max_categories]:
    samples = viz.choose_examples(unit.test, n_anomalous, n_normal)
    zero = predict_samples(cfg, unit.dataset, unit.category, 0, 0, samples, backbone=backbone)
    few = predict_samples(cfg, unit.dataset, unit.category, k_few, seed, samples, backbone=backbone) if k_few else None
    fig = viz.heatmap_figure(samples, zero, few, k_few, size=cfg.image_size, banner=banner,
                             title=f"{report.DATASET_LABELS.get(unit.dataset, unit.dataset)}: {unit.category}")
    written.append(viz.save_figure(fig, figures / f"04_heatmaps_{unit.dataset}_{unit.category}.png"))
    display(fig)
    plt.close(fig)
print(f"{len(written)} heatmap figure(s) in {figures}")
