"""``winclip predict``: scoring your own images and writing an inspection page — one package, one module per step.

- :mod:`~winclip_lib.inspection.inputs` — finding the files (files, folders, glob patterns), checking each one, the
  skipped files and why;
- :mod:`~winclip_lib.inspection.threshold` — the decision threshold (given, or the references' leave-one-out rule);
- :mod:`~winclip_lib.inspection.scoring` — encoding through the feature cache and scoring (WinCLIP or WinCLIP+);
- :mod:`~winclip_lib.inspection.outputs` — ``scores.csv``, ``errors.csv``, ``maps.npz``, ``run.json``;
- :mod:`~winclip_lib.inspection.figures` — the overlay of each image and the figures of a run;
- :mod:`~winclip_lib.inspection.page` — ``report.html``, rendered from the template ``templates/report.html.j2``;
- :mod:`~winclip_lib.inspection.pipeline` — :func:`inspect_images`, all of it in one call (the command, notebook 07).

The command line is :mod:`winclip_lib.cli.predict`.
"""

from winclip_lib.inspection.figures import plot_overlay_grid, plot_score_histogram, plot_what_winclip_saw
from winclip_lib.inspection.inputs import NoInputError, collect_inputs
from winclip_lib.inspection.pipeline import Inspection, inspect_images
from winclip_lib.inspection.scoring import PredictionRun, explain_image, predict_images
from winclip_lib.inspection.threshold import THRESHOLD_RULE, Threshold, choose_threshold

__all__ = [
    "THRESHOLD_RULE",
    "Inspection",
    "NoInputError",
    "PredictionRun",
    "Threshold",
    "choose_threshold",
    "collect_inputs",
    "explain_image",
    "inspect_images",
    "plot_overlay_grid",
    "plot_score_histogram",
    "plot_what_winclip_saw",
    "predict_images",
]
