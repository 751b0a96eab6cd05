"""The files of ``winclip predict``: ``scores.csv``, ``errors.csv``, ``maps.npz`` and ``run.json``, written atomically
into an output folder that is new, empty, or an earlier output of ``winclip predict``."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from winclip_lib.experiments.files import CSV_OPTIONS, atomic_write_bytes, atomic_write_text
from winclip_lib.inspection.scoring import PREDICT_SETTINGS, PredictionRun

__all__ = ["DEFAULT_OUT", "ERRORS_COLUMNS", "OUTPUT_KIND", "prepare_out_dir", "run_info", "write_outputs"]

#: Default output folder of ``winclip predict``.
DEFAULT_OUT = "winclip-predictions"
#: ``run.json``'s ``kind`` in an output folder (a folder holding it may be written again).
OUTPUT_KIND = "winclip-predict"
ERRORS_COLUMNS = ("path", "role", "problem", "reason")


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Make ``out_dir`` ready for a run's outputs: new, empty, or an earlier output of ``winclip predict`` (its
    old overlays are removed). Any other non-empty folder raises ``FileExistsError`` (nothing of yours is ever
    overwritten)."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            kind = json.loads((out / "run.json").read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind != OUTPUT_KIND:
            raise FileExistsError(f"--out {out} exists and holds other files; winclip predict writes into a new or "
                                  "empty folder, or into one of its own earlier outputs: choose another --out")
        shutil.rmtree(out / "overlays", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(**CSV_OPTIONS)


def write_outputs(run: PredictionRun, out_dir: str | Path) -> dict[str, Path]:
    """Write ``scores.csv`` (:meth:`PredictionRun.table`; a leading ``banner`` column holds the DEMO label when
    there is one), ``errors.csv`` (:data:`ERRORS_COLUMNS`), ``maps.npz`` (the (S, S) final map of each image under
    its name, with ``_names`` / ``_paths`` the index and ``_label``) and ``run.json``. Returns the paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    atomic_write_text(files["run"], json.dumps(run_info(run), indent=2, sort_keys=True) + "\n")
    return files


def run_info(run: PredictionRun) -> dict[str, Any]:
    """What ``run.json`` records: the settings, the mode and references, the threshold, the counts, the label."""
    import open_clip

    import winclip_lib

    config = run.config.to_dict()
    settings = {name: config[name] for name in PREDICT_SETTINGS}
    n = len(run.images)
    return {
        "kind": OUTPUT_KIND,
        "format": 1,
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
