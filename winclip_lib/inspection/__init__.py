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

import importlib
from typing import Any

#: Where each name of the package lives; a module is imported when one of its names is first used (the figures pull
#: in matplotlib and seaborn, which a command that only reads the constants of the inputs need not wait for).
_HOMES = {
    "plot_overlay_grid": "figures", "plot_score_histogram": "figures", "plot_what_winclip_saw": "figures",
    "NoInputError": "inputs", "collect_inputs": "inputs",
    "Inspection": "pipeline", "inspect_images": "pipeline",
    "PredictionRun": "scoring", "explain_image": "scoring", "predict_images": "scoring",
    "THRESHOLD_RULE": "threshold", "Threshold": "threshold", "choose_threshold": "threshold",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
