"""Write the numbered notebooks 01-05 from the cell texts below (nbformat), without outputs.

    python notebooks/make_notebooks.py            # rewrite notebooks/*.ipynb
    python notebooks/make_notebooks.py --check    # exit 1 if a committed notebook differs from this script

Edit the notebooks here, not in Jupyter, so the committed ``.ipynb`` files stay clean (no outputs, no execution
counts, stable cell ids). The first code cell of every notebook is tagged ``parameters`` for papermill. A cell never
holds library logic: everything it computes comes from ``winclip_lib``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

# ------------------------------------------------------------------------------------------------- parameters

COMMON_RUN_PARAMETERS = '''\
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
'''

IMPORTS_RUN = '''\
from pathlib import Path

import matplotlib.pyplot as plt
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
'''

# ---------------------------------------------------------------------------------------------------- 01 CPE

NB01 = [
    ("md", r"""# 01 — The Compositional Prompt Ensemble (CPE)

*WinCLIP* (Jeong et al., CVPR 2023) detects anomalies with a frozen CLIP and no training. An image (or a window of
it) is anomalous when its embedding is closer to a description of a *defective* object than to a description of a
*normal* one. A single prompt such as "a photo of a damaged bottle" is a noisy description, so the paper composes
many: **state words** describe the object as normal or anomalous, and **templates** describe the photo.

- 7 normal states: `{}`, `flawless {}`, `perfect {}`, `unblemished {}`, `{} without flaw`, `{} without defect`,
  `{} without damage`;
- 4 anomalous states: `damaged {}`, `{} with flaw`, `{} with defect`, `{} with damage`;
- 22 templates (the paper's Fig. 5), e.g. `a cropped photo of the {}.`, `a photo of a {} for anomaly detection.`

Every state is put in every template: $7 \times 22 = 154$ normal and $4 \times 22 = 88$ anomalous prompts for a
class $c$. Their CLIP text embeddings are averaged per group into the two text embeddings of the class,

$$
t_n = \frac{\sum_{s \in \mathcal{S}_n} \sum_{\tau \in \mathcal{T}} E_\text{text}\big(\tau(s(c))\big)}
           {\big\lVert \sum_{s \in \mathcal{S}_n} \sum_{\tau \in \mathcal{T}}
            E_\text{text}\big(\tau(s(c))\big)\big\rVert},
\qquad
t_a = \text{the same over the anomalous states } \mathcal{S}_a ,
$$

and an embedding $f$ (of an image or a window) gets the anomaly probability

$$
p(f) = \frac{\exp(\cos(f, t_a)/T)}{\exp(\cos(f, t_n)/T) + \exp(\cos(f, t_a)/T)}, \qquad T = 0.07 .
$$

This notebook builds the prompts of one class, encodes them, forms $t_n$ and $t_a$, and shows how the prompts
cluster. (Averaging the raw embeddings and then normalising is the common choice; `normalize_each=True` normalises
each prompt first.)"""),
    ("params", '''\
# Parameters — papermill injects new values in a cell right after this one.
dataset = "mvtec"          # the dataset the class comes from (for its class name)
category = "bottle"        # the category whose prompts are shown
datasets = {}              # the run's datasets (only to label a demo on synthetic data)
model_name = "ViT-B-16-plus-240"
pretrained = "laion400m_e31"  # an open_clip tag, a checkpoint path, or None: random weights (NOT a reproduction)
precision = "fp32"
device = "auto"
figures_dir = "../figures"
tables_dir = "../figures/tables"
tiny = False               # True: the tiny test model with random weights, for tests only
'''),
    ("code", '''\
from pathlib import Path

import pandas as pd
import torch
from IPython.display import Markdown, display

from winclip_lib import report, viz
from winclip_lib.datasets import class_name
from winclip_lib.backbone import load_backbone
from winclip_lib.notebooks import backbone_settings, show_source
from winclip_lib.prompts import ANOMALOUS_STATES, NORMAL_STATES, TEMPLATES, build_prompts, encode_text, ensemble
from winclip_lib.prompts import text_embeddings
from winclip_lib.runner import DATASET_LOADERS
from winclip_lib.scoring import anomaly_probability

backbone = load_backbone(**backbone_settings(model_name, pretrained, precision, tiny), device=device)
banner = report.banner_for(backbone.is_random, datasets)
figures, tables = Path(figures_dir), Path(tables_dir)
name = class_name(category, DATASET_LOADERS.get(dataset, dataset))
print(backbone.describe())
print(banner or "real weights")
print(f"class {category!r} is called {name!r} in the prompts")
'''),
    ("md", """## The state words and the templates"""),
    ("code", '''\
states = pd.DataFrame({"state": [*NORMAL_STATES, *ANOMALOUS_STATES],
                       "group": ["normal"] * len(NORMAL_STATES) + ["anomalous"] * len(ANOMALOUS_STATES)})
display(states.T)
pd.DataFrame({"template": TEMPLATES})
'''),
    ("md", """## The prompts of one class

`build_prompts` fills every template with every state, state-major (all templates of the first state, then of the
second, ...)."""),
    ("code", '''\
prompts = build_prompts(name)
print(f"{len(prompts['normal'])} normal and {len(prompts['anomalous'])} anomalous prompts")
pd.DataFrame({"normal (first 5)": prompts["normal"][:5], "anomalous (first 5)": prompts["anomalous"][:5]})
'''),
    ("md", r"""## The two text embeddings

Each prompt goes through CLIP's text tower once; the ensemble averages each group and normalises. `text_embeddings`
does both steps (and caches the result per class); below, the same two rows are also formed from the individual
prompt embeddings with `ensemble`, to show what the ensemble is."""),
    ("code", '''\
emb_normal = encode_text(backbone, prompts["normal"])        # (154, D)
emb_anomalous = encode_text(backbone, prompts["anomalous"])  # (88, D)
text = text_embeddings(backbone, name)                       # (2, D): rows [t_n, t_a]
same = torch.allclose(torch.stack([ensemble(emb_normal), ensemble(emb_anomalous)]), text, atol=1e-5)
print(f"text embeddings {tuple(text.shape)}; ensemble of the prompt embeddings matches: {same}")
print(f"cos(t_n, t_a) = {float(text[0] @ text[1]):.4f}")
show_source(ensemble)
'''),
    ("md", r"""## How the prompts cluster

The cosine similarity of all 242 prompt embeddings (left; the cyan lines separate the normal from the anomalous
prompts) and its average over templates for every pair of states (right). What to look for: how tightly the
templates of one state agree, and how far the normal and the anomalous states are apart compared with the spread
within each group — all prompts share the class and the photo, so the two ensembles are close, and averaging many
prompts is what makes the small difference between them reliable."""),
    ("code", '''\
fig = viz.plot_prompt_similarity(torch.cat([emb_normal, emb_anomalous]), [*NORMAL_STATES, *ANOMALOUS_STATES],
                                 len(TEMPLATES), len(NORMAL_STATES), banner=banner,
                                 title=f"CPE of '{name}': similarity of the prompt embeddings")
saved = viz.save_figure(fig, figures / "01_prompt_similarity.png")
'''),
    ("md", r"""## Each prompt scored as if it were an image

As a check of the two embeddings, $p(\cdot)$ applied to the prompt embeddings themselves: the anomalous prompts
should get a higher anomaly probability than the normal ones (with random weights nothing is expected)."""),
    ("code", '''\
p = anomaly_probability(torch.cat([emb_normal, emb_anomalous]), text)
per_prompt = pd.DataFrame({"state": [s for s in (*NORMAL_STATES, *ANOMALOUS_STATES) for _ in TEMPLATES],
                           "group": ["normal"] * len(emb_normal) + ["anomalous"] * len(emb_anomalous),
                           "p_anomalous": p.double().cpu().numpy()})
by_state = per_prompt.groupby(["group", "state"], sort=False)["p_anomalous"].agg(["mean", "min", "max"]).round(3)
by_state = by_state.reset_index()
report.write_table(by_state, tables, "01_prompt_states", f"CPE of '{name}': p(anomalous) of the prompts", banner)
display(Markdown(report.markdown_table(by_state, banner=banner)))
'''),
]

# ---------------------------------------------------------------------------------------------- 02 zero-shot

NB02 = [
    ("md", r"""# 02 — Zero-shot WinCLIP: windows, harmonic aggregation, the zero-shot map

CLIP is trained to match *whole* images with captions, so its image embedding says little about *where* a defect
is. WinCLIP therefore also embeds **windows**: for the ViT-B/16+ at 240 px the image is a $G \times G = 15 \times 15$
grid of patch tokens, and a window of scale $k$ is a $k \times k$ block of them. Its embedding $f_w$ is what the
ViT outputs when it sees only those tokens (plus the class token, with their position embeddings) — a *masked*
forward pass, not a crop. The paper uses $k \in \{2, 3\}$ with stride 1: $14^2 = 196$ and $13^2 = 169$ windows.

Each window gets the anomaly probability of notebook 01, $s_w = p(f_w)$. A patch $p$ is covered by the windows
$W_p = \{w : p \in w\}$ (up to $k^2$ of them), and its score at scale $k$ is their **harmonic mean** (eq. 1):

$$
M_k[p] \;=\; \Bigg( \frac{1}{|W_p|} \sum_{w \in W_p} \frac{1}{s_w} \Bigg)^{-1} .
$$

The harmonic mean is dominated by the *smallest* scores: a patch is called anomalous only if every window that
covers it is. The **zero-shot map** is the harmonic mean of the image score $s_0 = p(f_\text{image})$ (broadcast
over the grid) and the per-scale maps, $Z = 3 \,/\, \big(1/s_0 + 1/M_2 + 1/M_3\big)$, upsampled to 240 × 240; the
zero-shot **image score** is $s_0$."""),
    ("params", COMMON_RUN_PARAMETERS),
    ("code", IMPORTS_RUN + '''\
from winclip_lib.encoder import window_indices
from winclip_lib.scoring import anomaly_probability, harmonic_aggregate, zero_shot_maps
'''),
    ("md", """## Windows on the 15 × 15 grid

`window_indices(G, k)` lists the patches of every window, row-major by the window's top-left patch; the encoder
gathers exactly these tokens into one short sequence per window and runs all windows as a batch. The lower panels
count the windows covering each patch, $|W_p|$ in eq. 1: fewer at the border."""),
    ("code", '''\
G = backbone.grid_size
for k in cfg.scales:
    idx = window_indices(G, k)
    print(f"k = {k}: {idx.shape[0]} windows of {idx.shape[1]} patches; window 0 = patches {idx[0].tolist()}")
fig = viz.plot_window_grid(G, cfg.scales, banner=banner)
saved = viz.save_figure(fig, figures / "02_windows.png")
'''),
    ("md", """## One image through WinCLIP

An anomalous test image of the first category, encoded once: the image embedding, the embedding of every window of
every scale, and the patch tokens (used by WinCLIP+ in notebook 03)."""),
    ("code", '''\
unit = plan_units(cfg)[0]
sample = viz.choose_examples(unit.test, n_anomalous=1, n_normal=1)[0]
model = WinCLIP(backbone, unit.class_name, scales=cfg.scales, temperature=cfg.temperature,
                template_set=cfg.template_set, normalize_each=cfg.normalize_each, patch_ln_post=cfg.patch_ln_post)
features = model.encode([sample.image_path])
print(f"{unit.dataset}/{unit.category}: {sample.image_path.name} ({sample.defect}); class name {unit.class_name!r}")
pd.DataFrame({"features": ["image", *(f"windows k={k}" for k in features.scales), "patches"],
              "shape": [tuple(features.image.shape), *(tuple(features.windows[k].shape) for k in features.scales),
                        tuple(features.patches.shape)]})
'''),
    ("md", r"""## Eq. 1 beside the code that does it

$s_w = p(f_w)$ for every window, then $M_k[p] = |W_p| \,/\, \sum_{w \in W_p} 1/s_w$ — the line marked `# <--`
in `harmonic_aggregate` below (a scatter-add of $1/s_w$ over the patches of each window)."""),
    ("code", '''\
s0 = anomaly_probability(features.image, model.text, cfg.temperature)                        # s_0, (1,)
window_scores = {k: anomaly_probability(w, model.text, cfg.temperature) for k, w in features.windows.items()}
M = {k: harmonic_aggregate(window_scores[k], features.grid, k) for k in cfg.scales}           # eq. 1, (1, G, G)
print(f"s0 = {float(s0):.4f}; " + "; ".join(f"M_{k}: {tuple(m.shape)}" for k, m in M.items()))
show_source(harmonic_aggregate, highlight="count / total")
'''),
    ("md", """`zero_shot_maps` is what the model and the runner call; it gives the same per-scale maps, and the
zero-shot map as the harmonic mean of $s_0$ and all $M_k$:"""),
    ("code", '''\
zs = zero_shot_maps(features, model.text, cfg.temperature)
print("per-scale maps identical:", all(torch.equal(zs["scale_maps"][k], M[k]) for k in cfg.scales))
image = resize_image(load_image(sample.image_path), cfg.image_size)
mask = resize_mask(load_mask(sample), cfg.image_size)
maps = {**{f"M_{k} (eq. 1)": M[k] for k in cfg.scales}, "zero-shot map Z": zs["map"]}
fig = viz.plot_scale_maps(image, maps, mask, banner=banner,
                          title=f"{unit.category} / {sample.defect}: per-scale maps and the zero-shot map")
saved = viz.save_figure(fig, figures / "02_scale_maps.png")
'''),
    ("md", """## Zero-shot results

The experiment runner encodes every test (and reference) image of the grid **once** into the feature cache and
scores every setting from it. If the grid was already run (e.g. by `make reproduce`) this only checks and reads the
finished results; the few-shot settings of the grid are scored here too, at almost no cost, and shown in
notebook 03."""),
    ("code", '''\
result = run_grid(cfg, backbone=backbone)
banner = report.run_banner(result.info)
print(result.info["backbone"], "|", result.info["encode_counts"])
comp = report.comparison(result.summary, paper_alias=paper_alias)
zero = report.comparison_table(comp[comp["k"] == 0], paper_alias)
report.write_table(zero, tables, "02_zero_shot", "Zero-shot WinCLIP vs the paper (%)", banner)
display(Markdown(report.markdown_table(zero, "Zero-shot WinCLIP vs the paper (%)", banner)))
'''),
    ("code", '''\
per_cat = result.per_category()
for ds in dict.fromkeys(per_cat["dataset"]):
    pc = report.per_category_comparison(per_cat, ds, "image_auroc", summary=result.summary, paper_alias=paper_alias)
    table = report.per_category_table(pc[pc["k"] == 0])
    display(Markdown(report.markdown_table(table, f"{report.dataset_label(ds, paper_alias)}: zero-shot image AUROC",
                                           banner)))
'''),
]

# ----------------------------------------------------------------------------------------------- 03 few-shot

NB03 = [
    ("md", r"""# 03 — WinCLIP+: few-normal-shot association with reference memories

With $k$ normal reference images of a category, WinCLIP+ adds a *visual* anomaly map to the language-guided one.
Every reference is encoded like a test image, and its features at every position are pooled into **three
memories**:

- $R_2$: the embeddings of all small ($2 \times 2$) windows of all references ($k \cdot 196$ vectors),
- $R_3$: the embeddings of all mid-size ($3 \times 3$) windows ($k \cdot 169$ vectors),
- $R_p$: the final-layer patch tokens of the whole references ($k \cdot 225$ vectors).

A query feature $f$ is scored by its distance to the nearest reference feature (eq. 2):

$$
d(f, R) \;=\; \min_{r \in R} \; \frac{1 - \cos(f, r)}{2} .
$$

Window distances are carried to patches by the harmonic aggregation of eq. 1; the patch distances already are per
patch. The **visual map** is the mean of the three maps (eq. 3), and WinCLIP+ fuses it with the zero-shot map $Z$
and the zero-shot image score $s_0$ (eq. 4):

$$
V = \tfrac{1}{3}\big(V_{R_2} + V_{R_3} + V_{R_p}\big), \qquad
\text{map} = \tfrac12\,(Z + V), \qquad
\text{score} = \tfrac12\,\big(s_0 + \max_p V[p]\big).
$$

The paper reports $k \in \{1, 2, 4\}$, each over 5 random draws of the references (seeds); tables give the mean over
categories, then mean ± std over seeds."""),
    ("params", COMMON_RUN_PARAMETERS),
    ("code", IMPORTS_RUN + '''\
from winclip_lib.fewshot import VisualMemory, few_shot_maps, fuse, nearest_distance
from winclip_lib.scoring import harmonic_aggregate, zero_shot_maps
'''),
    ("md", """## The grid

The same call as in notebook 02: finished settings are read back, nothing is encoded twice."""),
    ("code", '''\
result = run_grid(cfg, backbone=backbone)
banner = report.run_banner(result.info)
few_shots = [k for k in cfg.shots if k > 0]
print(result.info["backbone"], "|", result.info["encode_counts"])
print("few-shot settings:", few_shots or "none (the grid is zero-shot only)", "| seeds:", list(cfg.seeds))
'''),
    ("md", """## The three memories of one category

The references of the largest $k$ and the first seed, drawn by `sample_references` (the runner uses the same
draw)."""),
    ("code", '''\
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
'''),
    ("md", r"""## Eqs. 2–4 on one test image

Eq. 2 is one matrix product per memory (`nearest_distance`, below); eq. 1 carries the window distances to the
patches; `few_shot_maps` does eqs. 2–3 for every scale, and `fuse` is eq. 4."""),
    ("code", '''\
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
'''),
    ("code", '''\
if memory is not None:
    image = resize_image(load_image(sample.image_path), cfg.image_size)
    mask = resize_mask(load_mask(sample), cfg.image_size)
    maps = {**V, "visual map V (eq. 3)": vis["map"], "zero-shot Z": zs["map"], "WinCLIP+ map (eq. 4)": final_map}
    fig = viz.plot_scale_maps(image, maps, mask, banner=banner,
                              title=f"{unit.category} / {sample.defect}, k = {k_demo}: visual maps and the fusion")
    viz.save_figure(fig, figures / "03_visual_maps.png")
show_source(fuse)
'''),
    ("md", """## Few-shot results

Mean over categories, then mean ± std over the seeds; ↑ where ours is at or above the paper."""),
    ("code", '''\
comp = report.comparison(result.summary, paper_alias=paper_alias)
few = report.comparison_table(comp[comp["k"] > 0], paper_alias)
report.write_table(few, tables, "03_few_shot", "WinCLIP+ (few-shot) vs the paper (%)", banner)
display(Markdown(report.markdown_table(few, "WinCLIP+ (few-shot) vs the paper (%)", banner)))
'''),
    ("code", '''\
fig = viz.plot_shots_curve(comp, banner=banner)
saved = viz.save_figure(fig, figures / "03_shots_curve.png")
'''),
]

# ------------------------------------------------------------------------------------------------ 04 heatmaps

NB04 = [
    ("md", r"""# 04 — Anomaly maps per category

For every category of the run, a few test images (one per defect type, then a normal one) with, left to right: the
image, its ground-truth region (green contour), the zero-shot WinCLIP map and the few-shot WinCLIP+ map (the
largest $k$ of the run, first seed), overlaid on the image as in the seed report's Fig. 7. Each map column shares
one colour scale across its rows.

This notebook only reads: the run's configuration comes from `results_dir/run.json`, and the maps are re-scored
from the feature cache (`predict_samples`), so nothing is encoded again."""),
    ("params", '''\
# Parameters — papermill injects new values in a cell right after this one.
results_dir = "../build/results"  # a finished run (notebooks 02/03 or `winclip run`)
figures_dir = "../figures"
n_anomalous = 3            # anomalous images per category (one per defect type first)
n_normal = 1               # normal images per category
few_shot_k = None          # None: the largest k of the run
few_shot_seed = None       # None: the run's first seed
max_categories = None      # None: every category of the run
'''),
    ("code", '''\
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
'''),
    ("code", '''\
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
'''),
]

# -------------------------------------------------------------------------------------------------- 05 report

NB05 = [
    ("md", r"""# 05 — The report: ours beside the paper

Every metric and setting of the run beside the published numbers:

- **Ours**: the mean over categories for each seed, then mean ± std over the seeds (zero-shot has one run), in %;
  **↑** marks where ours, as displayed, is at or above the paper.
- **Paper**: WinCLIP (CVPR 2023), Tables 1 (image level) and 2 (pixel level) and its per-category tables; the
  few-shot AP and F1-max cells come from a secondary copy of the paper's table; MPDD is not in the paper and is
  compared with WinCLIP as reported by AnomalyCLIP (ICLR 2024). The paper reports no pixel AP.
- **Seed report**: the seed report's own reproduction, where it has a number.

Metrics: image AUROC / AP / F1-max, pixel AUROC / AP / F1-max and PRO (AUPRO up to a false-positive rate of 0.3).
Every number comes from `winclip_lib.report` applied to the runner's tables; the published numbers are
`winclip_lib/data/paper_results.csv`. This notebook only reads results."""),
    ("params", '''\
# Parameters — papermill injects new values in a cell right after this one.
results_dir = "../build/results"  # a finished run
figures_dir = "../figures"
tables_dir = "../figures/tables"
paper_alias = {"synthetic": "mvtec"}  # compare a dataset with another's published numbers (the demo)
per_category_metrics = ["image_auroc", "pixel_auroc"]
'''),
    ("code", '''\
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
'''),
    ("md", """## The tables"""),
    ("code", '''\
files = report.write_report(summary, per_cat, tables, banner=banner, paper=paper, paper_alias=paper_alias,
                            per_category_metrics=per_category_metrics)
print("\\n".join(str(p) for p in files.values()))
display(Markdown(files["comparison"].read_text()))
'''),
    ("code", '''\
for name, path in files.items():
    if name.startswith("per_category_") and path.suffix == ".md":
        display(Markdown(path.read_text()))
'''),
    ("md", """## Ours vs the paper, in figures"""),
    ("code", '''\
comp = report.comparison(summary, paper, paper_alias)
for ds in dict.fromkeys(comp["dataset"]):
    fig = viz.plot_ours_vs_paper(comp, ds, banner=banner,
                                 title=f"{report.dataset_label(ds, paper_alias)}: ours vs the paper")
    viz.save_figure(fig, figures / f"05_ours_vs_paper_{ds}.png")
    display(fig)
    plt.close(fig)
fig = viz.plot_ours_vs_paper_scatter(comp, banner=banner)
saved = viz.save_figure(fig, figures / "05_ours_vs_paper_scatter.png")
'''),
    ("code", '''\
fig = viz.plot_shots_curve(comp, banner=banner)
saved = viz.save_figure(fig, figures / "05_shots_curve.png")
'''),
    ("code", '''\
for ds in dict.fromkeys(per_cat["dataset"]):
    for metric in per_category_metrics:
        pc = report.per_category_comparison(per_cat, ds, metric, paper, summary, paper_alias)
        for k in sorted({min(pc["k"]), max(pc["k"])}) if len(pc) else []:
            fig = viz.plot_per_category(pc, k, ds, metric, banner=banner)
            viz.save_figure(fig, figures / f"05_per_category_{ds}_{metric}_k{k}.png")
            display(fig)
            plt.close(fig)
'''),
    ("md", """## Encode once, score many

Each (dataset, category) unit of the grid, whether the last call computed it or reused finished results, and how
many images the last call pushed through the ViT or read back from the feature cache (a call that reuses every
unit encodes nothing)."""),
    ("code", '''\
display(pd.DataFrame(result.info.get("units", [])))
result.info["encode_counts"]
'''),
]

NOTEBOOKS = {
    "01_cpe": NB01,
    "02_zero_shot_winclip": NB02,
    "03_winclip_plus": NB03,
    "04_heatmaps": NB04,
    "05_report": NB05,
}


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook without outputs; cell ids are stable (``<name>-<index>``)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, (kind, source) in enumerate(cells):
        source = source.rstrip("\n")
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
        cell.id = f"{name.split('_')[0]}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name, NOTEBOOKS[name])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the .ipynb files are up to date")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the notebooks to")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = args.out / f"{name}.ipynb"
        text = render(name)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python notebooks/make_notebooks.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
