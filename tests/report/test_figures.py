"""Every public figure function renders on tiny inputs, with no text outside the figure, and the details a reader
relies on are there: legend titles, colour-bar labels, integer ticks for counts, "n/a" for missing paper numbers,
mathtext subscripts."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from winclip_lib.core.encoder import window_indices  # noqa: E402
from winclip_lib.datasets.scan import scan_split  # noqa: E402
from winclip_lib.evaluation.metrics import METRIC_NAMES  # noqa: E402
from winclip_lib.experiments.labels import DEMO_BANNER  # noqa: E402
from winclip_lib.experiments.summary import per_category, summarize  # noqa: E402
from winclip_lib.report import figures as viz  # noqa: E402
from winclip_lib.report import tables as report  # noqa: E402

ALIAS = {"synthetic": "mvtec"}


# ------------------------------------------------------------------------------------------------ helpers


def drawn_texts(fig) -> list[Text]:
    """The texts of ``fig`` (``fig.findobj(Text)``) that are visible, non-empty and drawn when the canvas is drawn.

    Drawn matters for tick labels: an axis keeps Tick objects for locations outside its view limits, which it does
    not draw (their stale labels can lie anywhere)."""
    drawn: set[int] | None = getattr(fig, "_drawn_text_ids", None)
    if drawn is None:  # figures are shared between the checks: draw each once
        drawn = set()
        original = Text.draw

        def record(self, renderer):
            drawn.add(id(self))
            return original(self, renderer)

        with mock.patch.object(Text, "draw", record):
            fig.canvas.draw()
        fig._drawn_text_ids = drawn
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) in drawn]


def clipped_texts(fig, tol: float = 1.0) -> list[str]:
    """The drawn texts of ``fig`` whose extent leaves the figure's bbox by more than ``tol`` pixels."""
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    out = []
    for t in texts:
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - tol or e.y0 < box.y0 - tol or e.x1 > box.x1 + tol or e.y1 > box.y1 + tol:
            out.append(f"{t.get_text()!r} at {tuple(round(v) for v in e.bounds)} outside {fig.bbox.bounds}")
    return out


def colorbars(fig) -> list:
    found = []
    for ax in fig.axes:
        for artist in [*ax.images, *ax.collections]:
            cb = getattr(artist, "colorbar", None)
            if cb is not None and cb not in found:
                found.append(cb)
    return found


def fake_metrics(datasets=("synthetic",), categories=("disc", "tiles"), shots=(0, 1, 2), seeds=(0, 1), seed=0):
    """A metrics table in the runner's format (fractions), random values (see tests/report/test_tables.py)."""
    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        for cat in categories:
            for k in shots:
                for s in (0,) if k == 0 else seeds:
                    rows += [{"dataset": ds, "category": cat, "k": k, "seed": s, "metric": m,
                              "value": float(rng.uniform(0.4, 0.99))} for m in METRIC_NAMES]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tables():
    metrics = pd.concat([fake_metrics(), fake_metrics(("mvtec",), ("bottle", "cable"), seed=1)], ignore_index=True)
    summary, pc = summarize(metrics), per_category(metrics)
    comp = report.comparison(summary, paper_alias=ALIAS)
    per_cat = report.per_category_comparison(pc, "mvtec", "image_auroc", summary=summary)
    return SimpleNamespace(comp=comp, per_cat=per_cat)


@pytest.fixture(scope="module")
def samples(synth):
    test, _ = scan_split("mvtec", synth, "disc", "test")
    return viz.choose_examples(test, 1, 1)


def _image(size: int = 48) -> np.ndarray:
    img = np.full((size, size, 3), 90, dtype=np.uint8)
    img[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 200
    return img


def _mask(size: int = 48) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[10:20, 20:30] = True
    return m


def _prediction(n: int, size: int, base: float) -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    return SimpleNamespace(map=base + 0.02 * torch.rand(n, size, size, generator=g),
                           score=base + 0.02 * torch.rand(n, generator=g))


def _maps() -> dict:
    return {"M_2 (eq. 1)": torch.rand(1, 6, 6), "V_R2": torch.rand(6, 6), "V_Rp": np.random.rand(6, 6),
            "visual map V (eq. 3)": np.random.rand(48, 48), "$Z$ zero-shot": np.random.rand(6, 6)}


def _prompt_embeddings(states: int = 3, templates: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(states * templates, 8, generator=g) + 2.0


# one builder per public figure function (name -> callable(tables, samples) -> Figure)
FIGURES = {
    "plot_window_grid": lambda t, s: viz.plot_window_grid(6, (2, 3), banner=DEMO_BANNER),
    "plot_window_pass": lambda t, s: viz.plot_window_pass(_image(), 6, 2, 7, banner=DEMO_BANNER),
    "plot_prompt_similarity": lambda t, s: viz.plot_prompt_similarity(
        _prompt_embeddings(), ["{}", "{} without damage", "damaged {}"], 4, 2, banner=DEMO_BANNER),
    "plot_scale_maps": lambda t, s: viz.plot_scale_maps(_image(), _maps(), _mask(), banner=DEMO_BANNER,
                                                        title="per-scale maps"),
    "plot_heatmaps": lambda t, s: viz.plot_heatmaps(
        [_image(), _image()], [_mask(), None], {"zero-shot": [np.random.rand(48, 48)] * 2,
                                                "few-shot": [np.random.rand(48, 48)] * 2},
        ["a / b\nscore 0.5", "c / good\nscore 0.4"], banner=DEMO_BANNER, caption="what the columns are"),
    "heatmap_figure": lambda t, s: viz.heatmap_figure(s, _prediction(len(s), 32, 0.5), _prediction(len(s), 32, 0.25),
                                                      4, size=32, banner=DEMO_BANNER, title="Synthetic: disc"),
    "plot_reference_images": lambda t, s: viz.plot_reference_images(
        [_image()] * 3, ["000.png", "a_rather_long_reference_file_name_0001.png", "002.png"], banner=DEMO_BANNER),
    "plot_ours_vs_paper": lambda t, s: viz.plot_ours_vs_paper(t.comp, "mvtec", banner=DEMO_BANNER),
    "plot_ours_vs_paper_scatter": lambda t, s: viz.plot_ours_vs_paper_scatter(t.comp, banner=DEMO_BANNER),
    "plot_shots_curve": lambda t, s: viz.plot_shots_curve(t.comp, banner=DEMO_BANNER),
    "plot_per_category": lambda t, s: viz.plot_per_category(t.per_cat, 1, "mvtec", "image_auroc",
                                                            banner=DEMO_BANNER),
    "plot_compute": lambda t, s: viz.plot_compute({"encode": 0.41, "zero-shot scoring": 0.012, "association": None},
                                                  banner=DEMO_BANNER),
    "plot_ablation": lambda t, s: viz.plot_ablation(_ablation_rows(), "pixel_auroc", banner=DEMO_BANNER,
                                                    title="Dense features"),
    "plot_benchmarks": lambda t, s: viz.plot_benchmarks(_benchmark_comparison(), banner=DEMO_BANNER),
}


def _benchmark_comparison() -> pd.DataFrame:
    """Ours on the synthetic set (vs MVTec-AD's numbers), BTAD, Real-IAD and a folder without masks, k = 0 and 4."""
    metrics = fake_metrics(("synthetic", "btad", "realiad", "folder"), ("a", "b"), shots=(0, 4))
    no_masks = (metrics["dataset"] == "folder") & metrics["metric"].str.startswith("pixel")
    metrics.loc[no_masks, "value"] = np.nan
    return report.benchmark_comparison(summarize(metrics), paper_alias=ALIAS)


def test_benchmark_bars_say_why_each_one_is_missing(render):
    fig = render("plot_benchmarks")
    shown = [t.get_text() for t in drawn_texts(fig)]
    assert shown.count("n/a — no published WinCLIP number") == 4  # Real-IAD: 2 settings x 2 metrics
    assert shown.count("n/a — your own images: nothing published") == 4
    assert shown.count("n/a — no masks: image metrics only") == 2  # the folder's pixel AUROC, both settings
    assert shown.count("n/a — published at 0-shot only") == 0  # BTAD at 4-shot: ResAD's number
    assert [t for t in shown if t.startswith("n/a") and t not in (
        "n/a — no published WinCLIP number", "n/a — your own images: nothing published",
        "n/a — no masks: image metrics only") and not t.startswith("n/a — why a bar is missing")] == []
    assert [ax.get_title() for ax in fig.axes[:4]] == ["0-shot: Image AUROC", "0-shot: Pixel AUROC",
                                                      "4-shot: Image AUROC", "4-shot: Pixel AUROC"]
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend[0].startswith("ours") and any("ResAD" in t for t in legend) and any("AnomalyCLIP" in t.replace(
        "\n", " ") for t in legend) and any("not checked" in t.replace("\n", " ") for t in legend)
    hatched = [p for ax in fig.axes[:4] for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 2  # BTAD's zero-shot numbers from AnomalyCLIP, read from a copy of the table


def _ablation_rows() -> pd.DataFrame:
    """Rows as run_ablations gives them, with the paper's numbers joined: one variant the paper does not report, one
    whose value is 0 (a bar of no length, e.g. an AUROC of 0 on a few test images), one whose metric is undefined."""
    rows = [("raw patch tokens against the text", 0, 61.0, 22.4), ("windows (WinCLIP)", 0, 80.5, 85.1),
            ("a variant the paper does not report, with a long label to wrap", 0, 79.0, np.nan),
            ("one-class: 'normal [c]' only", 0, 0.0, 34.2), ("a variant with an undefined metric", 0, np.nan, 50.0)]
    return pd.DataFrame([{"ablation": "dense", "variant": v, "k": k, "metric": "pixel_auroc", "ours": o,
                          "ours_std": 0.0, "n_seeds": 1, "paper": p} for v, k, o, p in rows])


def missing_marks(fig) -> list[str]:
    """The "n/a — <why>" texts drawn at the places of missing bars."""
    return [t.get_text() for t in drawn_texts(fig)
            if t.axes is not None and t.get_text().startswith(f"{viz.NOT_AVAILABLE} — ")]


def test_ablation_bars_say_why_a_bar_is_missing_or_empty(render):
    fig = render("plot_ablation")
    shown = [t.get_text() for t in drawn_texts(fig)]
    assert sorted(missing_marks(fig)) == ["n/a — not published", "n/a — undefined"]
    assert shown.count("0.0") == 1  # the bar of length 0 has its value beside it
    caption = fig.get_supxlabel().replace("\n", " ")
    assert "n/a — undefined: our value for this row: the metric is undefined on the evaluated test images" in caption
    assert "n/a — not published: the paper reports no number for this row" in caption
    assert "secondary copy" in caption


@pytest.fixture(scope="module")
def render(tables, samples):
    """Build a figure of :data:`FIGURES` once per module (the checks below share it); all are closed at the end."""
    made: dict[str, plt.Figure] = {}

    def make(name: str):
        if name not in made:
            made[name] = FIGURES[name](tables, samples)
        return made[name]

    yield make
    for fig in made.values():
        plt.close(fig)


# ------------------------------------------------------------------------------------------------ the checks


def test_every_public_figure_function_is_covered():
    public = {n for n in viz.__all__ if n.startswith("plot_") or n == "heatmap_figure"}
    assert public == set(FIGURES)


def test_clip_detector_can_fail():
    fine, clipped = plt.figure(figsize=(3, 2)), plt.figure(figsize=(3, 2))
    try:
        fine.text(0.5, 0.5, "inside", ha="center")
        assert clipped_texts(fine) == []
        clipped.text(0.95, 0.5, "this sentence runs off the right edge", ha="left")
        clipped.text(0.5, 1.0, "and this one off the top", ha="center", va="bottom")
        clipped.text(0.5, 0.5, "inside", ha="center")
        found = clipped_texts(clipped)
        assert len(found) == 2 and "right edge" in found[0] and "off the top" in found[1]
    finally:
        plt.close(fine)
        plt.close(clipped)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_no_text_outside_the_figure(render, name):
    fig = render(name)
    assert viz.figure_banner(fig) == DEMO_BANNER
    assert any(t.get_text() == DEMO_BANNER for t in fig.texts)
    assert clipped_texts(fig) == []


def test_stamp_banner_on_a_small_foreign_figure():
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    try:
        fig.suptitle("a suptitle that is rather long for such a small figure")
        viz.stamp_banner(fig, DEMO_BANNER)
        assert clipped_texts(fig) == []
    finally:
        plt.close(fig)


def test_window_grid_counts_have_integer_ticks(render):
    fig = render("plot_window_grid")
    bars = colorbars(fig)
    assert len(bars) == 2
    for cb in bars:
        labels = [t.get_text() for t in cb.ax.get_yticklabels() if t.get_text()]
        assert labels and all(lab.lstrip("−-").isdigit() for lab in labels), labels
        assert "W_p" in cb.ax.get_ylabel()
    assert {"1", "4"} <= {t.get_text() for t in bars[0].ax.get_yticklabels()}  # k = 2 on 6 x 6: 1, 2 or 4


def test_window_pass_shows_the_windows_tokens(render):
    fig = render("plot_window_pass")
    texts = {t.get_text() for t in drawn_texts(fig)}
    patches = window_indices(6, 2)[7].tolist()
    assert "CLS" in texts
    assert {f"$p_{{{p}}}$" for p in patches} <= texts


def test_heatmap_colour_bars_are_labelled_and_rows_explained(render):
    fig = render("heatmap_figure")
    bars = colorbars(fig)
    assert len(bars) == 2
    assert all(cb.ax.get_xlabel() for cb in bars)
    texts = " ".join(t.get_text() for t in drawn_texts(fig))
    assert "zero-shot score $s_0$" in texts and "WinCLIP+ score" in texts
    assert fig.get_supxlabel()  # the caption


def test_heatmaps_without_few_shot_say_why(samples):
    fig = viz.heatmap_figure(samples, _prediction(len(samples), 32, 0.5), None, size=32, banner=DEMO_BANNER)
    try:
        assert len(colorbars(fig)) == 1
        assert "No WinCLIP+ column (n/a — zero-shot only): the run has no few-shot setting" in " ".join(
            fig.get_supxlabel().split())
        assert clipped_texts(fig) == []
    finally:
        plt.close(fig)


def test_plot_heatmaps_default_colour_bar_label(render):
    fig = render("plot_heatmaps")
    assert [cb.ax.get_xlabel() for cb in colorbars(fig)] == ["anomaly score", "anomaly score"]


def test_scale_maps_wrap_and_render_mathtext(render):
    fig = render("plot_scale_maps")
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 1 + len(_maps())
    rows = [ax.get_subplotspec().rowspan.start for ax in maps]
    assert rows == [0, 0, 0, 0, 1, 1]  # six panels, at most four per row
    renderer = fig.canvas.get_renderer()
    math = [t for t in drawn_texts(fig) if t.get_text().startswith("$")]
    assert any(t.get_text().startswith("$V_{R_2}$") for t in math)
    assert any(t.get_text().startswith("$M_2$ (eq. 1)") for t in math)
    for t in math:
        assert t._preprocess_math(t.get_text())[1]  # drawn as mathtext, not as raw text
        assert t.get_window_extent(renderer).width > 0


@pytest.mark.parametrize(("plain", "math"), [
    ("M_2", "$M_2$"),
    ("M_2 (eq. 1)", "$M_2$ (eq. 1)"),
    ("V_R2", "$V_{R_2}$"),
    ("V_Rp", "$V_{R_p}$"),
    ("V_R12", "$V_{R_{12}}$"),
    ("s_0 and s_12", "$s_0$ and $s_{12}$"),
    ("M_{12}", "$M_{12}$"),
    ("|W_p|", "|$W_p$|"),
    ("zero_shot map", "zero_shot map"),
    ("image_auroc", "image_auroc"),
    ("$V_{R_2}$ already", "$V_{R_2}$ already"),
])
def test_math_label(plain, math):
    assert viz.math_label(plain) == math


def test_scatter_legend_titles(render):
    fig = render("plot_ours_vs_paper_scatter")
    titles = [leg.get_title().get_text() for leg in fig.findobj(Legend)]
    assert sorted(set(titles)) == ["Dataset", "Metric", "Setting"]
    texts = {t.get_text() for t in drawn_texts(fig)}
    assert not {"metric label", "dataset label", "setting"} & texts
    assert "Synthetic (vs MVTec-AD)" in texts and "MVTec-AD" in texts


def test_bars_mark_missing_paper_values(render, tables):
    fig = render("plot_ours_vs_paper")
    sub = tables.comp[tables.comp["dataset"] == "mvtec"]
    missing = sub[sub["paper"].isna()]
    assert len(missing) > 0  # the paper has no pixel AP
    assert missing_marks(fig).count("n/a — not published") == len(missing)
    assert missing_marks(fig).count("n/a — not reported") == int(sub["course_report"].isna().sum()) > 0
    assert "n/a — undefined" not in missing_marks(fig)  # every value of ours is defined
    texts = {t.get_text() for t in drawn_texts(fig)}
    assert viz.COURSE_REPORT_LABEL in texts and "seed report" not in texts
    assert "the paper reports no number for this metric and setting" in fig.get_supxlabel().replace("\n", " ")

    fig = render("plot_per_category")
    pc = tables.per_cat[tables.per_cat["k"] == 1]
    assert missing_marks(fig).count("n/a — not published") == int(pc["paper"].isna().sum()) > 0


@pytest.fixture(scope="module")
def undefined():
    """Comparison tables where some of ours are NaN: MVTec-AD image AUROC at k = 2 in every category (so its mean),
    synthetic pixel AUROC at k = 1, and the cable category's image AUROC at every k."""
    metrics = pd.concat([fake_metrics(), fake_metrics(("mvtec",), ("bottle", "cable"), seed=1)], ignore_index=True)
    for ds, k, cat, metric in (("mvtec", 2, None, "image_auroc"), ("synthetic", 1, None, "pixel_auroc"),
                               ("mvtec", None, "cable", "image_auroc")):
        rows = (metrics["dataset"] == ds) & (metrics["metric"] == metric)
        rows &= (metrics["k"] == k) if k is not None else (metrics["category"] == cat)
        metrics.loc[rows, "value"] = np.nan
    summary, pc = summarize(metrics), per_category(metrics)
    return SimpleNamespace(comp=report.comparison(summary, paper_alias=ALIAS),
                           per_cat=report.per_category_comparison(pc, "mvtec", "image_auroc", summary=summary))


def test_bars_say_where_ours_is_undefined(undefined):
    figs = {"bars": viz.plot_ours_vs_paper(undefined.comp, "mvtec", banner=DEMO_BANNER),
            "categories": viz.plot_per_category(undefined.per_cat, 1, "mvtec", "image_auroc", banner=DEMO_BANNER)}
    try:
        assert missing_marks(figs["bars"]).count("n/a — undefined") == 1  # image AUROC at k = 2
        assert missing_marks(figs["categories"]).count("n/a — undefined") == 1  # the cable category
        for fig in figs.values():
            caption = fig.get_supxlabel().replace("\n", " ")
            assert "n/a — undefined: our value for this" in caption
            assert "without a normal or without an anomalous image" in caption
            assert clipped_texts(fig) == []
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_points_not_drawn_are_listed_with_why(undefined, tables):
    scatter = viz.plot_ours_vs_paper_scatter(undefined.comp, banner=DEMO_BANNER)
    curve = viz.plot_shots_curve(undefined.comp, banner=DEMO_BANNER)
    complete = viz.plot_shots_curve(tables.comp, banner=DEMO_BANNER)
    try:
        note = " ".join(scatter.get_supxlabel().split())
        assert note.startswith("Not drawn (n/a): ")
        assert "MVTec-AD Image AUROC (2-shot): ours undefined" in note
        assert "Synthetic (vs MVTec-AD) Pixel AUROC (1-shot): ours undefined" in note
        assert "MVTec-AD Pixel AP (every setting): paper not published" in note
        assert "Undefined: the metric is undefined on the evaluated test images" in note
        note = " ".join(curve.get_supxlabel().split())  # only the drawn metrics: image and pixel AUROC
        assert "MVTec-AD Image AUROC (2-shot): ours undefined" in note and "Pixel AP" not in note
        assert complete.get_supxlabel() == ""  # nothing is missing: no caption
        assert clipped_texts(scatter) == [] and clipped_texts(curve) == []
    finally:
        for fig in (scatter, curve, complete):
            plt.close(fig)


def test_shots_curve_selection(tables):
    fig = viz.plot_shots_curve(tables.comp, banner=DEMO_BANNER, ks=(1, 2), datasets=["mvtec"],
                               metrics=("image_auroc",))
    try:
        (ax,) = fig.axes
        assert list(ax.get_xticks()) == [1, 2]
        assert set(ax.get_legend_handles_labels()[1]) == {"MVTec-AD: ours", "MVTec-AD: paper"}
        assert clipped_texts(fig) == []
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="nothing to draw"):
        viz.plot_shots_curve(tables.comp, ks=(7,))


def test_compute_bars(render):
    fig = render("plot_compute")
    texts = {t.get_text() for t in drawn_texts(fig)}
    assert {"410 ms", "12.0 ms", "n/a — not measured"} <= texts
    assert "n/a — not measured: the benchmark's table has no time for this stage" in " ".join(
        fig.get_supxlabel().split())
    assert fig.axes[0].get_xlabel() == "time per image (ms)"
    plt.close(viz.plot_compute({"encode": 3.0, "zero-shot": 3.4}))  # seconds when a stage takes >= 1 s
