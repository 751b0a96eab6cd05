"""The experiment grid: datasets x categories x k x seeds, **encoded once and scored many times**.

For every (dataset, category) unit (:mod:`~winclip_lib.experiments.units`) :func:`run_grid`

1. encodes the test images and the union of the reference images of every (k, seed) through the on-disk
   :class:`~winclip_lib.experiments.feature_cache.FeatureCache` (a second run encodes nothing);
2. scores every setting from those features and evaluates the seven metrics
   (:func:`~winclip_lib.experiments.unit_eval.score_unit`);
3. writes the unit's rows as part files and then a completion marker (:mod:`~winclip_lib.experiments.results`).

Then the part files of all units are gathered into the run folder (``cfg.out_dir``): ``metrics.csv``,
``scores.csv``, ``summary.csv`` and ``run.json`` (with ``weights``: which weights ran, proven by the checkpoint's
SHA-256, :class:`~winclip_lib.core.checkpoints.WeightsVerdict`; and ``stages``: the seconds of each stage and the
images per second, :mod:`~winclip_lib.experiments.stages`).

**Resume.** A unit is done when its marker exists and its part files match the checksums in it; a re-run skips done
units and rebuilds the same CSVs byte for byte, and an interrupted run resumes. The unit key hashes everything that
changes the unit's results (the backbone as loaded, every result setting of the config, the versions and the
content of every input file, :meth:`~winclip_lib.experiments.units.Unit.fingerprint`), so a changed config or a
changed image or mask never reuses old parts.

**Before any work** the output folder and the feature cache are checked (a folder, or one that can be made, that
takes a file: :func:`~winclip_lib.experiments.files.check_output_dir`), and the output folder must be new, empty or
hold this same run (:func:`~winclip_lib.experiments.results.check_run_folder`). A write that fails later (a full
disk) is recorded in ``run.json`` as ``failed: <reason>`` and raised as a one-line
:class:`~winclip_lib.experiments.files.WriteError`.

**A run is never overwritten by another.** :func:`run_or_load` — what the notebooks call — reads a finished run of
the same configuration if ``results_dir`` (or one of its subfolders) holds one, and otherwise computes into
``results_dir/run-<identity>``, a folder of its own.

**Warnings** about the data (an anomalous image whose mask marks no pixel, a mask beside a good image:
:func:`~winclip_lib.datasets.scan.mask_warnings`) are logged when a unit is computed, kept in its marker, logged
again when it is reused, and listed in ``run.json``'s ``warnings``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pandas as pd
import torch

from winclip_lib.core.backbone import Backbone, load_backbone
from winclip_lib.core.digests import FileChangedError, content_digests, digest_last_read
from winclip_lib.core.prompts import TextEmbeddingCache
from winclip_lib.datasets.scan import mask_warnings
from winclip_lib.experiments.config import RunConfig, is_random_weights
from winclip_lib.experiments.feature_cache import ENCODER_VERSION, FeatureCache
from winclip_lib.experiments.files import check_output_dirs, describe_error
from winclip_lib.experiments.labels import is_synthetic_root, run_label
from winclip_lib.experiments.progress import bar, progress_enabled
from winclip_lib.experiments.results import (
    RUN_KIND,
    TABLES,
    RunResult,
    check_run_folder,
    find_run,
    gather_parts,
    has_markers,
    load_results,
    part_paths,
    read_marker,
    unit_done,
    write_run_json,
    write_tables,
    write_unit,
)
from winclip_lib.experiments.stages import StageTimes
from winclip_lib.experiments.summary import summarize
from winclip_lib.experiments.unit_eval import model_for, score_unit
from winclip_lib.experiments.units import Unit, canonical_json, plan_units, unit_key

__all__ = ["RUNNER_VERSION", "check_backbone", "identity_key", "load_run_backbone", "result_config", "run_grid",
           "run_identity", "run_or_load"]

#: Bump when the runner's scoring or evaluation changes results (old parts are then not reused).
RUNNER_VERSION = "1"
_log = logging.getLogger(__name__)


def load_run_backbone(cfg: RunConfig) -> Backbone:
    """The backbone a config asks for (raises WeightsUnavailableError offline without cached weights)."""
    return load_backbone(cfg.model_name, cfg.pretrained, precision=cfg.precision, device=cfg.device)


def check_backbone(cfg: RunConfig, backbone: Backbone) -> None:
    """A backbone passed in must be the one the config describes (its identity goes into the results)."""
    problems = []
    if backbone.model_name != cfg.model_name:
        problems.append(f"model {backbone.model_name!r} != config {cfg.model_name!r}")
    if cfg.precision != "auto" and backbone.precision != cfg.precision:
        problems.append(f"precision {backbone.precision!r} != config {cfg.precision!r}")
    if is_random_weights(cfg.pretrained) != backbone.is_random:
        problems.append(f"weights {backbone.weights_id!r} do not match config pretrained={cfg.pretrained!r}")
    if problems:
        raise ValueError("the backbone does not match the RunConfig: " + "; ".join(problems))


def result_config(cfg: RunConfig, backbone: Backbone) -> dict[str, Any]:
    """Everything that changes a unit's results: the versions, the backbone as loaded (weights id, the precision
    actually used) and every result setting of the config."""
    settings = cfg.result_settings()
    settings.update(model_name=backbone.model_name, pretrained=backbone.weights_id, precision=backbone.precision)
    return {"runner_version": RUNNER_VERSION, "encoder_version": ENCODER_VERSION, **settings}


def run_identity(cfg: RunConfig) -> dict[str, Any]:
    """What makes two runs the same run, as asked: the datasets, the categories and every result setting."""
    return {"datasets": dict(cfg.datasets), "categories": dict(cfg.categories), **cfg.result_settings()}


def identity_key(identity: dict[str, Any]) -> str:
    """12 hex digits naming a run identity (the folder name of :func:`run_or_load`)."""
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:12]


def _versions() -> dict[str, str]:
    import winclip_lib

    return {"winclip_lib": winclip_lib.__version__, "torch": torch.__version__,
            "open_clip": open_clip.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "python": platform.python_version()}


class _UnitKeys:
    """The units' keys (:func:`~winclip_lib.experiments.units.unit_key`), each computed when first needed. A unit
    whose folder holds no completion marker is not done whatever its key, so a new run asks for its key only after
    scoring it: by then the decoders have hashed its files from the bytes they read
    (:mod:`winclip_lib.core.digests`), and nothing is read twice."""

    def __init__(self, units: list[Unit], result_cfg: dict[str, Any], out_dir: Path) -> None:
        self.units, self.result_cfg, self.out_dir = units, result_cfg, out_dir
        self._keys: dict[int, str] = {}

    def key(self, i: int) -> str:
        if i not in self._keys:
            self._keys[i] = unit_key(self.units[i], self.result_cfg)
        return self._keys[i]

    def paths(self, i: int) -> dict[str, Path]:
        return part_paths(self.out_dir, self.units[i], self.key(i))

    def done(self, i: int) -> bool:
        """Whether unit i's parts are written and match its key."""
        return has_markers(self.out_dir, self.units[i]) and unit_done(self.paths(i), self.key(i))

    def next_to_do(self, i: int) -> int | None:
        """The first unit after i that is not done yet (None: none)."""
        return next((j for j in range(i + 1, len(self.units)) if not self.done(j)), None)


def _check_unchanged(unit: Unit, served: Mapping[Path, str], masks_decoded: bool) -> None:
    """Every input file of a scored unit still holds the bytes its results were computed from — the images' as the
    feature cache served them, the masks' (when the unit decoded them) as a decoder last read them — so that the
    unit's key, made from the files as they are now, names those results
    (:class:`~winclip_lib.core.digests.FileChangedError` otherwise)."""
    files = unit.files()
    for f, now in zip(files, content_digests(files), strict=True):
        used = served.get(Path(f))
        if used is None and masks_decoded:
            used = digest_last_read(f)
        if used is not None and used != now:
            raise FileChangedError(f)


class _TextAhead:
    """The class text embeddings of the next unit, encoded into the run's text cache as work done ahead
    (:meth:`~winclip_lib.experiments.image_loader.ImageLoader.ahead_job`: at once on a GPU, while the main thread
    leaves cores spare on the CPU — before the next unit's images are decoded ahead). The main thread finds them
    ready, or waits for the one under way, or encodes them itself when the job has not started
    (:meth:`~winclip_lib.core.prompts.TextEmbeddingCache.get_or_compute`); the job's time is the text's busy time."""

    def __init__(self, cfg: RunConfig, backbone: Backbone, text_cache: TextEmbeddingCache, cache: FeatureCache
                 ) -> None:
        self.cfg, self.backbone, self.text_cache, self.cache = cfg, backbone, text_cache, cache
        self._started: set[int] = set()

    def start(self, i: int, unit: Unit) -> None:
        if i not in self._started:
            self._started.add(i)
            self.cache.loader.ahead_job("text", self._encode, unit)

    def _encode(self, unit: Unit) -> None:
        model_for(unit, self.cfg, self.backbone, self.text_cache).text  # noqa: B018 - into the text cache


def run_grid(cfg: RunConfig, progress: bool | None = None, backbone: Backbone | None = None, *,
             max_units: int | None = None, text_cache: TextEmbeddingCache | None = None) -> RunResult:
    """Run (or resume) a grid and write its results to ``cfg.out_dir`` (see the module docstring).

    Args:
        cfg: the grid.
        progress: progress bars over units, encoding and settings (None: the default of
            :mod:`~winclip_lib.experiments.progress`).
        backbone: an already loaded backbone matching ``cfg`` (default: loaded from ``cfg``).
        max_units: stop after computing this many units (finished units skipped on resume do not count) — a
            clean way to interrupt a run; the result is then marked incomplete and no final CSVs are written.
        text_cache: where the class text embeddings are kept (default: a new one for this call, so
            ``encode_counts["text_encodes"]`` counts this call's text encodes).

    Returns:
        :class:`~winclip_lib.experiments.results.RunResult` with the metrics, per-image scores, summary and run info.

    Raises:
        DatasetError: a missing root, unknown category or broken dataset (before any encoding).
        FileChangedError: an input file changed while the run used it (named; the unit is not recorded, and the
            same call computes it from the file as it now is).
        WeightsUnavailableError: the weights are not available offline.
        CheckpointError: a checkpoint file that cannot run (another architecture, truncated, a refused pickle).
        WriteError: the output folder or the cache cannot be written (before any work), or a write failed later
            (after recording ``"status": "failed: <reason>"`` in ``run.json``, when it can still be written).
        FileExistsError: the output folder holds another run or other files (before any work).
        KeyboardInterrupt: after recording ``"status": "interrupted"`` in ``run.json``.
    """
    started = time.perf_counter()
    cfg.check_runnable()
    units = plan_units(cfg)
    identity = run_identity(cfg)
    out_dir = Path(cfg.out_dir)
    check_output_dirs({"--out": out_dir})
    check_run_folder(out_dir, identity)
    check_output_dirs({"--cache-dir": cfg.cache_dir})
    if backbone is None:
        backbone = load_run_backbone(cfg)
    else:
        check_backbone(cfg, backbone)
    show = progress_enabled(progress)
    for name in TABLES:
        (out_dir / name).unlink(missing_ok=True)  # final tables exist only for a complete run

    times = StageTimes()
    cache = FeatureCache.from_config(cfg, backbone, progress=show, times=times)
    text_cache = text_cache if text_cache is not None else TextEmbeddingCache()
    text_before = text_cache.encodes
    result_cfg = result_config(cfg, backbone)
    info: dict[str, Any] = {
        "kind": RUN_KIND,
        "status": "running",
        "config": cfg.to_dict(),
        "identity": identity,
        "backbone": backbone.describe(),
        "model_name": backbone.model_name,
        "weights_id": backbone.weights_id,
        "precision": backbone.precision,
        "precision_choice": None if backbone.precision_choice is None else backbone.precision_choice.as_dict(),
        "device": str(backbone.device),
        "is_random": backbone.is_random,
        "weights": None if backbone.weights is None else backbone.weights.as_dict(),
        "synthetic_data": {d: is_synthetic_root(root) for d, root in cfg.datasets.items()},
        "versions": _versions(),
        "feature_cache": {"dir": None if cache.dir is None else str(cache.dir), "spec": cache.spec.as_dict(),
                          "batch_size": cache.batch_size, "workers": cache.workers},
        "result_config": result_cfg,
    }
    info["label"] = run_label(info)
    write_run_json(out_dir, info)

    parts: list[dict[str, Path]] = []
    unit_log: list[dict[str, Any]] = []
    warnings: list[str] = []
    computed = 0
    images = 0
    units_bar = bar(units, enabled=show, desc="units", unit="unit")
    keys = _UnitKeys(units, result_cfg, out_dir)
    texts = _TextAhead(cfg, backbone, text_cache, cache)
    map_memory = torch.empty(0, device=backbone.device)  # every unit's maps in the same memory
    try:
        for i, unit in enumerate(units_bar):
            units_bar.set_postfix_str(f"{unit.dataset}/{unit.category}")
            sizes = {"n_test": len(unit.test), "n_references": len(unit.reference_union)}
            if keys.done(i):
                parts.append(keys.paths(i))
                unit_log.append({**_named(unit), "key": keys.key(i), **sizes, "status": "reused"})
                warnings += _warn(read_marker(keys.paths(i)).get("warnings", []))
                continue
            if max_units is not None and computed >= max_units:
                unit_log.append({**_named(unit), "key": keys.key(i), **sizes, "status": "pending"})
                continue
            before = cache.counts()
            t0 = time.perf_counter()
            after_this = keys.next_to_do(i) if max_units is None or computed + 1 < max_units else None
            ahead: list[Path] = []
            if after_this is not None:
                texts.start(after_this, units[after_this])
                ahead = [s.image_path for s in (*units[after_this].test, *units[after_this].reference_union)]
            scored = score_unit(unit, cfg, backbone, cache, show, text_cache, ahead=ahead, map_memory=map_memory)
            _check_unchanged(unit, cache.served, masks_decoded=cfg.masks)
            cache.end_unit()
            unit_warnings = _warn(mask_warnings(unit.loader, unit.root, unit.category, unit.test, cfg.masks,
                                                marked=scored.marked))
            warnings += unit_warnings
            images += sizes["n_test"] + sizes["n_references"]
            after = cache.counts()
            counts = {n: after[n] - before[n] for n in ("encoded", "hits", "extended", "invalid")}
            write_unit(keys.paths(i), keys.key(i), scored.metrics, scored.scores,
                       {"dataset": unit.dataset, "category": unit.category, **counts, "warnings": unit_warnings})
            parts.append(keys.paths(i))
            unit_log.append({**_named(unit), "key": keys.key(i), **sizes, "status": "computed", **counts,
                             "seconds": round(time.perf_counter() - t0, 3)})
            computed += 1
        cache.flush()  # the last entries on disk before the run is called complete

        metrics, scores = gather_parts(parts)
        complete = len(parts) == len(units)
        summary = summarize(metrics)
        info.update({
            "status": "complete" if complete else "incomplete",
            "units": unit_log,
            "warnings": warnings,
            "encode_counts": {**cache.counts(),
                              "distinct_images": sum(u["n_test"] + u["n_references"] for u in unit_log),
                              "text_encodes": text_cache.encodes - text_before},
        })
        if complete:
            write_tables(out_dir, {"metrics.csv": metrics, "scores.csv": scores, "summary.csv": summary},
                         info["label"])
        seconds = time.perf_counter() - started
        info.update({"seconds": round(seconds, 3), "stages": times.as_dict(seconds, images)})
        write_run_json(out_dir, info)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the entries already encoded kept (a failed write is not retried)
            cache.close()
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {describe_error(exc)}"
        seconds = time.perf_counter() - started
        info.update({"status": status, "units": unit_log, "warnings": warnings, "seconds": round(seconds, 3),
                     "stages": times.as_dict(seconds, images)})
        with contextlib.suppress(OSError):  # a full disk may refuse run.json too: the error raised says why
            write_run_json(out_dir, info)
        raise
    finally:
        cache.close()
        units_bar.close()
    return RunResult(metrics, scores, summary, info, out_dir)


def _named(unit: Unit) -> dict[str, str]:
    return {"dataset": unit.dataset, "category": unit.category}


def _warn(messages: list[str]) -> list[str]:
    """Log each warning about the data; returns them."""
    for message in messages:
        _log.warning("%s", message)
    return list(messages)


def run_or_load(cfg: RunConfig, results_dir: str | Path, backbone: Backbone | None = None,
                progress: bool | None = None) -> RunResult:
    """The finished run of ``cfg`` under ``results_dir``, computed first if there is none.

    A finished run whose ``run.json`` records the same identity (:func:`run_identity`) — in ``results_dir`` itself
    (e.g. what ``winclip run --out results_dir`` wrote) or in one of its subfolders — is read, not recomputed.
    Otherwise the grid runs into ``results_dir/run-<identity key>``; no other folder is written, so a run made with
    other settings is never touched. ``cfg.out_dir`` is ignored.
    """
    identity = run_identity(cfg)
    found = find_run(results_dir, identity)
    if found is not None:
        return load_results(found)
    out = Path(results_dir) / f"run-{identity_key(identity)}"
    return run_grid(cfg.replace(out_dir=str(out)), progress=progress, backbone=backbone)
