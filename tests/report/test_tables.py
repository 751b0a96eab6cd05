"""The report's tables (winclip_lib.report.tables): the paper's numbers, ↑ marks, mean ± std formatting, the DEMO
labels, written tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.datasets.synthetic import make_synthetic
from winclip_lib.evaluation.metrics import METRIC_NAMES
from winclip_lib.experiments import labels
from winclip_lib.experiments.summary import per_category, summarize
from winclip_lib.report import tables as report


def paper_value(paper: pd.DataFrame, source_prefix: str, dataset: str, category: str, k: int, metric: str):
    rows = paper[paper["source"].str.startswith(source_prefix) & (paper["dataset"] == dataset)
                 & (paper["category"] == category) & (paper["k"] == k) & (paper["metric"] == metric)]
    assert len(rows) == 1, (source_prefix, dataset, category, k, metric, rows)
    return rows.iloc[0]


def fake_metrics(values: dict[tuple[str, str, int, int], float] | None = None, datasets=("mvtec",),
                 categories=("bottle", "cable"), shots=(0, 1), seeds=(0, 1), base: float = 0.9) -> pd.DataFrame:
    """A metrics table in the runner's format (fractions), every metric = ``base`` unless given in ``values``
    keyed (dataset, category, k, seed) (all metrics of that row)."""
    rows = []
    for ds in datasets:
        for cat in categories:
            for k in shots:
                for seed in (0,) if k == 0 else seeds:
                    v = (values or {}).get((ds, cat, k, seed), base)
                    rows += [{"dataset": ds, "category": cat, "k": k, "seed": seed, "metric": m, "value": v}
                             for m in METRIC_NAMES]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- paper CSV


def test_paper_csv_shape_and_sources():
    paper = report.paper_results()
    assert list(paper.columns) == ["source", "dataset", "category", "k", "metric", "value", "std", "note"]
    assert set(paper["metric"]) <= set(METRIC_NAMES)
    assert set(paper["dataset"]) == {"mvtec", "visa", "mpdd"}
    assert set(paper["source"]) <= {*report.PAPER_SOURCES, report.COURSE_REPORT}
    assert not paper.duplicated(["source", "dataset", "category", "k", "metric"]).any()
    assert paper["value"].between(0, 100).all()
    assert "pixel_ap" not in set(paper.loc[paper["source"].str.startswith("WinCLIP"), "metric"])


@pytest.mark.parametrize(("source", "dataset", "category", "k", "metric", "value", "std"), [
    ("WinCLIP paper", "mvtec", "mean", 0, "image_auroc", 91.8, None),
    ("WinCLIP paper", "mvtec", "mean", 0, "pixel_aupro", 64.6, None),
    ("WinCLIP paper", "mvtec", "mean", 4, "pixel_auroc", 96.2, 0.3),
    ("WinCLIP paper", "mvtec", "mean", 1, "image_auroc", 93.1, 2.0),
    ("secondary copy", "mvtec", "mean", 2, "image_ap", 97.0, 0.7),
    ("WinCLIP paper", "visa", "mean", 0, "pixel_f1_max", 14.8, None),
    ("WinCLIP paper", "visa", "mean", 4, "image_auroc", 87.3, 1.8),
    ("secondary copy", "visa", "mean", 1, "pixel_f1_max", 41.3, 2.3),
    ("WinCLIP paper", "mvtec", "metal_nut", 0, "pixel_auroc", 61.0, None),
    ("WinCLIP paper", "mvtec", "carpet", 0, "image_auroc", 100.0, None),
    ("WinCLIP paper", "visa", "pcb2", 0, "image_auroc", 51.2, None),
    ("AnomalyCLIP", "mpdd", "mean", 0, "pixel_aupro", 48.9, None),
    ("2024 course report", "mvtec", "screw", 1, "image_auroc", 81.5, None),
    ("2024 course report", "mvtec", "mean", 4, "image_auroc", 95.3, None),
])
def test_paper_numbers_spot_checks(source, dataset, category, k, metric, value, std):
    row = paper_value(report.paper_results(), source, dataset, category, k, metric)
    assert row["value"] == pytest.approx(value)
    if std is None:
        assert np.isnan(row["std"])
    else:
        assert row["std"] == pytest.approx(std)


def test_the_ablation_rows_are_apart_and_marked_secondary():
    abl = report.paper_ablations()
    assert set(abl["ablation"]) == {"cpe", "dense", "fewshot", "defect_states"}
    assert (abl["source"] == "secondary copy of the paper's table").all()
    assert abl["note"].str.contains("not checked against the paper's text").all()
    cpe = abl[abl["ablation"] == "cpe"].set_index("row")["value"]
    assert cpe.to_dict() == {"one_class": 34.2, "two_class": 74.0, "states": 89.8, "templates": 90.8,
                             "multicrop": 91.8}
    dense = abl[(abl["ablation"] == "dense") & (abl["metric"] == "pixel_auroc")].set_index("row")["value"]
    assert dense["no_harmonic"] == pytest.approx(85.1 - 3.6) and dense["no_image_term"] == pytest.approx(85.1 - 3.1)
    assert not report.paper_results()["category"].str.startswith("ablation").any()
    csv_text = (Path(report.__file__).parent / "paper_results.csv").read_text()
    assert "issue" not in csv_text.lower() and "seed report" not in csv_text


def test_paper_csv_counts():
    paper = report.paper_results()
    per_cat = paper[paper["category"] != "mean"]
    assert len(per_cat[(per_cat["dataset"] == "mvtec") & per_cat["source"].str.startswith("WinCLIP")]) == 30
    assert len(per_cat[(per_cat["dataset"] == "visa")]) == 12
    assert len(per_cat[per_cat["source"] == report.COURSE_REPORT]) == 45
    means = paper[(paper["category"] == "mean") & paper["source"].isin(report.PAPER_SOURCES)]
    assert len(means[means["dataset"] == "mvtec"]) == 24 and len(means[means["dataset"] == "visa"]) == 24
    few = means[(means["k"] > 0) & means["metric"].isin(["image_ap", "image_f1_max", "pixel_f1_max"])]
    assert (few["source"] == "secondary copy of the paper's table").all() and len(few) == 18


# ------------------------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize(("args", "kw", "text"), [
    ((93.14, 2.04), {}, "93.1 ± 2.0"),
    ((91.8, None), {}, "91.8"),
    ((91.8, float("nan")), {}, "91.8"),
    ((95.25, 0.3), {"up": True}, "95.2 ± 0.3 ↑"),
    ((float("nan"),), {}, "—"),
    ((100.0, 0.0), {"digits": 2}, "100.00 ± 0.00"),
])
def test_format_value(args, kw, text):
    assert report.format_value(*args, **kw) == text


def test_comparison_marks_up_where_ours_at_or_above_paper():
    # mvtec k=0 image AUROC: paper 91.8; bottle 0.92 + cable 0.916 -> 91.8 (equal as displayed: ↑)
    metrics = fake_metrics({("mvtec", "bottle", 0, 0): 0.92, ("mvtec", "cable", 0, 0): 0.916}, shots=(0,))
    comp = report.comparison(summarize(metrics))
    row = comp[(comp["k"] == 0) & (comp["metric"] == "image_auroc")].iloc[0]
    assert row["ours"] == pytest.approx(91.8)
    assert row["paper"] == pytest.approx(91.8) and row["course_report"] == pytest.approx(90.4)
    assert bool(row["at_or_above"])
    ap = comp[(comp["k"] == 0) & (comp["metric"] == "image_ap")].iloc[0]  # 91.8 < 96.5
    assert not bool(ap["at_or_above"]) and ap["delta"] == pytest.approx(91.8 - 96.5)
    pix_ap = comp[comp["metric"] == "pixel_ap"].iloc[0]  # the paper has no pixel AP: no mark
    assert np.isnan(pix_ap["paper"]) and not bool(pix_ap["at_or_above"])
    table = report.comparison_table(comp)
    cell = table[(table["Metric"] == "Image AUROC")].iloc[0]
    assert cell["Ours"] == "91.8 ↑" and cell["Paper"] == "91.8" and cell["2024 course report"] == "90.4"
    assert table[table["Metric"] == "Image AP"].iloc[0]["Ours"] == "91.8"


def test_comparison_mean_std_over_seeds():
    # k=1: seed 0 -> categories 0.90, 0.96 (mean 0.93); seed 1 -> 0.95, 0.97 (mean 0.96): 94.5 ± 1.5 (ddof 0)
    values = {("mvtec", "bottle", 1, 0): 0.90, ("mvtec", "cable", 1, 0): 0.96,
              ("mvtec", "bottle", 1, 1): 0.95, ("mvtec", "cable", 1, 1): 0.97}
    comp = report.comparison(summarize(fake_metrics(values)))
    row = comp[(comp["k"] == 1) & (comp["metric"] == "image_auroc")].iloc[0]
    assert row["ours"] == pytest.approx(94.5) and row["ours_std"] == pytest.approx(1.5)
    assert row["n_seeds"] == 2 and row["paper"] == pytest.approx(93.1) and row["paper_std"] == pytest.approx(2.0)
    text = report.comparison_table(comp)
    one = text[(text["Setting"] == "1-shot") & (text["Metric"] == "Image AUROC")].iloc[0]
    assert one["Ours"] == "94.5 ± 1.5 ↑" and one["Paper"] == "93.1 ± 2.0" and one["Dataset"] == "MVTec-AD"
    zero = text[(text["Setting"] == "0-shot") & (text["Metric"] == "Image AUROC")].iloc[0]
    assert "±" not in zero["Ours"]  # zero-shot: one run, no std


def test_comparison_order_and_paper_alias():
    metrics = pd.concat([fake_metrics(datasets=("mpdd",), categories=("tubes",), shots=(0,)),
                         fake_metrics(datasets=("synthetic",), categories=("disc",))])
    comp = report.comparison(summarize(metrics), paper_alias={"synthetic": "mvtec"})
    assert list(dict.fromkeys(comp["dataset"])) == ["mpdd", "synthetic"]
    assert list(comp[(comp["dataset"] == "mpdd")]["metric"]) == list(METRIC_NAMES)
    mpdd = comp[(comp["dataset"] == "mpdd") & (comp["metric"] == "image_auroc")].iloc[0]
    assert mpdd["paper"] == pytest.approx(63.6) and mpdd["paper_source"].startswith("AnomalyCLIP")
    assert mpdd["course_report"] == pytest.approx(61.5)
    syn = comp[(comp["dataset"] == "synthetic") & (comp["k"] == 1) & (comp["metric"] == "image_auroc")].iloc[0]
    assert syn["paper"] == pytest.approx(93.1) and syn["paper_dataset"] == "mvtec"
    table = report.comparison_table(comp, {"synthetic": "mvtec"})
    assert "Synthetic (vs MVTec-AD numbers)" in set(table["Dataset"])
    plain = report.comparison(summarize(metrics))  # without the alias: no published numbers for "synthetic"
    assert plain[plain["dataset"] == "synthetic"]["paper"].isna().all()


def test_per_category_tables():
    values = {("mvtec", "bottle", 0, 0): 0.995, ("mvtec", "cable", 0, 0): 0.80,
              ("mvtec", "bottle", 1, 0): 0.99, ("mvtec", "bottle", 1, 1): 1.0}
    metrics = fake_metrics(values, categories=("cable", "bottle"))
    summary, pc = summarize(metrics), per_category(metrics)
    comp = report.per_category_comparison(pc, "mvtec", "image_auroc", summary=summary)
    assert list(dict.fromkeys(comp["category"])) == ["bottle", "cable", "mean"]  # canonical MVTec order
    bottle0 = comp[(comp["category"] == "bottle") & (comp["k"] == 0)].iloc[0]
    assert bottle0["paper"] == pytest.approx(99.2) and bottle0["course_report"] == pytest.approx(98.6)
    assert bool(bottle0["at_or_above"]) and np.isnan(bottle0["ours_std"])
    bottle1 = comp[(comp["category"] == "bottle") & (comp["k"] == 1)].iloc[0]
    assert bottle1["ours"] == pytest.approx(99.5) and bottle1["ours_std"] == pytest.approx(0.5)
    table = report.per_category_table(comp)
    assert list(table.columns) == ["Category", "0-shot ours", "0-shot paper", "0-shot 2024 course report",
                                   "1-shot ours", "1-shot paper", "1-shot 2024 course report"]
    row = table.set_index("Category")
    assert row.loc["bottle", "0-shot ours"] == "99.5 ↑" and row.loc["cable", "0-shot ours"] == "80.0"
    assert row.loc["bottle", "1-shot ours"] == "99.5 ± 0.5" and row.loc["bottle", "1-shot paper"] == "—"
    assert row.loc["mean", "0-shot paper"] == "91.8" and row.loc["mean", "1-shot 2024 course report"] == "93.7"
    pixel = report.per_category_table(report.per_category_comparison(pc, "mvtec", "pixel_auroc", summary=summary))
    assert "0-shot 2024 course report" not in pixel.columns  # the course report has no pixel numbers


# ---------------------------------------------------------------------------------------------------- banners


def test_labels(tmp_path):
    assert labels.DEMO_BANNER == "DEMO — random weights, synthetic data: not a reproduction"
    assert labels.run_label({"is_random": True, "synthetic_data": {"synthetic": True}}) == labels.DEMO_BANNER
    assert labels.run_label({"is_random": False, "synthetic_data": {"mvtec": False}}) is None
    assert labels.run_label({"is_random": True, "synthetic_data": {}}) == "DEMO — random weights: not a reproduction"
    assert "synthetic data" in labels.run_label({"is_random": False, "synthetic_data": {"x": True}})
    assert labels.run_label(None) is not None  # unknown provenance is never presented as a reproduction
    data = make_synthetic(tmp_path / "syn", categories=("disc",), n_train=1, n_test_good=1, n_test_bad=1, size=32)
    assert labels.label_for(True, {"synthetic": data}) == labels.DEMO_BANNER
    assert labels.label_for(False, {"mvtec": tmp_path / "nothing"}) is None
    # the tiny test model is named where the caller names the model (the notebooks)
    tiny = "DEMO — tiny model, random weights, synthetic data: not a reproduction"
    assert labels.label_for(True, {"synthetic": data}, model_name=TINY_MODEL) == tiny
    assert labels.label_for(True, {"synthetic": data}, model_name="ViT-B-16-plus-240") == labels.DEMO_BANNER
    assert labels.label_for(False, {"mvtec": tmp_path / "nothing"}, model_name=TINY_MODEL) == (
        "DEMO — tiny model: not a reproduction")
    run = {"is_random": True, "synthetic_data": {"synthetic": True}, "model_name": TINY_MODEL}
    assert labels.run_label(run) == labels.DEMO_BANNER and labels.run_label(run, name_model=True) == tiny
    assert labels.run_label({**run, "model_name": "ViT-B-16-plus-240"}, name_model=True) == labels.DEMO_BANNER


def test_markdown_and_write_report(tmp_path):
    metrics = fake_metrics(datasets=("mvtec", "mpdd"), categories=("bottle", "tubes"))
    metrics = metrics[~((metrics["dataset"] == "mvtec") & (metrics["category"] == "tubes"))]
    metrics = metrics[~((metrics["dataset"] == "mpdd") & (metrics["category"] == "bottle"))]
    md = report.markdown_table(pd.DataFrame({"a": ["x|y"], "b": [1.5]}), "T", labels.DEMO_BANNER)
    assert md.splitlines()[0] == "### T" and f"> **{labels.DEMO_BANNER}**" in md
    assert "x\\|y" in md and "|---|---:|" in md

    files = report.write_report(summarize(metrics), per_category(metrics), tmp_path, banner=labels.DEMO_BANNER)
    expected = {"comparison", "comparison_values", "per_category_mvtec_image_auroc", "per_category_mvtec_pixel_auroc",
                "per_category_mpdd_image_auroc", "per_category_mpdd_pixel_auroc", "per_category_all", "report"}
    assert set(files) == expected
    for name, path in files.items():
        assert path.is_file(), name
        if path.suffix == ".md":
            assert labels.DEMO_BANNER in path.read_text(encoding="utf-8"), name
            csv = pd.read_csv(path.with_suffix(".csv")) if name != "report" else None
            if csv is not None:
                assert (csv["banner"] == labels.DEMO_BANNER).all()
    values = pd.read_csv(files["comparison_values"])
    assert (values["banner"] == labels.DEMO_BANNER).all() and {"ours", "paper", "at_or_above"} <= set(values.columns)
    main = files["comparison"].read_text(encoding="utf-8")
    assert "| MVTec-AD | 0-shot | Image AUROC | 90.0 | 91.8 | 90.4 |" in main
    assert "| MVTec-AD | 1-shot | Pixel F1-max | 90.0 ± 0.0 ↑ | 55.9 ± 2.7 | — |" in main

    real = report.write_report(summarize(metrics), per_category(metrics), tmp_path / "real", banner=None)
    assert "DEMO" not in real["report"].read_text(encoding="utf-8")
    assert "banner" not in pd.read_csv(real["comparison"].with_suffix(".csv")).columns



# ------------------------------------------------------------------ every dataset beside the published numbers


def test_published_reference_joins_the_paper_and_the_later_papers_once_each():
    ref = report.published_reference()
    assert set(ref["source"]) == set(report.PUBLISHED_SOURCES.values())
    assert not ref.duplicated(["dataset", "k", "metric", "source"]).any()
    assert {"btad", "ksdd", "dagm", "dtd", "mpdd", "mvtec", "visa"} == set(ref["dataset"])
    row = ref.set_index(["dataset", "k", "metric", "source"])
    anomalyclip, resad = "AnomalyCLIP (ICLR 2024) Table 1, zero-shot", "ResAD (NeurIPS 2024) Table 1, 224 px"
    # MPDD is in both CSVs: taken once, from published_results.csv, with its check (not confirmed)
    assert row.loc[("mpdd", 0, "pixel_aupro", anomalyclip), "value"] == 48.9
    assert not row.loc[("mpdd", 0, "pixel_aupro", anomalyclip), "confirmed"]
    assert row.loc[("btad", 4, "image_auroc", resad), "value"] == 87.2 and row.loc[("btad", 4, "image_auroc", resad),
                                                                                   "confirmed"]
    paper = "WinCLIP paper (CVPR 2023)"
    assert row.loc[("mvtec", 1, "image_auroc", paper), "confirmed"]  # Table 1
    assert not row.loc[("mvtec", 1, "image_ap", paper), "confirmed"]  # the secondary copy's few-shot cell
    assert row.loc[("visa", 0, "pixel_f1_max", paper), "value"] == 14.8
    assert report.COURSE_REPORT not in set(ref["source"])


def test_missing_reasons_name_why():
    ref = report.published_reference()
    assert report.missing_reason(ref, "btad", 2, "image_auroc") == ""
    assert report.missing_reason(ref, "btad", 1, "image_auroc") == "n/a — published at 0-shot, 2-shot and 4-shot only"
    assert report.missing_reason(ref, "btad", 2, "image_ap") == "n/a — ResAD reports no Image AP"
    assert report.missing_reason(ref, "dagm", 0, "pixel_f1_max") == "n/a — AnomalyCLIP reports no Pixel F1-max"
    assert report.missing_reason(ref, "dagm", 4, "image_auroc") == "n/a — published at 0-shot only"
    assert report.missing_reason(ref, "mvtec", 1, "pixel_ap") == "n/a — the WinCLIP paper reports no Pixel AP"
    assert report.missing_reason(ref, "realiad", 0, "image_auroc") == "n/a — no published WinCLIP number"
    assert report.missing_reason(ref, "folder", 0, "image_auroc") == "n/a — your own images: nothing published"


def _benchmark_summary() -> pd.DataFrame:
    metrics = pd.concat([fake_metrics(datasets=("btad",), categories=("01", "02"), shots=(0, 2), base=0.8),
                         fake_metrics(datasets=("synthetic",), categories=("disc",), shots=(0, 2), base=0.7),
                         fake_metrics(datasets=("folder",), categories=("parts",), shots=(0, 2), base=0.6)],
                        ignore_index=True)
    no_masks = (metrics["dataset"] == "folder") & metrics["metric"].str.startswith("pixel")
    metrics.loc[no_masks, "value"] = np.nan  # a folder without masks: image metrics only
    return summarize(metrics)


def test_benchmark_comparison_puts_the_preferred_published_number_beside_ours():
    comp = report.benchmark_comparison(_benchmark_summary(), paper_alias={"synthetic": "mvtec"})
    assert list(dict.fromkeys(comp["dataset"])) == ["synthetic", "btad", "folder"]  # the report's order
    row = comp.set_index(["dataset", "k", "metric"])
    assert row.loc[("btad", 0, "image_auroc"), "ours"] == pytest.approx(80.0)
    assert row.loc[("btad", 0, "image_auroc"), "published"] == 68.2
    assert row.loc[("btad", 2, "pixel_auroc"), "published_source"] == "ResAD (NeurIPS 2024) Table 1, 224 px"
    assert row.loc[("btad", 2, "pixel_aupro"), "published_missing"] == "n/a — ResAD reports no Pixel PRO"
    assert row.loc[("synthetic", 0, "image_auroc"), "published"] == 91.8  # compared with MVTec-AD's numbers
    assert row.loc[("synthetic", 0, "image_auroc"), "paper_dataset"] == "mvtec"
    assert np.isnan(row.loc[("folder", 2, "pixel_auroc"), "ours"])
    assert row.loc[("folder", 2, "pixel_auroc"), "ours_missing"] == "n/a — no masks: image metrics only"
    assert row.loc[("folder", 2, "image_auroc"), "ours_missing"] == ""
    assert row.loc[("btad", 2, "image_auroc"), "ours_std"] == pytest.approx(0.0)
    assert np.isnan(row.loc[("btad", 0, "image_auroc"), "ours_std"])  # zero-shot runs once


def test_benchmark_table_rows_of_ours_then_each_published_source():
    table = report.benchmark_table(_benchmark_summary(), paper_alias={"synthetic": "mvtec"})
    assert list(table.columns[:3]) == ["Dataset", "Setting", "Source"] and "Pixel PRO" in table.columns
    keys = list(zip(table["Dataset"], table["Setting"], table["Source"], strict=True))
    assert keys == [
        ("Synthetic (vs MVTec-AD numbers)", "0-shot", "ours"),
        ("Synthetic (vs MVTec-AD numbers)", "0-shot", "WinCLIP paper (CVPR 2023)"),
        ("Synthetic (vs MVTec-AD numbers)", "2-shot", "ours"),
        ("Synthetic (vs MVTec-AD numbers)", "2-shot", "WinCLIP paper (CVPR 2023)"),
        ("BTAD", "0-shot", "ours"), ("BTAD", "0-shot", "AnomalyCLIP (ICLR 2024) Table 1, zero-shot"),
        ("BTAD", "2-shot", "ours"), ("BTAD", "2-shot", "ResAD (NeurIPS 2024) Table 1, 224 px"),
        ("Your folder", "0-shot", "ours"), ("Your folder", "2-shot", "ours")]
    cell = table.set_index(["Dataset", "Setting", "Source"])
    assert cell.loc[("BTAD", "0-shot", "ours"), "Image AUROC"] == "80.0"
    assert cell.loc[("BTAD", "2-shot", "ours"), "Image AUROC"] == "80.0 ± 0.0"
    assert cell.loc[("BTAD", "0-shot", "AnomalyCLIP (ICLR 2024) Table 1, zero-shot"), "Image AP"] == "70.9*"
    assert cell.loc[("BTAD", "0-shot", "AnomalyCLIP (ICLR 2024) Table 1, zero-shot"), "Image F1-max"] == "—"
    assert cell.loc[("BTAD", "2-shot", "ResAD (NeurIPS 2024) Table 1, 224 px"), "Pixel AUROC"] == "95.8"
    paper = ("Synthetic (vs MVTec-AD numbers)", "2-shot", "WinCLIP paper (CVPR 2023)")
    assert cell.loc[paper, "Image AUROC"] == "94.4 ± 1.3" and cell.loc[paper, "Image AP"] == "97.0 ± 0.7*"
    assert cell.loc[("Your folder", "0-shot", "ours"), "Pixel AUROC"] == "—"
    assert list(report.benchmark_table(_benchmark_summary(), shots=[2])["Setting"].unique()) == ["2-shot"]
