"""The files of ``winclip predict``: ``scores.csv``, ``errors.csv``, ``maps.npz`` and ``run.json``, written atomically
into an output folder that is new, empty, or an earlier output of ``winclip predict``.

**``run.json`` is written first and last.** :func:`start_outputs` removes the files of an earlier output and writes
``run.json`` with ``status`` ``running`` (and the run's :func:`prediction_identity`: the inputs as given, the class
name, the threshold, the settings); the pipeline writes it again at the very end with ``complete`` — or
``interrupted`` after Ctrl-C, ``failed: <reason>`` after an error. So a folder whose ``run.json`` does not say
``complete`` is never mistaken for a finished one, and the same command run again completes it: the images already
encoded are read from the feature cache.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.files import (
    CSV_OPTIONS,
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
    read_json_object,
    visible_entries,
)
from winclip_lib.inspection.scoring import PREDICT_SETTINGS, PredictionRun

__all__ = ["DEFAULT_OUT", "ERRORS_COLUMNS", "OUTPUT_FILES", "OUTPUT_KIND", "check_out_dir", "prediction_identity",
           "run_info", "start_outputs", "write_outputs", "write_run_json"]

#: Default output folder of ``winclip predict``.
DEFAULT_OUT = "winclip-predictions"
#: ``run.json``'s ``kind`` in an output folder (a folder holding it may be written again).
OUTPUT_KIND = "winclip-predict"
ERRORS_COLUMNS = ("path", "role", "problem", "reason")
#: The files of an output besides ``run.json`` (and the ``overlays/`` folder): removed when a new run starts there.
OUTPUT_FILES = ("scores.csv", "errors.csv", "maps.npz", "score_histogram.png", "report.html")


def _specs(specs: Sequence[str | Path] | str | Path | None) -> list[str]:
    items = [] if specs is None else [specs] if isinstance(specs, str | Path) else list(specs)
    return [os.path.abspath(os.path.expanduser(str(s))) for s in items]


def prediction_identity(cfg: RunConfig, class_name: str, images: Sequence[str | Path] | str | Path,
                        normal: Sequence[str | Path] | str | Path | None, threshold: float | None) -> dict[str, Any]:
    """What makes two ``predict`` runs the same: the inputs as given (absolute), the class name, the threshold and
    the settings of :data:`~winclip_lib.inspection.scoring.PREDICT_SETTINGS` that change results."""
    config = cfg.to_dict()
    results = set(cfg.result_settings())
    return {"images": _specs(images), "normal": _specs(normal), "class_name": class_name, "threshold": threshold,
            "settings": {n: config[n] for n in PREDICT_SETTINGS if n in results}}


def check_out_dir(out_dir: str | Path) -> dict[str, Any] | None:
    """Check, before any work and without writing anything there, that ``out_dir`` can take an output: a folder that
    can be written (:func:`~winclip_lib.experiments.files.check_output_dir`) and that is new, empty (hidden files
    aside), or an earlier output of ``winclip predict``. Returns that earlier output's ``run.json`` (None for a new
    or empty folder).

    Raises:
        WriteError: a file in the way, a read-only or full file system, no permission.
        FileExistsError: the folder holds other files (nothing of yours is ever overwritten).
    """
    out = check_output_dir(out_dir, "--out")
    if not visible_entries(out):
        return None
    info = read_json_object(out / "run.json")
    if info is None or info.get("kind") != OUTPUT_KIND:
        raise FileExistsError(f"--out {out} exists and holds other files; winclip predict writes into a new or "
                              "empty folder, or into one of its own earlier outputs: choose another --out")
    return info


def start_outputs(out_dir: str | Path, identity: dict[str, Any]) -> Path:
    """Begin an output in a folder that :func:`check_out_dir` accepted: the files of an earlier output are removed
    (:data:`OUTPUT_FILES`, ``overlays/``) and ``run.json`` says ``running``. Returns the folder."""
    out = Path(out_dir).expanduser()
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "overlays", ignore_errors=True)
    write_run_json(out, {"kind": OUTPUT_KIND, "format": 1, "status": "running", "identity": identity})
    return out


def write_run_json(out_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write ``run.json`` (atomically); returns its path."""
    path = Path(out_dir) / "run.json"
    atomic_write_text(path, json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    return path


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(**CSV_OPTIONS)


def write_outputs(run: PredictionRun, out_dir: str | Path) -> dict[str, Path]:
    """Write ``scores.csv`` (:meth:`PredictionRun.table`; a leading ``banner`` column holds the DEMO label when
    there is one), ``errors.csv`` (:data:`ERRORS_COLUMNS`), ``maps.npz`` (the (S, S) final map of each image under
    its name, with ``_names`` / ``_paths`` the index and ``_label``). Returns the paths by name, ``run`` the
    ``run.json`` that :func:`start_outputs` began and the pipeline finishes (:func:`run_info`)."""
    out = Path(out_dir)
    table = run.table()
    if run.label:
        table.insert(0, "banner", run.label)
    files = {"scores": out / "scores.csv", "errors": out / "errors.csv", "maps": out / "maps.npz",
             "run": out / "run.json"}
    atomic_write_text(files["scores"], _csv(table))
    errors = pd.DataFrame([vars(s) for s in run.skipped], columns=list(ERRORS_COLUMNS))
    atomic_write_text(files["errors"], _csv(errors))
    buf = io.BytesIO()
    arrays = {n: run.maps[i].astype(np.float32) for i, n in enumerate(run.names)}
    np.savez_compressed(buf, **arrays, _names=np.array(run.names, dtype=str),
                        _paths=np.array([str(p) for p in run.images], dtype=str),
                        _label=np.array(run.label or "", dtype=str))
    atomic_write_bytes(files["maps"], buf.getvalue())
    return files


def run_info(run: PredictionRun, identity: dict[str, Any] | None = None, status: str = "complete"
             ) -> dict[str, Any]:
    """What ``run.json`` records at the end: the status, the identity (:func:`prediction_identity`), the settings,
    the mode and references, the threshold, the counts, the label."""
    import open_clip

    import winclip_lib

    config = run.config.to_dict()
    settings = {name: config[name] for name in PREDICT_SETTINGS}
    n = len(run.images)
    return {
        "kind": OUTPUT_KIND,
        "format": 1,
        "status": status,
        "identity": identity,
        "class_name": run.class_name,
        "mode": run.mode,
        "k": run.k,
        "references": [str(p) for p in run.references],
        "excluded_from_images": [str(p) for p in run.excluded],
        "threshold": run.threshold.as_dict(),
        "n_scored": n,
        "n_skipped": len(run.skipped),
        "n_anomalous": sum(d == "anomalous" for d in run.decisions),
        "color_range": list(run.color_range()),
        "settings": settings,
        "precision_used": run.precision,
        "backbone": run.backbone,
        "weights": run.weights,
        "is_random": run.is_random,
        "label": run.label,
        "encode_counts": run.encode_counts,
        "seconds": round(run.seconds, 3),
        "seconds_per_image": round(run.seconds / n, 4) if n else None,
        "stages": run.stages,
        "versions": {"winclip_lib": winclip_lib.__version__, "torch": torch.__version__,
                     "open_clip": open_clip.__version__},
    }
