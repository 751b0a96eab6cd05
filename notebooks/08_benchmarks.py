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
# # 08 — WinCLIP on every benchmark, beside the published numbers
#
# The paper evaluates WinCLIP on MVTec-AD and VisA. Later papers report it on more industrial benchmarks, each with
# its authors' own run of someone's WinCLIP code:
#
# - **AnomalyCLIP** ([ICLR 2024, arXiv 2310.18961](https://arxiv.org/abs/2310.18961)), Table 1: zero-shot WinCLIP
#   on MPDD, BTAD, SDD (KolektorSDD, reorganised by those authors), DAGM 2007 and DTD-Synthetic — image AUROC and
#   AP, pixel AUROC and PRO. These numbers were read from copies of the table that agree with each other; the
#   paper's own text could not be checked, so each carries a **\***.
# - **ResAD** (NeurIPS 2024), Table 1: WinCLIP+ at 224 × 224 px (ours runs at the paper's 240) on BTAD with 2 and 4
#   normal references — image and pixel AUROC, checked against the paper's text.
# - **The WinCLIP paper** (CVPR 2023) for MVTec-AD and VisA (its few-shot AP and F1-max cells from a secondary copy:
#   **\***).
#
# KolektorSDD2, MVTec LOCO AD (structural and logical anomalies as separate categories), MVTec AD 2 (the public test
# split) and Real-IAD (single view) have no published WinCLIP number that we know of; your own labelled folder
# (`winclip run --folder`) has none by nature. They are shown all the same: ours, with the reason in place of the
# published bar.
#
# **Two runs, the same settings.** `datasets` holds the paper's benchmarks — the run notebooks 02–05 read — and
# `more_datasets` the later benchmarks and your own folders; each run is found by its settings in `results_dir`
# (`make reproduce` computes both first) or computed there. Ours is the mean over categories, then mean ± std over
# the reference seeds (zero-shot runs once), in %.

# %% tags=["parameters"]
# Parameters — papermill injects new values in a cell right after this one. A setting left at None takes its default
# from winclip_lib.experiments.config.RunConfig, the one place every setting is defined; `settings` takes any other.
datasets = {"mvtec": "../data/mvtec", "visa": "../data/visa", "mpdd": "../data/mpdd"}  # the paper's; {}: none
more_datasets = {"btad": "../data/btad", "ksdd": "../data/ksdd", "dagm": "../data/dagm",
                 "dtd": "../data/dtd"}  # later benchmarks (also ksdd2, loco, mvtec2, realiad) and "folder": root
categories = None  # None: every category found; or e.g. {"realiad": ["audiojack", "pcb"]}
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
figure_metrics = ["image_auroc", "pixel_auroc"]  # one column of panels each
figure_shots = None  # None: zero-shot and the largest k of the runs

# %%
from IPython.display import Markdown, display

from winclip_lib.report import figures as viz
from winclip_lib.report import tables as report
from winclip_lib.report.notebook import setup_runs, show_figure

setup = setup_runs({"the paper's benchmarks": datasets, "later benchmarks": more_datasets}, settings, preset=preset,
                   categories=categories, shots=shots, seeds=seeds, model_name=model_name, pretrained=pretrained,
                   precision=precision, device=device, cache_dir=cache_dir, figures_dir=figures_dir,
                   tables_dir=tables_dir, results_dir=results_dir)
banner, summary = setup.banner, setup.summary
reference = report.published_reference()
reference.groupby(["source", "dataset"]).size().rename("published numbers").reset_index()

# %% [markdown]
# ## The table
#
# For each dataset and setting, ours and under it every published row for that setting. "—": no number;
# **\***: a published number read from a copy of its table, not checked against the paper's text.

# %%
table = report.benchmark_table(summary, reference, paper_alias)
title = "WinCLIP on every dataset: ours and the published numbers (%; * read from a copy of the table)"
report.write_table(table, setup.tables, "08_benchmarks", title, banner)
display(Markdown(report.markdown_table(table, title, banner)))

# %% [markdown]
# ## The figure
#
# Zero-shot WinCLIP and WinCLIP+ with the most references, image and pixel AUROC: ours beside the published number
# (coloured by its source, hatched where it is unchecked). Every missing bar says why.

# %%
comp = report.benchmark_comparison(summary, reference, paper_alias)
fig = viz.plot_benchmarks(comp, figure_metrics, figure_shots, banner=banner)
saved = show_figure(fig, setup.figures / "08_benchmarks.png")
