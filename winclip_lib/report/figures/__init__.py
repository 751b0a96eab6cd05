"""Figures of the notebooks and the report (matplotlib / seaborn), one module per concept.

- :mod:`~winclip_lib.report.figures.style` — the DEMO banner and title band, text fitting, captions, saving PNGs;
- :mod:`~winclip_lib.report.figures.method` — illustrations of the method (windows, one window's pass, prompts);
- :mod:`~winclip_lib.report.figures.maps` — anomaly maps over images, heatmap rows, the reference images;
- :mod:`~winclip_lib.report.figures.results` — ours against the paper (bars, scatter, curve over k, per category,
  ablations) and every dataset beside the published numbers;
- :mod:`~winclip_lib.report.figures.compute` — time per image of each stage.

Plotting only: every number drawn comes from :mod:`winclip_lib` (windows from :mod:`~winclip_lib.core.encoder`, maps
from :class:`~winclip_lib.core.model.Prediction` or :func:`~winclip_lib.experiments.rescore.predict_samples`, tables
from :mod:`~winclip_lib.report.tables`). Every figure function takes ``banner`` (stamped on the figure and written
into the PNG's metadata by :func:`save_figure`), uses matplotlib's constrained layout, and returns the figure (not
shown or closed) so that a notebook displays it. Every text of a figure lies inside it (the banner, titles and
watermark shrink to fit; ``tests/report/test_figures.py`` checks each figure function for clipped text).

The figure functions are re-exported here: ``from winclip_lib.report import figures as viz; viz.plot_heatmaps(...)``.
"""

from winclip_lib.report.figures.compute import plot_compute
from winclip_lib.report.figures.maps import (
    choose_examples,
    heatmap_figure,
    plot_heatmaps,
    plot_reference_images,
    plot_scale_maps,
)
from winclip_lib.report.figures.method import plot_prompt_similarity, plot_window_grid, plot_window_pass
from winclip_lib.report.figures.results import (
    COURSE_REPORT_LABEL,
    NOT_AVAILABLE,
    plot_ablation,
    plot_benchmarks,
    plot_ours_vs_paper,
    plot_ours_vs_paper_scatter,
    plot_per_category,
    plot_shots_curve,
)
from winclip_lib.report.figures.style import (
    BANNER_COLOR,
    figure_banner,
    mask_contours,
    math_label,
    save_figure,
    stamp_banner,
    to_numpy,
)

__all__ = [
    "BANNER_COLOR",
    "COURSE_REPORT_LABEL",
    "NOT_AVAILABLE",
    "stamp_banner",
    "figure_banner",
    "save_figure",
    "to_numpy",
    "mask_contours",
    "math_label",
    "plot_window_grid",
    "plot_window_pass",
    "plot_prompt_similarity",
    "plot_scale_maps",
    "plot_heatmaps",
    "heatmap_figure",
    "choose_examples",
    "plot_reference_images",
    "plot_ours_vs_paper",
    "plot_ours_vs_paper_scatter",
    "plot_shots_curve",
    "plot_per_category",
    "plot_compute",
    "plot_ablation",
    "plot_benchmarks",
]
