"""One table of display names: every metric has a label, and the printed summary, the report's tables and the
figures all name the metrics with it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from tests.report.test_tables import fake_metrics  # noqa: E402
from winclip_lib.cli.summary import format_summary  # noqa: E402
from winclip_lib.evaluation.metrics import METRIC_NAMES  # noqa: E402
from winclip_lib.experiments.summary import summarize  # noqa: E402
from winclip_lib.report import figures as viz  # noqa: E402
from winclip_lib.report import tables as report  # noqa: E402
from winclip_lib.report.names import METRIC_LABELS, dataset_label, metric_label, setting_label  # noqa: E402


def test_every_metric_has_one_label():
    assert set(METRIC_LABELS) == set(METRIC_NAMES)
    assert len(set(METRIC_LABELS.values())) == len(METRIC_LABELS)
    assert metric_label("pixel_aupro") == "Pixel PRO" and metric_label("ms_per_image") == "ms_per_image"
    assert setting_label(4) == "4-shot" and dataset_label("synthetic", {"synthetic": "mvtec"}) == (
        "Synthetic (vs MVTec-AD numbers)")
    assert report.METRIC_LABELS is METRIC_LABELS  # the tables' name is the same table


def test_the_summary_the_tables_and_the_figures_use_the_same_labels():
    summary = summarize(fake_metrics())
    printed = format_summary(summary)
    comp = report.comparison(summary, paper_alias={})
    table = report.comparison_table(comp)
    assert set(table["Metric"]) == set(METRIC_LABELS.values())
    for label in METRIC_LABELS.values():
        assert label in printed
    assert "pixel_aupro" not in printed
    fig = viz.plot_shots_curve(comp, metrics=("pixel_aupro",))
    try:
        assert fig.axes[0].get_ylabel() == "Pixel PRO (%)"
    finally:
        plt.close(fig)
