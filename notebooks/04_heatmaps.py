# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
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
# largest $k$ of the run, first seed), overlaid on the image. Each map column shares one colour scale across its
# rows, in anomaly-score units; each row is captioned with the image's zero-shot score $s_0$ and its WinCLIP+ score.
#
# This notebook only reads: it finds the finished run of its settings in `results_dir`, and the maps are re-scored
# from the feature cache (`predict_samples`), so nothing is encoded again.

# %% tags=["parameters"]
# Parameters — papermill injects new values in a cell right after this one. A setting left at None takes its default
# from winclip_lib.experiments.config.RunConfig, the one place every setting is defined; `settings` takes any other.
datasets = {"mvtec": "../data/mvtec", "visa": "../data/visa", "mpdd": "../data/mpdd"}  # name -> root folder
categories = None  # None: every category found; or e.g. {"mvtec": ["bottle", "screw"]}
preset = None  # None: the paper's choices; or a public reproduction's (winclip_lib/experiments/presets.py)
shots = None  # None: k in 0, 1, 2, 4 (0 is zero-shot WinCLIP, k > 0 WinCLIP+ with k normal reference images)
seeds = None  # None: five reference draws for each k > 0
model_name = None  # None: the paper's ViT-B-16-plus-240
pretrained = None  # None: $WINCLIP_PRETRAINED, else laion400m_e31; "none": random weights (DEMO); or a checkpoint file
precision = None  # None: "auto", the fastest precision measured on this machine
device = None  # None: "auto" (CUDA when present)
settings = {}  # any other RunConfig setting by name, e.g. {"temperature": 0.01}
cache_dir = "../.cache/winclip/features"  # the feature cache, seen from notebooks/ (shared by every run)
results_dir = "../build/results"  # finished runs are read from here; a missing one is computed into a subfolder
figures_dir = "../figures"  # PNG figures (the report's figures/ folder)
tables_dir = "../figures/tables"  # Markdown + CSV tables
paper_alias = {"synthetic": "mvtec"}  # compare a dataset with another's published numbers (the demo)
n_anomalous = 3  # anomalous images per category (one per defect type first)
n_normal = 1  # normal images per category
few_shot_k = None  # None: the largest k of the run
few_shot_seed = None  # None: the run's first seed
max_categories = None  # None: every category of the run

# %%
from winclip_lib.core.geometry import Geometry
from winclip_lib.experiments.rescore import predict_samples
from winclip_lib.experiments.units import plan_units
from winclip_lib.report import figures as viz
from winclip_lib.report import tables as report
from winclip_lib.report.notebook import setup_notebook, show_figure

setup = setup_notebook(settings, preset=preset, datasets=datasets, categories=categories, shots=shots, seeds=seeds,
                       model_name=model_name, pretrained=pretrained, precision=precision, device=device,
                       cache_dir=cache_dir, figures_dir=figures_dir, tables_dir=tables_dir, results_dir=results_dir)
cfg, backbone, banner, figures = setup.config, setup.backbone, setup.banner, setup.figures
k_few = few_shot_k if few_shot_k is not None else max(cfg.shots)
seed = few_shot_seed if few_shot_seed is not None else cfg.seeds[0]
print("few-shot column: k =", k_few or "none", "seed", seed)

# %%
written = []
for unit in plan_units(cfg)[:max_categories]:
    samples = viz.choose_examples(unit.test, n_anomalous, n_normal)
    zero = predict_samples(cfg, unit.dataset, unit.category, 0, 0, samples, backbone=backbone)
    few = predict_samples(cfg, unit.dataset, unit.category, k_few, seed, samples, backbone=backbone) if k_few else None
    geometry = Geometry(backbone.image_size, cfg.resize_mode)  # the images and masks line up with the maps
    fig = viz.heatmap_figure(samples, zero, few, k_few, banner=banner, geometry=geometry,
                             title=f"{report.DATASET_LABELS.get(unit.dataset, unit.dataset)}: {unit.category}")
    written.append(show_figure(fig, figures / f"04_heatmaps_{unit.dataset}_{unit.category}.png"))
print(f"{len(written)} heatmap figure(s) in {figures}")
