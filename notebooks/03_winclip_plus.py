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
# Parameters — papermill injects new values in a cell right after this one. A setting left at None takes its default
# from winclip_lib.experiments.config.RunConfig, the one place every setting is defined; `settings` takes any other.
datasets = {"mvtec": "../data/mvtec", "visa": "../data/visa", "mpdd": "../data/mpdd"}  # name -> root folder
categories = None  # None: every category found; or e.g. {"mvtec": ["bottle", "screw"]}
preset = None  # None: the paper's choices; or a public reproduction's (winclip_lib/experiments/presets.py)
shots = None  # None: k in 0, 1, 2, 4 (0 is zero-shot WinCLIP, k > 0 WinCLIP+ with k normal reference images)
seeds = None  # None: five reference draws for each k > 0
model_name = None  # None: the paper's ViT-B-16-plus-240
pretrained = None  # None: laion400m_e31; "none": random weights (NOT a reproduction); or a checkpoint path
precision = None  # None: "auto", the fastest precision measured on this machine
device = None  # None: "auto" (CUDA when present)
settings = {}  # any other RunConfig setting by name, e.g. {"temperature": 0.01}
cache_dir = "../.cache/winclip/features"  # the feature cache, seen from notebooks/ (shared by every run)
results_dir = "../build/results"  # finished runs are read from here; a missing one is computed into a subfolder
figures_dir = "../figures"  # PNG figures (the report's figures/ folder)
tables_dir = "../figures/tables"  # Markdown + CSV tables
paper_alias = {"synthetic": "mvtec"}  # compare a dataset with another's published numbers (the demo)

# %%
import torch
from IPython.display import Markdown, display

from winclip_lib.core.fewshot import VisualMemory, few_shot_maps, fuse, nearest_distance
from winclip_lib.core.imageio import load_image
from winclip_lib.core.model import WinCLIP
from winclip_lib.core.scoring import harmonic_aggregate, zero_shot_maps
from winclip_lib.datasets.masks import load_mask
from winclip_lib.experiments.feature_cache import FeatureCache
from winclip_lib.experiments.grid import run_or_load
from winclip_lib.experiments.units import plan_units
from winclip_lib.report import figures as viz
from winclip_lib.report import tables as report
from winclip_lib.report.notebook import setup_notebook, show_source

setup = setup_notebook(settings, preset=preset, datasets=datasets, categories=categories, shots=shots, seeds=seeds,
                       model_name=model_name, pretrained=pretrained, precision=precision, device=device,
                       cache_dir=cache_dir, figures_dir=figures_dir, tables_dir=tables_dir)
cfg, backbone, banner, figures, tables = setup.config, setup.backbone, setup.banner, setup.figures, setup.tables
setup.settings()  # the settings that differ from their defaults

# %% [markdown]
# ## The grid
#
# The same call as in notebook 02: a finished run is read back, nothing is encoded twice.

# %%
result = run_or_load(cfg, results_dir, backbone=backbone)
banner = setup.run_banner(result)
few_shots = [k for k in cfg.shots if k > 0]
print(f"run: {result.out_dir}")
print("few-shot settings:", few_shots or "none (the grid is zero-shot only)", "| seeds:", list(cfg.seeds))

# %% [markdown]
# ## The references of one category
#
# The references of the largest $k$ and the first seed, drawn by `sample_references` (the grid uses the same
# draw): $k$ normal training images, nothing else is known about the product.

# %%
unit = plan_units(cfg)[0]
k_demo, seed_demo = (max(few_shots), cfg.seeds[0]) if few_shots else (0, 0)
refs = unit.references.get((k_demo, seed_demo), ())
model = WinCLIP.from_config(backbone, cfg, unit.class_name)
if refs:
    fig = viz.plot_reference_images([model.geometry.image(load_image(s.image_path)) for s in refs],
                                    [s.image_path.name for s in refs], banner=banner,
                                    title=f"{unit.dataset}/{unit.category}: the k = {k_demo} references of seed "
                                          f"{seed_demo}")
    viz.save_figure(fig, figures / "03_references.png")

# %% [markdown]
# ## The three memories
#
# The references' features come from the run's feature cache (the grid encoded them; `model.encode` computes the
# same without a cache).

# %%
cache = FeatureCache.from_config(cfg, backbone, progress=False)
memory = VisualMemory.from_features(cache.features([s.image_path for s in refs]).to(backbone.device)) if refs else None
if memory is not None:
    for name, m in [*((f"R_{k}", m) for k, m in memory.windows.items()), ("R_p", memory.patches)]:
        print(f"  {name}: {tuple(m.shape)}")

# %% [markdown]
# ## Eqs. 2–4 on one test image
#
# Eq. 2 is one matrix product per memory (`nearest_distance`, below); eq. 1 carries the window distances to the
# patches; `few_shot_maps` does eqs. 2–3 for every scale, and `fuse` is eq. 4.

# %%
if memory is not None:
    sample = viz.choose_examples(unit.test, n_anomalous=1, n_normal=1)[0]
    query = cache.features([sample.image_path]).to(backbone.device)
    V = {f"V_R{k}": harmonic_aggregate(nearest_distance(query.windows[k], memory.windows[k]), query.grid, k)
         for k in cfg.scales}  # eqs. 2 + 1
    V["V_Rp"] = nearest_distance(query.patches, memory.patches).reshape(1, query.grid, query.grid)  # eq. 2
    vis = few_shot_maps(query, memory)  # eq. 3
    zs = zero_shot_maps(query, model.text, cfg.temperature)
    final_map, score = fuse(zs["map"], zs["image_score"], vis["map"])  # eq. 4
    same = all(torch.equal(vis["scale_maps"][k], V[f"V_R{k}"]) for k in cfg.scales)
    print("few_shot_maps gives the same maps:", same and torch.equal(vis["patch_map"], V["V_Rp"]))
    print(f"s0 = {float(zs['image_score']):.4f}, max V = {float(vis['map'].max()):.4f}, "
          f"WinCLIP+ score = {float(score):.4f}")
show_source(nearest_distance, highlight="amax")

# %%
if memory is not None:
    image = model.geometry.image(load_image(sample.image_path))
    mask = model.geometry.mask(load_mask(sample))
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
if few_shots:
    fig = viz.plot_shots_curve(comp, ks=few_shots, banner=banner)
    saved = viz.save_figure(fig, figures / "03_shots_curve.png")
