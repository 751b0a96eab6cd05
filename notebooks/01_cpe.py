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
# # 01 — The Compositional Prompt Ensemble (CPE)
#
# *WinCLIP* ([Jeong et al., CVPR 2023, arXiv 2303.14814](https://arxiv.org/abs/2303.14814)) detects anomalies with
# a frozen CLIP and no training. An image (or a window of it) is anomalous when its embedding is closer to a
# description of a *defective* object than to a description of a *normal* one. A single prompt such as "a photo of a
# damaged bottle" is a noisy description, so the paper composes many: **state words** describe the object as normal
# or anomalous, and **templates** describe the photo.
#
# Every state is put in every template: $7 \times 22 = 154$ normal and $4 \times 22 = 88$ anomalous prompts for a
# class $c$. Their CLIP text embeddings are averaged per group into the two text embeddings of the class,
#
# $$
# t_n = \frac{\sum_{s \in \mathcal{S}_n} \sum_{\tau \in \mathcal{T}} E_\text{text}\big(\tau(s(c))\big)}
#            {\big\lVert \sum_{s \in \mathcal{S}_n} \sum_{\tau \in \mathcal{T}}
#             E_\text{text}\big(\tau(s(c))\big)\big\rVert},
# \qquad
# t_a = \text{the same over the anomalous states } \mathcal{S}_a ,
# $$
#
# and an embedding $f$ (of an image or a window) gets the anomaly probability
#
# $$
# p(f) = \frac{\exp(\cos(f, t_a)/T)}{\exp(\cos(f, t_n)/T) + \exp(\cos(f, t_a)/T)}, \qquad T = 0.07 .
# $$
#
# This notebook builds the prompts of one class, encodes them, forms $t_n$ and $t_a$, and shows how the prompts
# cluster. (Averaging the raw embeddings and then normalising is the common choice; `normalize_each=True` normalises
# each prompt first.)

# %% tags=["parameters"]
# Parameters — papermill injects new values in a cell right after this one. A setting left at None takes its default
# from winclip_lib.experiments.config.RunConfig (the one place every setting is defined).
dataset = "mvtec"  # the dataset the class comes from (for its class name)
category = "bottle"  # the category whose prompts are shown
datasets = {}  # the run's datasets (only to label a demo on synthetic data)
model_name = None  # None: the paper's ViT-B-16-plus-240
pretrained = None  # None: $WINCLIP_PRETRAINED, else laion400m_e31; "none": random weights (DEMO); or a checkpoint file
precision = None  # None: "auto", the fastest precision measured on this machine
device = None  # None: "auto" (CUDA when present)
figures_dir = "../figures"
tables_dir = "../figures/tables"

# %%
from pathlib import Path

import torch
from IPython.display import Markdown, display

from winclip_lib.core.prompts import (
    ANOMALOUS_STATES,
    NORMAL_STATES,
    TEMPLATES,
    build_prompts,
    ensemble,
    text_embeddings,
)
from winclip_lib.core.scoring import anomaly_probability
from winclip_lib.core.text_tower import encode_text
from winclip_lib.datasets.catalog import DATASET_LOADERS, class_name
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.grid import load_run_backbone
from winclip_lib.experiments.labels import label_for
from winclip_lib.report import figures as viz
from winclip_lib.report import tables as report
from winclip_lib.report.notebook import show_source

cfg = RunConfig.from_settings(model_name=model_name, pretrained=pretrained, precision=precision, device=device)
backbone = load_run_backbone(cfg)
banner = label_for(backbone.is_random, datasets, backbone.weights)
figures, tables = Path(figures_dir), Path(tables_dir)
name = class_name(category, DATASET_LOADERS.get(dataset, "mvtec"))
print(backbone.describe())
print(banner or backbone.weights.describe())  # which weights ran: the SHA-256 of the file, checked
print(f"class {category!r} is called {name!r} in the prompts")

# %% [markdown]
# ## The state words and the templates
#
# Seven normal and four anomalous **states** of the object ([c] stands for the class name)...

# %%
report.prompt_states_table(NORMAL_STATES, ANOMALOUS_STATES)

# %% [markdown]
# ... and the paper's 22 **templates** (its Fig. 5), each of which wraps a state ([state]):

# %%
report.templates_table(TEMPLATES).style.hide(axis="index")

# %% [markdown]
# ## The prompts of one class
#
# `build_prompts` fills every template with every state, state-major (all templates of the first state, then of the
# second, ...).

# %%
prompts = build_prompts(name)
print(f"{len(prompts['normal'])} normal and {len(prompts['anomalous'])} anomalous prompts, e.g.")
for group in ("normal", "anomalous"):
    print(f"  {group}: {prompts[group][0]!r} ... {prompts[group][-1]!r}")

# %% [markdown]
# ## The two text embeddings
#
# Each prompt goes through CLIP's text tower once; the ensemble averages each group and normalises. `text_embeddings`
# does both steps; below, the same two rows are also formed from the individual prompt embeddings with `ensemble`,
# to show what the ensemble is.

# %%
emb_normal = encode_text(backbone, prompts["normal"])  # (154, D)
emb_anomalous = encode_text(backbone, prompts["anomalous"])  # (88, D)
text = text_embeddings(backbone, name)  # (2, D): rows [t_n, t_a]
same = torch.allclose(torch.stack([ensemble(emb_normal), ensemble(emb_anomalous)]), text, atol=1e-5)
print(f"text embeddings {tuple(text.shape)}; the ensemble of the prompt embeddings matches: {same}")
print(f"cos(t_n, t_a) = {float(text[0] @ text[1]):.4f}")
show_source(ensemble)

# %% [markdown]
# ## How the prompts cluster
#
# The cosine similarity of all 242 prompt embeddings (left, one block of 22 templates per state; the cyan lines
# separate the normal from the anomalous states) and its average over templates for every pair of states (right).
# What to look for: how tightly the templates of one state agree, and how far the normal and the anomalous states
# are apart compared with the spread within each group — all prompts share the class and the photo, so the two
# ensembles are close, and averaging many prompts is what makes the small difference between them reliable.

# %%
fig = viz.plot_prompt_similarity(torch.cat([emb_normal, emb_anomalous]), [*NORMAL_STATES, *ANOMALOUS_STATES],
                                 len(TEMPLATES), len(NORMAL_STATES), banner=banner,
                                 title=f"CPE of '{name}': similarity of the prompt embeddings")
saved = viz.save_figure(fig, figures / "01_prompt_similarity.png")

# %% [markdown]
# ## Each prompt scored as if it were an image
#
# As a check of the two embeddings, $p(\cdot)$ applied to the prompt embeddings themselves: the anomalous prompts
# should get a higher anomaly probability than the normal ones (with random weights nothing is expected).

# %%
p = anomaly_probability(torch.cat([emb_normal, emb_anomalous]), text, cfg.temperature).double().cpu().numpy()
by_state = report.prompt_probabilities_table(p, NORMAL_STATES, ANOMALOUS_STATES, len(TEMPLATES))
report.write_table(by_state, tables, "01_prompt_states", f"CPE of '{name}': p(anomalous) of the prompts", banner)
display(Markdown(report.markdown_table(by_state, banner=banner)))
