# ---
# jupyter:
#   jupytext:
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
# # 07 — WinCLIP on your own images
#
# WinCLIP needs no training, so a new product can be inspected with three things:
#
# 1. **The object's name in words** (`class_name`, e.g. `"metal nut"`). It fills the prompt ensemble — "a photo of a
#    flawless metal nut", "a photo of a damaged metal nut", and 240 more — and every image, and every 2×2 and 3×3
#    window of patches, is scored by how much closer it is to the "damaged" prompts than to the "flawless" ones.
#    That is zero-shot WinCLIP.
# 2. **A few normal photos, if you have them** (`normal`). With k of them, WinCLIP+ also compares every window and
#    every patch of an image with the nearest one in the normal photos; the final score averages the text score
#    and that visual distance. All the references you give are used (k = their number).
# 3. **The images to inspect** (`images`): files, folders (searched recursively) or glob patterns, any size and
#    aspect ratio. A file that cannot be scored — not an image, unreadable, smaller than 16 × 16 pixels — is
#    skipped and listed with its reason; the rest are scored.
#
# **The decision.** A score is a ranking, not a verdict. With at least two normal references the threshold comes
# from the references themselves: each is scored by WinCLIP+ fitted on the *other* k − 1 (leave-one-out), and the
# threshold is the largest of those scores plus their standard deviation. k photos are a small sample, so treat it
# as a starting point: look at the ranking, then set `threshold` yourself.
#
# This notebook runs exactly what the command runs,
#
# ```bash
# winclip predict IMAGES... --class-name "metal nut" --normal REF... --out DIR
# ```
#
# (one call, `inspect_images`, which writes `report.html`, `scores.csv`, `errors.csv`, `maps.npz` and one overlay
# per image into `out_dir`), and then looks at the results. With `images = None` it first writes a few synthetic
# demo photos (a folder of mixed sizes with three normal references, a corrupt file and a text file).
#
# `make demo` without the real weights runs this notebook on the tiny test model (`WinCLIP-Tiny-240`, same 240 px
# input and 15 × 15 grid): with random weights the scores and maps say nothing about the photos on any architecture,
# and the page, the ranking and the figures read the same; they say "DEMO — tiny model, ...". With the real weights
# it runs the paper's model.

# %% tags=["parameters"]
# Parameters — papermill injects new values in a cell right after this one.
images = None              # files, folders or glob patterns (a string or a list); None: synthetic demo photos
normal = None              # normal references (files, folders, patterns); None: zero-shot (the demo's own with demo)
class_name = "metal disc"  # the object's name in words, for the prompts
threshold = None           # None: with two or more references the leave-one-out rule, else no decision
out_dir = "../build/predictions"
figures_dir = "../build/predictions-figures"
model_name = None          # None: the RunConfig default (ViT-B-16-plus-240)
pretrained = None          # None: $WINCLIP_PRETRAINED, else laion400m_e31; "none": random weights (a DEMO)
precision = None           # None: the RunConfig default (auto: the fastest measured here)
device = None              # None: the RunConfig default (auto: CUDA when present)
cache_dir = None           # None: the RunConfig default (the feature cache; re-running encodes nothing)

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from winclip_lib.datasets.synthetic import make_loose_images
from winclip_lib.experiments.config import RunConfig
from winclip_lib.inspection import (
    inspect_images,
    plot_overlay_grid,
    plot_score_histogram,
    plot_what_winclip_saw,
)
from winclip_lib.report.notebook import show_figure

if images is None:  # the demo: a plain folder of synthetic photos, with normal references in normal/
    demo = make_loose_images(Path(out_dir).resolve().parent / "demo-images")
    images = [str(demo.folder)]
    normal = [str(demo.folder / "normal")] if normal is None else normal
cfg = RunConfig.from_settings(model_name=model_name, pretrained=pretrained, precision=precision, device=device,
                              cache_dir=cache_dir)
figures = Path(figures_dir)

# %% [markdown]
# ## Score the images
#
# One call — the command's. It checks every file, encodes each image once through the feature cache (run it
# again and nothing is encoded), scores, chooses the threshold and writes the outputs and the page.

# %%
result = inspect_images(cfg, class_name, images, normal or (), out_dir, threshold)
run = result.run
print(f"{run.mode}; threshold: {run.threshold.explanation}")
print(f"the page: {result.page}")

# %% [markdown]
# ## The ranking
#
# Highest score first. `score` is the final image score: s0, the zero-shot text score, or with references
# (s0 + the maximum of the visual map) / 2. `decision` compares it with the threshold ("n/a" without one).

# %%
table = run.table()
display(table.drop(columns=["path"]))

# %% [markdown]
# ## The highest and the lowest scores
#
# Each photo at its own aspect ratio with its anomaly map as a translucent heatmap; one colour scale for every
# image of the run, so colours compare across images.

# %%
names = list(table["name"])
show_figure(plot_overlay_grid(run, names[:5], title="The five highest scores"), figures / "07_highest_scores.png")
show_figure(plot_overlay_grid(run, names[-5:][::-1], title="The five lowest scores"),
            figures / "07_lowest_scores.png")

# %% [markdown]
# ## The scores and the threshold
#
# The distribution of the image scores, the threshold, and (as ticks) the references' leave-one-out scores the
# threshold was computed from. Images far above the references' scores are the ones to look at first.

# %%
show_figure(plot_score_histogram(run), figures / "07_score_histogram.png")

# %% [markdown]
# ## What WinCLIP saw in the highest-scoring image
#
# The model's input (the photo resized to the model's square input), the zero-shot maps per window scale (each
# patch gets the harmonic mean of the scores of the windows that cover it) and the zero-shot map; with references
# also the visual maps — each window scale and the patches against the nearest normal feature — their mean, and
# the final map, the mean of the zero-shot and visual maps.

# %%
show_figure(plot_what_winclip_saw(run, 1), figures / "07_what_winclip_saw.png")

# %% [markdown]
# ## Skipped files
#
# Files that were not scored, and why (also in `errors.csv` and on the page).

# %%
display(pd.DataFrame([vars(s) for s in run.skipped], columns=["path", "role", "problem", "reason"]))
