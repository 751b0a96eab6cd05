"""The experiment runner: datasets x categories x k x seeds, **encoded once and scored many times**.

For every (dataset, category) *unit* the runner

1. lists the test images and the reference images of every (k, seed) — the union over seeds and k of
   :func:`winclip_lib.datasets.sample_references` — and encodes each distinct image once through the on-disk
   :class:`~winclip_lib.feature_cache.FeatureCache` (a second run encodes nothing);
2. for k = 0 (once, seed 0) and every k > 0 and seed: fits WinCLIP+ from the cached reference features, scores the
   cached test features (:meth:`WinCLIP.predict_features`) and evaluates the seven metrics
   (:func:`winclip_lib.metrics.evaluate_category`) against the masks resized like the maps;
3. writes its rows as part files (atomically) and then a completion marker that holds their checksums.

Then the part files of all units are gathered into ``out_dir``::

    metrics.csv   dataset, category, k, seed, metric, value          (value: fraction 0..1; k = 0 rows have seed 0)
    scores.csv    dataset, category, k, seed, image, label, defect, score    (image: path relative to the root)
    summary.csv   dataset, k, metric, mean, std, n_seeds, n_categories       (see :func:`summarize`)
    run.json      config, backbone, weights, is_random, label, versions, encode counts
    parts/<dataset>/<category>/<unit key>.{metrics.csv,scores.csv,done.json}

**Resume.** A unit is done when its marker exists and the part files match the checksums in it; a re-run skips done
units and rebuilds the same CSVs byte for byte. A unit killed midway has no marker and is redone. The unit key is a
hash of everything that changes the unit's results (model, weights, precision, preprocessing, scales, temperature,
prompts, shots, seeds, evaluation resolution, versions and a fingerprint of the file listing), so a changed config
never reuses old parts. ``cache_dir``, ``out_dir``, ``device`` and ``batch_size`` are not in the key (they change
numbers by float rounding at most).

Dataset names are those of :mod:`winclip_lib.datasets` (``mvtec``, ``visa``, ``mpdd``) plus ``synthetic``, read
with the MVTec layout (the set :func:`winclip_lib.synthetic.make_synthetic` writes).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pandas as pd
import torch
from tqdm.auto import tqdm

from winclip_lib import prompts
from winclip_lib.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, Backbone, load_backbone
from winclip_lib.datasets import (
    DEFAULT_SEEDS,
    DatasetError,
    Sample,
    class_name,
    list_categories,
    load_mask,
    load_split,
    resize_mask,
    sample_references,
)
from winclip_lib.encoder import Features
from winclip_lib.feature_cache import ENCODER_VERSION, FeatureCache, atomic_write_text, file_digest
from winclip_lib.metrics import METRIC_NAMES, evaluate_category
from winclip_lib.model import Prediction, WinCLIP
from winclip_lib.scoring import upsample
from winclip_lib.synthetic import read_manifest

__all__ = [
    "RUNNER_VERSION",
    "DATASET_LOADERS",
    "EVAL_RESOLUTIONS",
    "METRICS_COLUMNS",
    "SCORES_COLUMNS",
    "SUMMARY_COLUMNS",
    "PER_CATEGORY_COLUMNS",
    "RunConfig",
    "RunResult",
    "Unit",
    "settings",
    "plan_units",
    "load_run_backbone",
    "run_grid",
    "summarize",
    "per_category",
    "load_results",
    "predict_samples",
    "demo_label",
]

#: Bump when the runner's scoring or evaluation changes results (old parts are then not reused).
RUNNER_VERSION = "1"
#: Dataset names accepted besides :data:`winclip_lib.datasets.DATASETS`, and the layout they are read with.
DATASET_LOADERS: dict[str, str] = {"mvtec": "mvtec", "visa": "visa", "mpdd": "mpdd", "synthetic": "mvtec"}
EVAL_RESOLUTIONS = ("240", "mask")

METRICS_COLUMNS = ["dataset", "category", "k", "seed", "metric", "value"]
SCORES_COLUMNS = ["dataset", "category", "k", "seed", "image", "label", "defect", "score"]
SUMMARY_COLUMNS = ["dataset", "k", "metric", "mean", "std", "n_seeds", "n_categories"]
PER_CATEGORY_COLUMNS = ["dataset", "category", "k", "metric", "mean", "std"]

_CSV = {"index": False, "lineterminator": "\n"}


# ------------------------------------------------------------------------------------------------------ config


@dataclass
class RunConfig:
    """One experiment grid. JSON-serialisable through :meth:`to_dict` / :meth:`from_dict`.

    Attributes:
        datasets: {name: root}, names from :data:`DATASET_LOADERS`; run in this order.
        categories: {name: [category, ...] or None}; a dataset missing here (or None) runs every category present.
        shots: the k to run; 0 is zero-shot WinCLIP (run once, seed 0), k > 0 is WinCLIP+ with k references.
        seeds: reference draws for each k > 0.
        model_name, pretrained: the backbone (pretrained: a tag, a checkpoint path, or None / "none" for random).
        precision, device: weights precision ("fp32", "bf16", "fp16"); device ("auto" picks CUDA when present).
        scales, temperature, template_set, normalize_each, patch_ln_post: WinCLIP's settings.
        image_size, resize_mode: preprocessing (the model's input size; "resize" without crop, or "crop").
        eval_resolution: "240" compares maps and masks at image_size (masks resized with
            :func:`~winclip_lib.datasets.resize_mask`); "mask" upsamples the maps to each mask's own resolution.
        batch_size: images per encoding pass. cache_dir: feature cache. out_dir: results.
    """

    datasets: dict[str, str] = field(default_factory=dict)
    categories: dict[str, list[str] | None] = field(default_factory=dict)
    shots: tuple[int, ...] = (0, 1, 2, 4)
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    model_name: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED
    precision: str = "fp32"
    device: str = "auto"
    scales: tuple[int, ...] = (2, 3)
    temperature: float = 0.07
    template_set: str | list[str] = "paper"
    normalize_each: bool = False
    patch_ln_post: bool = True
    image_size: int = 240
    resize_mode: str = "resize"
    eval_resolution: str = "240"
    batch_size: int = 8
    cache_dir: str = ".cache/winclip/features"
    out_dir: str = "build/results"

    def __post_init__(self) -> None:
        self.datasets = {str(k): str(v) for k, v in self.datasets.items()}
        self.categories = {str(k): None if v is None else [str(c) for c in v] for k, v in self.categories.items()}
        self.shots = tuple(sorted({int(k) for k in self.shots}))
        self.seeds = tuple(dict.fromkeys(int(s) for s in self.seeds))
        self.scales = tuple(int(k) for k in self.scales)
        self.template_set = self.template_set if isinstance(self.template_set, str) else list(self.template_set)
        self.pretrained = None if self.pretrained is None else str(self.pretrained)
        self.cache_dir, self.out_dir = str(self.cache_dir), str(self.out_dir)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on a setting that cannot run (before any work is done)."""
        unknown = [d for d in self.datasets if d not in DATASET_LOADERS]
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}; valid names are {', '.join(DATASET_LOADERS)}")
        stray = [d for d in self.categories if d not in self.datasets]
        if stray:
            raise ValueError(f"categories given for dataset(s) {stray} that have no root in datasets")
        if not self.shots or min(self.shots) < 0:
            raise ValueError(f"shots must be non-negative integers, got {self.shots}")
        if any(k > 0 for k in self.shots) and not self.seeds:
            raise ValueError("few-shot k > 0 needs at least one seed")
        if self.eval_resolution not in EVAL_RESOLUTIONS:
            raise ValueError(f"eval_resolution must be one of {EVAL_RESOLUTIONS}, got {self.eval_resolution!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples as lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        names = {f.name for f in fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise ValueError(f"unknown RunConfig field(s) {extra}; known: {sorted(names)}")
        return cls(**d)


def settings(shots: Iterable[int], seeds: Iterable[int]) -> list[tuple[int, int]]:
    """The (k, seed) pairs of a grid: (0, 0) once if 0 is in shots, then every k > 0 with every seed."""
    seeds = list(seeds)
    out: list[tuple[int, int]] = []
    for k in sorted(set(shots)):
        out.extend([(0, 0)] if k == 0 else [(k, s) for s in seeds])
    return out


# ------------------------------------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """One (dataset, category) of the grid with its test images and the references of every (k, seed)."""

    dataset: str
    category: str
    root: Path
    loader: str
    test: tuple[Sample, ...]
    references: dict[tuple[int, int], tuple[Sample, ...]]

    @property
    def settings(self) -> list[tuple[int, int]]:
        return sorted(self.references, key=lambda ks: (ks[0], ks[1]))

    @property
    def reference_union(self) -> list[Sample]:
        """Distinct reference images over all (k, seed), in first-use order."""
        seen: dict[Path, Sample] = {}
        for ks in self.settings:
            for s in self.references[ks]:
                seen.setdefault(s.image_path, s)
        return list(seen.values())

    @property
    def class_name(self) -> str:
        return class_name(self.category, self.loader)

    def relative(self, path: Path) -> str:
        """A path relative to the dataset root, POSIX style."""
        return Path(path).relative_to(self.root).as_posix()

    def fingerprint(self) -> str:
        """Hash of the listing (relative path, size, mtime_ns) of every test image, mask and reference."""
        h = hashlib.sha256()
        files = [s.image_path for s in self.test] + [s.mask_path for s in self.test if s.mask_path is not None]
        files += [s.image_path for s in self.reference_union]
        for p in files:
            st = Path(p).stat()
            h.update(f"{self.relative(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:24]


def _categories_of(cfg: RunConfig, dataset: str) -> list[str]:
    loader, root = DATASET_LOADERS[dataset], cfg.datasets[dataset]
    present = list_categories(loader, root)
    wanted = cfg.categories.get(dataset)
    if wanted is None:
        if not present:
            raise DatasetError(f"no {dataset} categories found under {root}")
        return present
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DatasetError(
            f"unknown {dataset} categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} under {root}; "
            f"categories present: {', '.join(present) or 'none'}"
        )
    return list(dict.fromkeys(wanted))


def plan_units(cfg: RunConfig) -> list[Unit]:
    """Every (dataset, category) of the grid with its samples; raises DatasetError on any data problem (missing
    root, unknown category, missing mask, too few normal training images for the largest k) before work starts."""
    units: list[Unit] = []
    for dataset, root in cfg.datasets.items():
        loader = DATASET_LOADERS[dataset]
        for category in _categories_of(cfg, dataset):
            test = tuple(load_split(loader, root, category, "test"))
            refs = {
                (k, s): (() if k == 0 else tuple(sample_references(loader, root, category, k, s)))
                for k, s in settings(cfg.shots, cfg.seeds)
            }
            units.append(Unit(dataset, category, Path(root), loader, test, refs))
    if not units:
        raise DatasetError("nothing to run: give at least one dataset root")
    return units


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _result_config(cfg: RunConfig, backbone: Backbone) -> dict[str, Any]:
    """The settings that change results (the backbone as loaded, not as asked for)."""
    return {
        "runner_version": RUNNER_VERSION,
        "encoder_version": ENCODER_VERSION,
        "model_name": backbone.model_name,
        "weights_id": backbone.weights_id,
        "precision": backbone.precision,
        "shots": list(cfg.shots),
        "seeds": list(cfg.seeds),
        "scales": list(cfg.scales),
        "temperature": cfg.temperature,
        "template_set": cfg.template_set,
        "normalize_each": cfg.normalize_each,
        "patch_ln_post": cfg.patch_ln_post,
        "image_size": cfg.image_size,
        "resize_mode": cfg.resize_mode,
        "eval_resolution": cfg.eval_resolution,
    }


def unit_key(unit: Unit, result_config: dict[str, Any]) -> str:
    """24 hex digits naming a unit's results: its dataset, category, file listing and the result config."""
    blob = _canonical({"dataset": unit.dataset, "category": unit.category, "loader": unit.loader,
                       "files": unit.fingerprint(), "config": result_config})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------------------- parts


def _part_paths(out_dir: Path, unit: Unit, key: str) -> dict[str, Path]:
    base = out_dir / "parts" / unit.dataset / unit.category
    return {"metrics": base / f"{key}.metrics.csv", "scores": base / f"{key}.scores.csv",
            "done": base / f"{key}.done.json"}


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV written by this module (pandas >= 3 parses floats exactly, so a re-write gives the same bytes)."""
    return pd.read_csv(path, keep_default_na=False, na_values=["", "NaN", "nan"])


def _unit_done(paths: dict[str, Path], key: str) -> bool:
    """True when the marker exists, names this key and both part files hash to what it recorded."""
    try:
        marker = json.loads(paths["done"].read_text())
        return marker.get("key") == key and all(
            marker.get(f"{name}_sha256") == file_digest(paths[name], 64) for name in ("metrics", "scores")
        )
    except (OSError, ValueError, AttributeError):
        return False


def _write_unit(paths: dict[str, Path], key: str, metrics: pd.DataFrame, scores: pd.DataFrame,
                info: dict[str, Any]) -> None:
    """Part files first (each atomic), the marker with their checksums last."""
    atomic_write_text(paths["metrics"], metrics.to_csv(**_CSV))
    atomic_write_text(paths["scores"], scores.to_csv(**_CSV))
    marker = {"key": key, **{f"{n}_sha256": file_digest(paths[n], 64) for n in ("metrics", "scores")}, **info}
    atomic_write_text(paths["done"], json.dumps(marker, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------------- scoring


def _eval_masks(unit: Unit, eval_resolution: str, size: int) -> list[np.ndarray]:
    """Ground-truth masks of the test images, (size, size) bool for "240", their own (H, W) for "mask"."""
    masks = [load_mask(s) for s in unit.test]
    if eval_resolution == "240":
        return [resize_mask(m, size) for m in masks]
    return masks


def _stack_same_shape(arrays: list[np.ndarray], what: str, unit: Unit) -> np.ndarray:
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise DatasetError(
            f"{unit.dataset}/{unit.category}: test {what} have different sizes {shapes[:3]}; pixel metrics need one "
            "size per category — use eval_resolution='240'"
        )
    return np.stack(arrays)


def _score(model: WinCLIP, test: Features, mask_shapes: list[tuple[int, int]], chunk: int
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Image scores (N,) float64 and maps [(H_i, W_i) float32] of the test features, scored ``chunk`` at a time."""
    device = model.backbone.device
    scores: list[np.ndarray] = []
    maps: list[np.ndarray] = []
    for i in range(0, len(test), chunk):
        pred = model.predict_features(test[i : i + chunk].to(device))
        scores.append(pred.score.double().cpu().numpy())
        for j in range(len(pred.score)):
            m = pred.map[j : j + 1]
            shape = mask_shapes[i + j]
            if tuple(m.shape[1:]) != shape:
                m = upsample(m, shape)
            maps.append(m[0].float().cpu().numpy())
    return np.concatenate(scores), maps


@torch.inference_mode()
def score_unit(unit: Unit, cfg: RunConfig, backbone: Backbone, cache: FeatureCache, progress: bool = True
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Encode (through the cache) and score one unit for every (k, seed).

    Returns:
        (metrics rows with :data:`METRICS_COLUMNS`, per-image score rows with :data:`SCORES_COLUMNS`).
    """
    name = f"{unit.dataset}/{unit.category}"
    refs = unit.reference_union
    feats = cache.features([s.image_path for s in unit.test] + [s.image_path for s in refs], desc=f"encode {name}")
    test_feats = feats[: len(unit.test)]
    ref_index = {s.image_path: len(unit.test) + i for i, s in enumerate(refs)}

    masks = _eval_masks(unit, cfg.eval_resolution, cfg.image_size)
    mask_stack = _stack_same_shape(masks, "masks", unit)
    labels = np.array([s.label for s in unit.test], dtype=np.int64)
    model = WinCLIP(backbone, unit.class_name, scales=cfg.scales, temperature=cfg.temperature,
                    template_set=cfg.template_set, normalize_each=cfg.normalize_each,
                    patch_ln_post=cfg.patch_ln_post, output_size=cfg.image_size, batch_size=cfg.batch_size)

    metric_rows: list[dict[str, Any]] = []
    score_rows: list[dict[str, Any]] = []
    images = [unit.relative(s.image_path) for s in unit.test]
    for k, seed in tqdm(unit.settings, desc=f"score {name}", unit="setting", disable=not progress, leave=False):
        if k == 0:
            model.reset()
        else:
            idx = torch.tensor([ref_index[s.image_path] for s in unit.references[(k, seed)]])
            model.fit(feats[idx].to(backbone.device))
        scores, maps = _score(model, test_feats, [m.shape for m in masks], chunk=max(1, 4 * cfg.batch_size))
        values = evaluate_category(labels, scores, mask_stack, np.stack(maps))
        metric_rows += [{"dataset": unit.dataset, "category": unit.category, "k": k, "seed": seed,
                         "metric": m, "value": float(values[m])} for m in METRIC_NAMES]
        score_rows += [{"dataset": unit.dataset, "category": unit.category, "k": k, "seed": seed, "image": img,
                        "label": int(s.label), "defect": s.defect, "score": float(sc)}
                       for img, s, sc in zip(images, unit.test, scores, strict=True)]
    return pd.DataFrame(metric_rows, columns=METRICS_COLUMNS), pd.DataFrame(score_rows, columns=SCORES_COLUMNS)


# ------------------------------------------------------------------------------------------------------ tables


def _order(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Sort by ``by`` keeping datasets / categories in first-appearance order and metrics in METRIC_NAMES order."""
    keys = {}
    for col in by:
        if col == "metric":
            known = {m: i for i, m in enumerate(METRIC_NAMES)}
            extra = {m: len(known) + i for i, m in enumerate(sorted(set(df[col]) - set(known)))}
            keys[col] = df[col].map({**known, **extra})
        elif col in ("dataset", "category"):
            first = {v: i for i, v in enumerate(dict.fromkeys(df[col]))}
            keys[col] = df[col].map(first)
        else:
            keys[col] = df[col]
    order = pd.DataFrame(keys).sort_values(list(by), kind="stable").index
    return df.loc[order].reset_index(drop=True)


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """The paper's summary: per (dataset, k, seed) the mean over categories, then mean and std (ddof=0) over seeds.

    Args:
        metrics: rows with :data:`METRICS_COLUMNS`.

    Returns:
        :data:`SUMMARY_COLUMNS`; ``n_categories`` counts the categories averaged (NaN values are skipped, as in
        :func:`winclip_lib.metrics.mean_metrics`), ``n_seeds`` the seeds.
    """
    if metrics.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    metrics = _order(metrics, ["dataset", "k", "metric", "seed", "category"])
    per_seed = metrics.groupby(["dataset", "k", "metric", "seed"], sort=False)["value"].agg(["mean", "count"])
    per_seed = per_seed.reset_index()
    g = per_seed.groupby(["dataset", "k", "metric"], sort=False)
    out = pd.DataFrame({
        "mean": g["mean"].mean(),
        "std": g["mean"].std(ddof=0),
        "n_seeds": g["seed"].nunique(),
        "n_categories": g["count"].max(),
    }).reset_index()
    return _order(out[SUMMARY_COLUMNS], ["dataset", "k", "metric"])


def per_category(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, category, k, metric): mean and std (ddof=0) over seeds. Columns :data:`PER_CATEGORY_COLUMNS`."""
    if metrics.empty:
        return pd.DataFrame(columns=PER_CATEGORY_COLUMNS)
    metrics = _order(metrics, ["dataset", "category", "k", "metric", "seed"])
    g = metrics.groupby(["dataset", "category", "k", "metric"], sort=False)["value"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0)}).reset_index()
    return _order(out[PER_CATEGORY_COLUMNS], ["dataset", "category", "k", "metric"])


# ------------------------------------------------------------------------------------------------------ results


def demo_label(info: dict[str, Any]) -> str | None:
    """The label every table and figure of a run must carry, or None for real weights on real data."""
    random_weights = bool(info.get("is_random"))
    synthetic = any(info.get("synthetic_data", {}).values())
    if not (random_weights or synthetic):
        return None
    what = ", ".join(w for w, on in (("random weights", random_weights), ("synthetic data", synthetic)) if on)
    return f"DEMO — {what}: not a reproduction"


@dataclass
class RunResult:
    """The tables of a run and its ``run.json`` (``info``). ``complete`` is False after ``max_units`` stopped it."""

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
        """"DEMO — random weights …" when the numbers are not a reproduction (see :func:`demo_label`)."""
        return demo_label(self.info)

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.info["config"])

    def per_category(self) -> pd.DataFrame:
        return per_category(self.metrics)


def _versions() -> dict[str, str]:
    import winclip_lib

    return {"winclip_lib": winclip_lib.__version__, "torch": torch.__version__,
            "open_clip": open_clip.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "python": platform.python_version()}


def load_run_backbone(cfg: RunConfig) -> Backbone:
    """The backbone a config asks for (raises WeightsUnavailableError offline without cached weights)."""
    return load_backbone(cfg.model_name, cfg.pretrained, precision=cfg.precision, device=cfg.device)


def _check_backbone(cfg: RunConfig, backbone: Backbone) -> None:
    """A backbone passed in must be the one the config describes (its identity goes into the results)."""
    problems = []
    if backbone.model_name != cfg.model_name:
        problems.append(f"model {backbone.model_name!r} != config {cfg.model_name!r}")
    if backbone.precision != cfg.precision:
        problems.append(f"precision {backbone.precision!r} != config {cfg.precision!r}")
    if backbone.image_size != cfg.image_size:
        problems.append(f"input size {backbone.image_size} != config image_size {cfg.image_size}")
    wants_random = cfg.pretrained is None or cfg.pretrained.lower() in ("none", "random")
    if wants_random != backbone.is_random:
        problems.append(f"weights {backbone.weights_id!r} do not match config pretrained={cfg.pretrained!r}")
    if problems:
        raise ValueError("the backbone does not match the RunConfig: " + "; ".join(problems))


def _write_run_json(out_dir: Path, info: dict[str, Any]) -> None:
    atomic_write_text(out_dir / "run.json", json.dumps(info, indent=2, sort_keys=False, default=str) + "\n")


def _gather(parts: list[dict[str, Path]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    metrics = [_read_csv(p["metrics"]) for p in parts]
    scores = [_read_csv(p["scores"]) for p in parts]
    m = pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(columns=METRICS_COLUMNS)
    s = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=SCORES_COLUMNS)
    return m[METRICS_COLUMNS], s[SCORES_COLUMNS]


def run_grid(cfg: RunConfig, progress: bool = True, backbone: Backbone | None = None, *,
             max_units: int | None = None) -> RunResult:
    """Run (or resume) a grid and write its results to ``cfg.out_dir`` (see the module docstring).

    Args:
        cfg: the grid.
        progress: tqdm bars over units, encoding and settings.
        backbone: an already loaded backbone matching ``cfg`` (default: loaded from ``cfg``).
        max_units: stop after computing this many units (finished units skipped on resume do not count) — a
            clean way to interrupt a run; the result is then marked incomplete and no final CSVs are written.

    Returns:
        :class:`RunResult` with the metrics, per-image scores, summary and run info.

    Raises:
        DatasetError: a missing root, unknown category or broken dataset (before any encoding).
        WeightsUnavailableError: the weights are not available offline.
    """
    cfg.validate()
    units = plan_units(cfg)
    if backbone is None:
        backbone = load_run_backbone(cfg)
    else:
        _check_backbone(cfg, backbone)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.csv", "scores.csv", "summary.csv"):
        (out_dir / name).unlink(missing_ok=True)  # final tables exist only for a complete run

    cache = FeatureCache(cfg.cache_dir, backbone, cfg.scales, patch_ln_post=cfg.patch_ln_post,
                         resize_mode=cfg.resize_mode, image_size=cfg.image_size, batch_size=cfg.batch_size,
                         progress=progress)
    result_cfg = _result_config(cfg, backbone)
    text_before = prompts._GLOBAL_TEXT_CACHE.encodes
    info: dict[str, Any] = {
        "status": "running",
        "config": cfg.to_dict(),
        "backbone": backbone.describe(),
        "model_name": backbone.model_name,
        "weights_id": backbone.weights_id,
        "precision": backbone.precision,
        "device": str(backbone.device),
        "is_random": backbone.is_random,
        "synthetic_data": {d: read_manifest(root) is not None for d, root in cfg.datasets.items()},
        "versions": _versions(),
        "feature_cache": {"dir": str(cache.dir), "spec": cache.spec.as_dict()},
        "result_config": result_cfg,
    }
    info["label"] = demo_label(info)
    _write_run_json(out_dir, info)

    parts: list[dict[str, Path]] = []
    unit_log: list[dict[str, Any]] = []
    computed = 0
    started = time.perf_counter()
    bar = tqdm(units, desc="units", unit="unit", disable=not progress)
    for unit in bar:
        bar.set_postfix_str(f"{unit.dataset}/{unit.category}")
        key = unit_key(unit, result_cfg)
        paths = _part_paths(out_dir, unit, key)
        entry = {"dataset": unit.dataset, "category": unit.category, "key": key, "n_test": len(unit.test),
                 "n_references": len(unit.reference_union)}
        if _unit_done(paths, key):
            parts.append(paths)
            unit_log.append({**entry, "status": "reused"})
            continue
        if max_units is not None and computed >= max_units:
            unit_log.append({**entry, "status": "pending"})
            continue
        before = cache.counts()
        t0 = time.perf_counter()
        metrics, scores = score_unit(unit, cfg, backbone, cache, progress)
        after = cache.counts()
        counts = {n: after[n] - before[n] for n in ("encoded", "hits", "invalid")}
        _write_unit(paths, key, metrics, scores, {"dataset": unit.dataset, "category": unit.category, **counts})
        parts.append(paths)
        unit_log.append({**entry, "status": "computed", **counts, "seconds": round(time.perf_counter() - t0, 3)})
        computed += 1
    bar.close()

    metrics, scores = _gather(parts)
    complete = len(parts) == len(units)
    summary = summarize(metrics)
    info.update({
        "status": "complete" if complete else "incomplete",
        "units": unit_log,
        "encode_counts": {**cache.counts(), "distinct_images": sum(u["n_test"] + u["n_references"] for u in unit_log),
                          "text_encodes": prompts._GLOBAL_TEXT_CACHE.encodes - text_before},
        "seconds": round(time.perf_counter() - started, 3),
    })
    if complete:
        atomic_write_text(out_dir / "metrics.csv", metrics.to_csv(**_CSV))
        atomic_write_text(out_dir / "scores.csv", scores.to_csv(**_CSV))
        atomic_write_text(out_dir / "summary.csv", summary.to_csv(**_CSV))
    _write_run_json(out_dir, info)
    return RunResult(metrics, scores, summary, info, out_dir)


def load_results(out_dir: str | Path) -> RunResult:
    """The tables and run info a finished :func:`run_grid` wrote to ``out_dir``."""
    out_dir = Path(out_dir)
    missing = [n for n in ("run.json", "metrics.csv", "scores.csv", "summary.csv") if not (out_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"no finished run in {out_dir} (missing {', '.join(missing)}); run `winclip run ... --out {out_dir}` "
            "or winclip_lib.runner.run_grid first"
        )
    info = json.loads((out_dir / "run.json").read_text())
    return RunResult(_read_csv(out_dir / "metrics.csv"), _read_csv(out_dir / "scores.csv"),
                     _read_csv(out_dir / "summary.csv"), info, out_dir)


# --------------------------------------------------------------------------------------------------- re-scoring


def predict_samples(cfg: RunConfig, dataset: str, category: str, k: int, seed: int,
                    samples: Sequence[Sample | str | Path], backbone: Backbone | None = None) -> Prediction:
    """Re-score a few images from the feature cache with the references of (k, seed) — for heatmaps.

    Args:
        cfg: the run's config (model, preprocessing, WinCLIP settings, cache_dir, the dataset's root).
        dataset, category: which references and class name; k = 0 is zero-shot.
        samples: B :class:`Sample` objects or image paths.
        backbone: an already loaded backbone matching ``cfg``.

    Returns:
        :class:`~winclip_lib.model.Prediction` with score (B,), map (B, S, S) and the intermediate maps.
    """
    if dataset not in cfg.datasets:
        raise ValueError(f"dataset {dataset!r} is not in this config (has {', '.join(cfg.datasets) or 'none'})")
    if backbone is None:
        backbone = load_run_backbone(cfg)
    else:
        _check_backbone(cfg, backbone)
    loader, root = DATASET_LOADERS[dataset], cfg.datasets[dataset]
    cache = FeatureCache(cfg.cache_dir, backbone, cfg.scales, patch_ln_post=cfg.patch_ln_post,
                         resize_mode=cfg.resize_mode, image_size=cfg.image_size, batch_size=cfg.batch_size,
                         progress=False)
    model = WinCLIP(backbone, class_name(category, loader), scales=cfg.scales, temperature=cfg.temperature,
                    template_set=cfg.template_set, normalize_each=cfg.normalize_each,
                    patch_ln_post=cfg.patch_ln_post, output_size=cfg.image_size, batch_size=cfg.batch_size)
    with torch.inference_mode():
        if k > 0:
            refs = sample_references(loader, root, category, k, seed)
            model.fit(cache.features([s.image_path for s in refs], desc="references").to(backbone.device))
        paths = [s.image_path if isinstance(s, Sample) else Path(s) for s in samples]
        return model.predict_features(cache.features(paths, desc="samples").to(backbone.device))
