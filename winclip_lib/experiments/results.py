"""What a run leaves on disk, and reading it back.

Layout of a run folder::

    metrics.csv   dataset, category, k, seed, metric, value          (value: fraction 0..1; k = 0 rows have seed 0)
    scores.csv    dataset, category, k, seed, image, label, defect, score    (image: path relative to the root)
    summary.csv   dataset, k, metric, mean, std, n_seeds, n_categories       (see summary.summarize)
    run.json      status, config, backbone, weights, is_random, label, versions, encode counts, units
    parts/<dataset>/<category>/<unit key>.{metrics.csv,scores.csv,done.json}

The three tables exist only for a complete run. Those of a demo run (random weights or synthetic data) start with a
``banner`` column holding the DEMO label on every row, so that nobody reads them as a reproduction; readers of this
package drop it. ``run.json`` is written first (``status`` ``running``) and last: ``complete``, ``incomplete``
(stopped by ``max_units``), ``interrupted`` (Ctrl-C) or ``failed: <reason>`` (e.g. ``failed: cannot write …: no
space left on device``); a rerun of the same command resumes. Its ``kind`` is :data:`RUN_KIND`.

**A run folder holds one run.** :func:`check_run_folder` lets a run write only into a new or empty folder, or into
one holding a run of the same identity (the same datasets, categories and result settings: it resumes); a folder
holding anything else — another run, the output of ``winclip predict``, your own files — is refused before any work.

A unit is done when its marker exists and its part files match the checksums in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.files import (
    CSV_OPTIONS,
    atomic_write_text,
    file_digest,
    read_csv,
    read_json_object,
    visible_entries,
)
from winclip_lib.experiments.labels import run_label
from winclip_lib.experiments.summary import METRICS_COLUMNS, SCORES_COLUMNS, per_category
from winclip_lib.experiments.units import Unit

__all__ = [
    "BANNER_COLUMN",
    "RUN_KIND",
    "TABLES",
    "RunResult",
    "check_run_folder",
    "find_run",
    "gather_parts",
    "is_complete_run",
    "load_results",
    "part_paths",
    "read_marker",
    "unit_done",
    "write_run_json",
    "write_tables",
    "write_unit",
]

TABLES = ("metrics.csv", "scores.csv", "summary.csv")
#: ``run.json``'s ``kind`` in a run folder.
RUN_KIND = "winclip-run"
#: The leading column of a demo run's tables.
BANNER_COLUMN = "banner"


@dataclass
class RunResult:
    """The tables of a run and its ``run.json`` (``info``)."""

    metrics: pd.DataFrame
    scores: pd.DataFrame
    summary: pd.DataFrame
    info: dict[str, Any]
    out_dir: Path

    @property
    def complete(self) -> bool:
        return self.info.get("status") == "complete"

    @property
    def is_random(self) -> bool:
        return bool(self.info.get("is_random"))

    @property
    def label(self) -> str | None:
        """"DEMO — random weights …" when the numbers are not a reproduction."""
        return run_label(self.info)

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.info["config"])

    @property
    def reused_everything(self) -> bool:
        """True when the last call found every unit already done (nothing was computed)."""
        units = self.info.get("units", [])
        return bool(units) and all(u.get("status") == "reused" for u in units)

    def per_category(self) -> pd.DataFrame:
        return per_category(self.metrics)


# ------------------------------------------------------------------------------------------------------- parts


def part_paths(out_dir: Path, unit: Unit, key: str) -> dict[str, Path]:
    base = out_dir / "parts" / unit.dataset / unit.category
    return {"metrics": base / f"{key}.metrics.csv", "scores": base / f"{key}.scores.csv",
            "done": base / f"{key}.done.json"}


def has_markers(out_dir: Path, unit: Unit) -> bool:
    """Whether a unit's folder of parts holds any completion marker (a unit without one is not done, whatever its
    key)."""
    base = out_dir / "parts" / unit.dataset / unit.category
    return base.is_dir() and any(base.glob("*.done.json"))


def read_marker(paths: dict[str, Path]) -> dict[str, Any]:
    """What a finished unit's marker records (its key, checksums, encode counts, warnings); {} when there is none."""
    return read_json_object(paths["done"]) or {}


def unit_done(paths: dict[str, Path], key: str) -> bool:
    """True when the marker exists, names this key and both part files hash to what it recorded."""
    try:
        marker = json.loads(paths["done"].read_text())
        return marker.get("key") == key and all(
            marker.get(f"{name}_sha256") == file_digest(paths[name], 64) for name in ("metrics", "scores")
        )
    except (OSError, ValueError, AttributeError):
        return False


def write_unit(paths: dict[str, Path], key: str, metrics: pd.DataFrame, scores: pd.DataFrame,
               info: dict[str, Any]) -> None:
    """Part files first (each atomic), the marker with their checksums last."""
    atomic_write_text(paths["metrics"], metrics.to_csv(**CSV_OPTIONS))
    atomic_write_text(paths["scores"], scores.to_csv(**CSV_OPTIONS))
    marker = {"key": key, **{f"{n}_sha256": file_digest(paths[n], 64) for n in ("metrics", "scores")}, **info}
    atomic_write_text(paths["done"], json.dumps(marker, indent=2, sort_keys=True) + "\n")


def gather_parts(parts: list[dict[str, Path]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    metrics = [read_csv(p["metrics"]) for p in parts]
    scores = [read_csv(p["scores"]) for p in parts]
    m = pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(columns=METRICS_COLUMNS)
    s = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=SCORES_COLUMNS)
    return m[METRICS_COLUMNS], s[SCORES_COLUMNS]


# ------------------------------------------------------------------------------------------------------ tables


def write_run_json(out_dir: Path, info: dict[str, Any]) -> None:
    atomic_write_text(out_dir / "run.json", json.dumps(info, indent=2, sort_keys=False, default=str) + "\n")


def write_tables(out_dir: Path, tables: dict[str, pd.DataFrame], label: str | None) -> None:
    """Write ``{file name: table}`` as CSV; with a label, a leading :data:`BANNER_COLUMN` holds it on every row."""
    for name, frame in tables.items():
        if label:
            frame = frame.copy()
            frame.insert(0, BANNER_COLUMN, label)
        atomic_write_text(out_dir / name, frame.to_csv(**CSV_OPTIONS))


def _read_table(path: Path) -> pd.DataFrame:
    frame = read_csv(path)
    return frame.drop(columns=BANNER_COLUMN) if BANNER_COLUMN in frame.columns else frame


def is_complete_run(out_dir: str | Path) -> bool:
    """True when ``out_dir`` holds a finished run (``run.json`` says complete and the three tables exist)."""
    out_dir = Path(out_dir)
    try:
        info = json.loads((out_dir / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("status") == "complete" and all((out_dir / n).is_file() for n in TABLES)


def load_results(out_dir: str | Path) -> RunResult:
    """The tables and run info a finished run wrote to ``out_dir``."""
    out_dir = Path(out_dir)
    missing = [n for n in ("run.json", *TABLES) if not (out_dir / n).is_file()]
    if missing:
        status = ""
        try:
            status = json.loads((out_dir / "run.json").read_text()).get("status", "")
        except (OSError, ValueError):
            pass
        why = f"its run.json says {status!r}: rerun the same command to resume" if status else \
            f"missing {', '.join(missing)}"
        raise FileNotFoundError(f"no finished run in {out_dir} ({why}); run `winclip run ... --out {out_dir}` first")
    info = json.loads((out_dir / "run.json").read_text())
    return RunResult(_read_table(out_dir / "metrics.csv"), _read_table(out_dir / "scores.csv"),
                     _read_table(out_dir / "summary.csv"), info, out_dir)


def _is_run_info(info: dict[str, Any]) -> bool:
    """A ``run.json`` written by :func:`~winclip_lib.experiments.grid.run_grid` (earlier versions had no ``kind``)."""
    return info.get("kind") == RUN_KIND or ("kind" not in info and {"identity", "result_config"} <= set(info))


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) or "none"
    return "none" if value is None else str(value)


def _changes(old: dict[str, Any], new: dict[str, Any], n: int = 4) -> str:
    """The settings that differ between two run identities, as "name old -> new; ..." (at most ``n``)."""
    names = [k for k in dict.fromkeys([*new, *old]) if old.get(k) != new.get(k)]
    shown = [f"{k} {_show(old.get(k))} -> {_show(new.get(k))}" for k in names[:n]]
    return "; ".join(shown) + (f"; and {len(names) - n} more" if len(names) > n else "")


def check_run_folder(out_dir: str | Path, identity: dict[str, Any]) -> bool:
    """Whether a run of ``identity`` may write into ``out_dir`` (see the module docstring): True when the folder
    holds a run of the same identity (it resumes, or is read back), False when it is new or empty (hidden files
    aside).

    Raises:
        FileExistsError: ``out_dir`` holds another run, the output of another tool or other files; the one-line
            message names what is there and says to choose another ``--out``.
    """
    out = Path(out_dir)
    entries = visible_entries(out) if out.is_dir() else []
    if not entries:
        return False
    info = read_json_object(out / "run.json")
    if info is not None and _is_run_info(info):
        if info.get("identity") == identity:
            return True
        raise FileExistsError(f"--out {out} holds another run (other settings: "
                              f"{_changes(info.get('identity') or {}, identity)}); a run never overwrites another: "
                              "choose another --out")
    kind = info.get("kind") if info is not None else None
    what = f"the output of {kind.replace('-', ' ', 1)}" if isinstance(kind, str) else \
        "other files (" + ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "") + ")"
    raise FileExistsError(f"--out {out} exists and holds {what}; winclip run writes into a new or empty folder, or "
                          "resumes its own run there: choose another --out")


def find_run(results_dir: str | Path, identity: dict[str, Any]) -> Path | None:
    """A finished run in ``results_dir`` (the folder itself, or one of its subfolders) whose ``run.json`` records
    this result identity (``run.json``'s ``identity``); None if there is none."""
    root = Path(results_dir)
    candidates = [root, *sorted(p for p in root.glob("*") if p.is_dir())] if root.is_dir() else []
    for folder in candidates:
        if not is_complete_run(folder):
            continue
        try:
            if json.loads((folder / "run.json").read_text()).get("identity") == identity:
                return folder
        except (OSError, ValueError):
            continue
    return None
