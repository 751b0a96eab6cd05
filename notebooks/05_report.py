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
# # 05 — The report: ours beside the paper
#
# Every metric and setting of the run beside the published numbers:
#
# - **Ours**: the mean over categories for each seed, then mean ± std over the seeds (zero-shot has one run), in %;
#   **↑** marks where ours, as displayed, is at or above the paper.
# - **Paper**: WinCLIP (CVPR 2023), Tables 1 (image level) and 2 (pixel level) and its per-category tables; the
#   few-shot AP and F1-max cells come from a secondary copy of the paper's table; MPDD is not in the paper and is
#   compared with WinCLIP as reported by AnomalyCLIP (ICLR 2024). The paper reports no pixel AP.
# - **Seed report**: the seed report's own reproduction, where it has a number.
#
# Metrics: image AUROC / AP / F1-max, pixel AUROC / AP / F1-max and PRO (AUPRO up to a false-positive rate of 0.3).
# Every number comes from `winclip_lib.report` applied to the runner's tables; the published numbers are
# `winclip_lib/data/paper_results.csv`. This notebook only reads results.

# %% tags=["parameters"]
# Parameters — papermill injects new values in a cell right after this one.
results_dir = "../build/results"  # a finished run
figures_dir = "../figures"
tables_dir = "../figures/tables"
paper_alias = {"synthetic": "mvtec"}  # compare a dataset with another's published numbers (the demo)
per_category_metrics = ["image_auroc", "pixel_auroc"]

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from winclip_lib import report, viz
from winclip_lib.runner import load_results

result = load_results(results_dir)
banner = report.run_banner(result.info)
figures, tables = Path(figures_dir), Path(tables_dir)
summary, per_cat = result.summary, result.per_category()
paper = report.paper_results()
print(result.info["backbone"])
print(banner or "real weights on real data")
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
    viz.save_figure(fig, figures / f"05_ours_vs_paper_{ds}.png")
    display(fig)
    plt.close(fig)
fig = viz.plot_ours_vs_paper_scatter(comp, banner=banner)
saved = viz.save_figure(fig, figures / "05_ours_vs_paper_scatter.png")

# %%
fig = viz.plot_shots_curve(comp, banner=banner)
saved = viz.save_figure(fig, figures / "05_shots_curve.png")

# %%
for ds in dict.fromkeys(per_cat["dataset"]):
    for metric in per_category_metrics:
        pc = report.per_category_comparison(per_cat, ds, metric, paper, summary, paper_alias)
        for k in sorted({min(pc["k"]), max(pc["k"])}) if len(pc) else []:
            fig = viz.plot_per_category(pc, k, ds, metric, banner=banner)
            viz.save_figure(fig, figures / f"05_per_category_{ds}_{metric}_k{k}.png")
            display(fig)
            plt.close(fig)

# %% [markdown]
# ## Encode once, score many
#
# Each (dataset, category) unit of the grid, whether the last call computed it or reused finished results, and how
# many images the last call pushed through the ViT or read back from the feature cache (a call that reuses every
# unit encodes nothing).

# %%
display(pd.DataFrame(result.info.get("units", [])))
result.info["encode_counts"]
