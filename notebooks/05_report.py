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
# # 05 — The report: ours beside the paper
#
# Every metric and setting of the run beside the published numbers:
#
# - **Ours**: the mean over categories for each seed, then mean ± std over the seeds (zero-shot has one run), in %;
#   **↑** marks where ours, as displayed, is at or above the paper.
# - **Paper**: WinCLIP ([CVPR 2023, arXiv 2303.14814](https://arxiv.org/abs/2303.14814)), its Tables 1 (image level)
#   and 2 (pixel level) and its per-category tables. The few-shot AP and F1-max cells come from a *secondary copy* of
#   the paper's table (a transcription in a public study note, not checked against the paper's text). MPDD is not in
#   the paper and is compared with WinCLIP as reported by AnomalyCLIP (ICLR 2024). The paper reports no pixel AP.
# - **2024 course report**: a 2024 course reproduction report of WinCLIP on MVTec-AD, VisA and MPDD, built on the
#   AnomalyCLIP authors' WinCLIP code (zqhang/Accurate-WinCLIP-pytorch); its MVTec-AD means are that code's own
#   README numbers. Shown where it has a number.
#
# Metrics: image AUROC / AP / F1-max, pixel AUROC / AP / F1-max and PRO (AUPRO up to a false-positive rate of 0.3).
# Every number comes from `winclip_lib.report.tables` applied to the run's tables; the published numbers are
# `winclip_lib/report/paper_results.csv`. The run itself is found by its settings in `results_dir` (notebook 02
# computes it); the presets' runs are read the same way, or computed from the feature cache when missing.

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

per_category_metrics = ["image_auroc", "pixel_auroc"]
presets = ["paper", "anomalib", "accurate-winclip", "caoyunkang", "course-2024"]  # [] to leave the presets out
preset_shots = [0, 1, 4]  # the k of the presets table
preset_model_name = None  # None: model_name; e.g. the tiny test model for a quick look (its table then says so)
bench_json = "../build/bench/speed_cpu.json"  # `make bench`'s table, for the compute figure (skipped if absent)

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from winclip_lib.experiments.ablations import run_presets
from winclip_lib.report import figures as viz
from winclip_lib.report import tables as report
from winclip_lib.report.notebook import setup_notebook, show_figure

setup = setup_notebook(settings, preset=preset, datasets=datasets, categories=categories, shots=shots, seeds=seeds,
                       model_name=model_name, pretrained=pretrained, precision=precision, device=device,
                       cache_dir=cache_dir, figures_dir=figures_dir, tables_dir=tables_dir, results_dir=results_dir)
cfg, result, banner, figures, tables = setup.config, setup.result, setup.banner, setup.figures, setup.tables
summary, per_cat = result.summary, result.per_category()
paper = report.paper_results()
paper.groupby(["source", "dataset"]).size().rename("numbers").reset_index()

# %% [markdown]
# ## The tables

# %%
files = report.write_report(summary, per_cat, tables, banner=banner, paper=paper, paper_alias=paper_alias,
                            per_category_metrics=per_category_metrics)
print("\n".join(str(p) for p in files.values()))
display(Markdown(files["comparison"].read_text()))

# %%
for name, path in files.items():
    if name.startswith("per_category_") and path.suffix == ".md":
        display(Markdown(path.read_text()))

# %% [markdown]
# ## Ours vs the paper, in figures

# %%
comp = report.comparison(summary, paper, paper_alias)
for ds in dict.fromkeys(comp["dataset"]):
    fig = viz.plot_ours_vs_paper(comp, ds, banner=banner,
                                 title=f"{report.dataset_label(ds, paper_alias)}: ours vs the paper")
    show_figure(fig, figures / f"05_ours_vs_paper_{ds}.png")
fig = viz.plot_ours_vs_paper_scatter(comp, banner=banner)
saved = viz.save_figure(fig, figures / "05_ours_vs_paper_scatter.png")

# %%
fig = viz.plot_shots_curve(comp, banner=banner, title="Every setting against k (zero-shot at k = 0)")
saved = viz.save_figure(fig, figures / "05_shots_curve.png")

# %%
for ds in dict.fromkeys(per_cat["dataset"]):
    for metric in per_category_metrics:
        pc = report.per_category_comparison(per_cat, ds, metric, paper, summary, paper_alias)
        for k in sorted({min(pc["k"]), max(pc["k"])}) if len(pc) else []:
            fig = viz.plot_per_category(pc, k, ds, metric, banner=banner)
            show_figure(fig, figures / f"05_per_category_{ds}_{metric}_k{k}.png")

# %% [markdown]
# ## The public reproductions' choices: presets vs the paper
#
# The same data scored with each public reproduction's choices (`winclip_lib/experiments/presets.py` lists every
# choice with the line of the reproduction's code that makes it). They share the feature cache wherever they share
# an encoder setting; settings given explicitly above (the weights, the precision, the device) win over a preset's.
# With `preset_model_name` they run on another model than the report — the demo, with random weights, uses the tiny
# test model, since the paper's architecture adds nothing to what a table of random-weight numbers shows; the
# table's label then says "tiny model".

# %%
if presets:
    explicit = {"datasets": cfg.datasets, "categories": cfg.categories, "shots": preset_shots,
                "model_name": preset_model_name or model_name, "pretrained": pretrained, "precision": precision,
                "device": device, "cache_dir": cache_dir, "seeds": seeds}
    preset_rows, preset_counts = run_presets(explicit, presets, Path(results_dir) / "presets")
    preset_banner = "; ".join(dict.fromkeys(preset_rows["label"].dropna())) or None  # the presets' runs' own label
    preset_table = report.presets_table(preset_rows, preset_shots)
    title = "Presets: each public reproduction's choices (%)"
    report.write_table(preset_table, tables, "05_presets", title, preset_banner)
    display(Markdown(report.markdown_table(preset_table, title, preset_banner)))
    print("encoding for the presets:", preset_counts["prewarm"])

# %% [markdown]
# ## Compute
#
# Time per image of each stage, from `make bench`'s table when it has been run on this machine (the README's speed
# section has the tables of the machines measured).

# %%
bench_path = Path(bench_json)
if bench_path.is_file():
    stages = report.compute_stages(json.loads(bench_path.read_text()))
    fig = viz.plot_compute(stages, banner=banner, title=f"Time per image ({bench_path.name})")
    viz.save_figure(fig, figures / "05_compute.png")
else:
    print(f"no benchmark table at {bench_path}: run `make bench` to add the compute figure")

# %% [markdown]
# ## Encode once, score many
#
# Each (dataset, category) unit of the grid, whether the call that made the run computed it or reused finished
# results, and how many images it pushed through the ViT or read back from the feature cache.

# %%
display(pd.DataFrame(result.info.get("units", [])))
result.info["encode_counts"]

# %%
display(Markdown(report.discussion(comp, per_cat, banner, paper_alias)))
