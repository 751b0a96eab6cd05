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
# # 03 — WinCLIP+: few-normal-shot association with reference memories
#
# With $k$ normal reference images of a category, WinCLIP+ adds a *visual* anomaly map to the language-guided one.
# Every reference is encoded like a test image, and its features at every position are pooled into **three
# memories**:
#
# - $R_2$: the embeddings of all small ($2 \times 2$) windows of all references ($k \cdot 196$ vectors),
# - $R_3$: the embeddings of all mid-size ($3 \times 3$) windows ($k \cdot 169$ vectors),
# - $R_p$: the final-layer patch tokens of the whole references ($k \cdot 225$ vectors).
#
# A query feature $f$ is scored by its distance to the nearest reference feature (eq. 2):
#
# $$
# d(f, R) \;=\; \min_{r \in R} \; \frac{1 - \cos(f, r)}{2} .
# $$
#
# Window distances are carried to patches by the harmonic aggregation of eq. 1; the patch distances already are per
# patch. The **visual map** is the mean of the three maps (eq. 3), and WinCLIP+ fuses it with the zero-shot map $Z$
# and the zero-shot image score $s_0$ (eq. 4):
#
# $$
# V = \tfrac{1}{3}\big(V_{R_2} + V_{R_3} + V_{R_p}\big), \qquad
# \text{map} = \tfrac12\,(Z + V), \qquad
# \text{score} = \tfrac12\,\big(s_0 + \max_p V[p]\big).
# $$
#
# The paper reports $k \in \{1, 2, 4\}$, each over 5 random draws of the references (seeds); tables give the mean over
# categories, then mean ± std over seeds.

# %% tags=["parameters"]
# Parameters — papermill injects new values in a cell right after this one.
datasets = {"mvtec": "../data/mvtec", "visa": "../data/visa", "mpdd": "../data/mpdd"}  # name -> root folder
categories = None          # None: every category found; or e.g. {"mvtec": ["bottle", "screw"]}
shots = [0, 1, 2, 4]       # k: 0 is zero-shot WinCLIP, k > 0 is WinCLIP+ with k normal reference images
seeds = [0, 1, 2, 3, 4]    # reference draws for each k > 0 (zero-shot runs once)
model_name = "ViT-B-16-plus-240"
pretrained = "laion400m_e31"  # an open_clip tag, a checkpoint path, or None: random weights (NOT a reproduction)
precision = "fp32"         # "bf16" runs several times faster on CPUs with AMX
device = "auto"            # "auto" picks CUDA when present
batch_size = 8
cache_dir = "../.cache/winclip/features"  # encoded features, shared by every notebook and run
results_dir = "../build/results"          # the runner's tables (metrics.csv, scores.csv, summary.csv, run.json)
figures_dir = "../figures"                # PNG figures (the report's figures/ folder)
tables_dir = "../figures/tables"          # Markdown + CSV tables
paper_alias = {"synthetic": "mvtec"}      # compare a dataset with another's published numbers (the demo)
tiny = False               # True: the tiny test model with random weights, for tests only

# %%
from pathlib import Path

import pandas as pd
import torch
from IPython.display import Markdown, display

from winclip_lib import report, viz
from winclip_lib.datasets import load_image, load_mask, resize_image, resize_mask
from winclip_lib.model import WinCLIP
from winclip_lib.notebooks import run_config, show_source
from winclip_lib.runner import load_run_backbone, plan_units, run_grid

cfg = run_config(datasets, categories, shots, seeds, model_name, pretrained, precision, device, cache_dir,
                 results_dir, batch_size, tiny)
backbone = load_run_backbone(cfg)
banner = report.banner_for(backbone.is_random, cfg.datasets)
figures, tables = Path(figures_dir), Path(tables_dir)
print(backbone.describe())
print(banner or "real weights on real data")
from winclip_lib.fewshot import VisualMemory, few_shot_maps, fuse, nearest_distance
from winclip_lib.scoring import harmonic_aggregate, zero_shot_maps

# %% [markdown]
# ## The grid
#
# The same call as in notebook 02: finished settings are read back, nothing is encoded twice.

# %%
result = run_grid(cfg, backbone=backbone)
banner = report.run_banner(result.info)
few_shots = [k for k in cfg.shots if k > 0]
print(result.info["backbone"], "|", result.info["encode_counts"])
print("few-shot settings:", few_shots or "none (the grid is zero-shot only)", "| seeds:", list(cfg.seeds))

# %% [markdown]
# ## The three memories of one category
#
# The references of the largest $k$ and the first seed, drawn by `sample_references` (the runner uses the same
# draw).

# %%
unit = plan_units(cfg)[0]
k_demo, seed_demo = (max(few_shots), cfg.seeds[0]) if few_shots else (0, 0)
refs = unit.references.get((k_demo, seed_demo), ())
model = WinCLIP(backbone, unit.class_name, scales=cfg.scales, temperature=cfg.temperature,
                template_set=cfg.template_set, normalize_each=cfg.normalize_each, patch_ln_post=cfg.patch_ln_post)
memory = VisualMemory.from_features(model.encode([s.image_path for s in refs])) if refs else None
if memory is not None:
    print(f"{unit.dataset}/{unit.category}, k = {k_demo}, seed {seed_demo}: "
          f"references {[s.image_path.name for s in refs]}")
    display(pd.DataFrame({"memory": [*(f"R_{k}" for k in memory.windows), "R_p"],
                          "shape": [*(tuple(m.shape) for m in memory.windows.values()), tuple(memory.patches.shape)]}))

# %% [markdown]
# ## Eqs. 2–4 on one test image
#
# Eq. 2 is one matrix product per memory (`nearest_distance`, below); eq. 1 carries the window distances to the
# patches; `few_shot_maps` does eqs. 2–3 for every scale, and `fuse` is eq. 4.

# %%
if memory is not None:
    sample = viz.choose_examples(unit.test, n_anomalous=1, n_normal=1)[0]
    query = model.encode([sample.image_path])
    V = {f"V_R{k}": harmonic_aggregate(nearest_distance(query.windows[k], memory.windows[k]), query.grid, k)
         for k in cfg.scales}                                                                  # eqs. 2 + 1
    V["V_Rp"] = nearest_distance(query.patches, memory.patches).reshape(1, query.grid, query.grid)  # eq. 2
    vis = few_shot_maps(query, memory)                                                         # eq. 3
    zs = zero_shot_maps(query, model.text, cfg.temperature)
    final_map, score = fuse(zs["map"], zs["image_score"], vis["map"])                          # eq. 4
    print("few_shot_maps gives the same maps:",
          all(torch.equal(vis["scale_maps"][k], V[f"V_R{k}"]) for k in cfg.scales)
          and torch.equal(vis["patch_map"], V["V_Rp"]))
    print(f"s0 = {float(zs['image_score']):.4f}, max V = {float(vis['map'].max()):.4f}, "
          f"WinCLIP+ score = {float(score):.4f}")
show_source(nearest_distance, highlight="amax")

# %%
if memory is not None:
    image = resize_image(load_image(sample.image_path), cfg.image_size)
    mask = resize_mask(load_mask(sample), cfg.image_size)
    maps = {**V, "visual map V (eq. 3)": vis["map"], "zero-shot Z": zs["map"], "WinCLIP+ map (eq. 4)": final_map}
    fig = viz.plot_scale_maps(image, maps, mask, banner=banner,
                              title=f"{unit.category} / {sample.defect}, k = {k_demo}: visual maps and the fusion")
    viz.save_figure(fig, figures / "03_visual_maps.png")
show_source(fuse)

# %% [markdown]
# ## Few-shot results
#
# Mean over categories, then mean ± std over the seeds; ↑ where ours is at or above the paper.

# %%
comp = report.comparison(result.summary, paper_alias=paper_alias)
few = report.comparison_table(comp[comp["k"] > 0], paper_alias)
report.write_table(few, tables, "03_few_shot", "WinCLIP+ (few-shot) vs the paper (%)", banner)
display(Markdown(report.markdown_table(few, "WinCLIP+ (few-shot) vs the paper (%)", banner)))

# %%
fig = viz.plot_shots_curve(comp, banner=banner)
saved = viz.save_figure(fig, figures / "03_shots_curve.png")
