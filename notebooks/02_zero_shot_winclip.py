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
# # 02 — Zero-shot WinCLIP: windows, harmonic aggregation, the zero-shot map
#
# CLIP is trained to match *whole* images with captions, so its image embedding says little about *where* a defect
# is. WinCLIP therefore also embeds **windows**: for the ViT-B/16+ at 240 px the image is a $G \times G = 15 \times 15$
# grid of patch tokens, and a window of scale $k$ is a $k \times k$ block of them. Its embedding $f_w$ is what the
# ViT outputs when it sees only those tokens (plus the class token, with their position embeddings) — a *masked*
# forward pass, not a crop. The paper uses $k \in \{2, 3\}$ with stride 1: $14^2 = 196$ and $13^2 = 169$ windows.
#
# Each window gets the anomaly probability of notebook 01, $s_w = p(f_w)$. A patch $p$ is covered by the windows
# $W_p = \{w : p \in w\}$ (up to $k^2$ of them), and its score at scale $k$ is their **harmonic mean** (eq. 1):
#
# $$
# M_k[p] \;=\; \Bigg( \frac{1}{|W_p|} \sum_{w \in W_p} \frac{1}{s_w} \Bigg)^{-1} .
# $$
#
# The harmonic mean is dominated by the *smallest* scores: a patch is called anomalous only if every window that
# covers it is. The **zero-shot map** is the harmonic mean of the image score $s_0 = p(f_\text{image})$ (broadcast
# over the grid) and the per-scale maps, $Z = 3 \,/\, \big(1/s_0 + 1/M_2 + 1/M_3\big)$, upsampled to 240 × 240; the
# zero-shot **image score** is $s_0$.

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

from winclip_lib.core.encoder import window_indices
from winclip_lib.core.imageio import load_image
from winclip_lib.core.model import WinCLIP
from winclip_lib.core.scoring import anomaly_probability, harmonic_aggregate, zero_shot_maps
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
# ## Windows on the 15 × 15 grid
#
# `window_indices(G, k)` lists the patches of every window, row-major by the window's top-left patch; the encoder
# gathers exactly these tokens into one short sequence per window and runs all windows as a batch. The lower panels
# count the windows covering each patch, $|W_p|$ in eq. 1: fewer at the border.

# %%
G = backbone.grid_size
for k in cfg.scales:
    idx = window_indices(G, k)
    print(f"k = {k}: {idx.shape[0]} windows of {idx.shape[1]} patches; window 0 = patches {idx[0].tolist()}")
fig = viz.plot_window_grid(G, cfg.scales, banner=banner)
saved = viz.save_figure(fig, figures / "02_windows.png")

# %% [markdown]
# ## What one window's forward pass sees
#
# An anomalous test image of the first category, and one 3 × 3 window in its middle: the ViT is given the class
# token and these nine patch tokens (each with its own position embedding) and nothing else — the rest of the image
# does not exist for this pass.

# %%
unit = plan_units(cfg)[0]
sample = viz.choose_examples(unit.test, n_anomalous=1, n_normal=1)[0]
model = WinCLIP.from_config(backbone, cfg, unit.class_name)
photo = load_image(sample.image_path)
image = model.geometry.image(photo)
k_demo = max(cfg.scales)
middle = (G - k_demo + 1) // 2 * (G - k_demo + 1) + (G - k_demo + 1) // 2
fig = viz.plot_window_pass(image, G, k_demo, middle, banner=banner,
                           title=f"{unit.category} / {sample.defect}: the tokens of window {middle} (k = {k_demo})")
saved = viz.save_figure(fig, figures / "02_window_pass.png")

# %% [markdown]
# ## One image through WinCLIP
#
# The same image, encoded once: the image embedding, the embedding of every window of every scale, and the patch
# tokens (used by WinCLIP+ in notebook 03). It goes through the run's feature cache (`model.encode` computes the
# same without one), so the grid below, and notebook 03, read it instead of encoding it again.

# %%
cache = FeatureCache.from_config(cfg, backbone, progress=False)
features = cache.features([sample.image_path]).to(backbone.device)
print(f"{unit.dataset}/{unit.category}: {sample.image_path.name} ({sample.defect}); class name {unit.class_name!r}")
for name, tensor in features.named().items():
    print(f"  {name:18s} {tuple(tensor.shape)}")

# %% [markdown]
# ## Eq. 1 beside the code that does it
#
# $s_w = p(f_w)$ for every window, then $M_k[p] = |W_p| \,/\, \sum_{w \in W_p} 1/s_w$ — the line marked `# <--`
# in `harmonic_aggregate` below (a scatter-add of $1/s_w$ over the patches of each window).

# %%
s0 = anomaly_probability(features.image, model.text, cfg.temperature)  # s_0, (1,)
window_scores = {k: anomaly_probability(w, model.text, cfg.temperature) for k, w in features.windows.items()}
M = {k: harmonic_aggregate(window_scores[k], features.grid, k) for k in cfg.scales}  # eq. 1, (1, G, G)
print(f"s0 = {float(s0):.4f}; " + "; ".join(f"M_{k}: {tuple(m.shape)}" for k, m in M.items()))
show_source(harmonic_aggregate, highlight="count / total")

# %% [markdown]
# `zero_shot_maps` is what the model and the runner call; it gives the same per-scale maps, and the
# zero-shot map as the harmonic mean of $s_0$ and all $M_k$:

# %%
zs = zero_shot_maps(features, model.text, cfg.temperature)
print("per-scale maps identical:", all(torch.equal(zs["scale_maps"][k], M[k]) for k in cfg.scales))
mask = model.geometry.mask(load_mask(sample))
maps = {**{f"M_{k} (eq. 1)": M[k] for k in cfg.scales}, "zero-shot map Z": zs["map"]}
fig = viz.plot_scale_maps(image, maps, mask, banner=banner,
                          title=f"{unit.category} / {sample.defect}: per-scale maps and the zero-shot map")
saved = viz.save_figure(fig, figures / "02_scale_maps.png")

# %% [markdown]
# ## Zero-shot results
#
# The grid encodes every test (and reference) image **once** into the feature cache and scores every setting from
# it. A finished run of these settings in `results_dir` (e.g. from `make reproduce`) is read, not recomputed; a
# missing one is computed into a subfolder of its own, so a run made with other settings is never touched. The
# few-shot settings are scored here too, at almost no cost, and shown in notebook 03.

# %%
result = run_or_load(cfg, results_dir, backbone=backbone)
banner = setup.run_banner(result)
print(f"run: {result.out_dir}")
print("encode counts of the run:", result.info.get("encode_counts"))
comp = report.comparison(result.summary, paper_alias=paper_alias)
zero = report.comparison_table(comp[comp["k"] == 0], paper_alias)
report.write_table(zero, tables, "02_zero_shot", "Zero-shot WinCLIP vs the paper (%)", banner)
display(Markdown(report.markdown_table(zero, "Zero-shot WinCLIP vs the paper (%)", banner)))

# %%
per_cat = result.per_category()
for ds in dict.fromkeys(per_cat["dataset"]):
    pc = report.per_category_comparison(per_cat, ds, "image_auroc", summary=result.summary, paper_alias=paper_alias)
    table = report.per_category_table(pc[pc["k"] == 0])
    display(Markdown(report.markdown_table(table, f"{report.dataset_label(ds, paper_alias)}: zero-shot image AUROC",
                                           banner)))
