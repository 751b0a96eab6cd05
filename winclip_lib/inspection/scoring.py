"""Scoring your own images: ``winclip predict`` and notebook 07 call these functions.

The steps, each a small function:

1. :func:`collect_inputs` expands the IMAGES and ``--normal`` arguments (files, folders searched recursively, glob
   patterns) and checks every file (:func:`check_image`: an image extension, readable, at least
   :data:`MIN_IMAGE_SIDE` pixels on each side). A file that fails is *skipped* with its reason
   (:class:`Skipped`) and the rest go on; only an input set with no file at all is a usage error
   (:class:`NoInputError`).
2. :func:`predict_images` encodes the images through the feature cache (a second run on the same files encodes
   nothing) and scores them: zero-shot WinCLIP without references, WinCLIP+ with k = every usable reference.
3. The decision threshold (:func:`choose_threshold`): ``--threshold`` when given; else, with k >= 2 references,
   the references' own leave-one-out rule (:data:`THRESHOLD_RULE`); else no decision.
4. :func:`write_outputs` writes ``scores.csv``, ``errors.csv``, ``maps.npz`` and ``run.json`` into the output
   folder. The overlays and the page are the report layer's
   (:func:`winclip_lib.report.inspection.inspect_images` runs the whole thing).
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from winclip_lib.core.backbone import Backbone, load_backbone
from winclip_lib.core.features import Features
from winclip_lib.core.imageio import IMAGE_EXTENSIONS, ImageError, load_image
from winclip_lib.core.model import Prediction, WinCLIP
from winclip_lib.datasets.synthetic import MANIFEST_NAME
from winclip_lib.experiments.config import RunConfig, is_random_weights
from winclip_lib.experiments.feature_cache import FeatureCache
from winclip_lib.experiments.files import CSV_OPTIONS, atomic_write_bytes, atomic_write_text
from winclip_lib.experiments.grid import _check_backbone
from winclip_lib.experiments.labels import demo_label, is_synthetic_root
from winclip_lib.experiments.progress import bar, progress_enabled

__all__ = [
    "DEFAULT_OUT",
    "ERRORS_COLUMNS",
    "EXIT_SKIPPED",
    "MIN_IMAGE_SIDE",
    "OUTPUT_KIND",
    "PREDICT_SETTINGS",
    "SCORES_COLUMNS",
    "THRESHOLD_RULE",
    "Inputs",
    "NoInputError",
    "PredictionRun",
    "Skipped",
    "Threshold",
    "check_image",
    "choose_threshold",
    "collect_inputs",
    "decide",
    "expand_paths",
    "explain_image",
    "image_key",
    "leave_one_out_scores",
    "loo_threshold",
    "predict_images",
    "prepare_out_dir",
    "write_outputs",
]

#: The RunConfig settings ``winclip predict`` offers as flags (the same flags, help and defaults as ``run``).
PREDICT_SETTINGS: tuple[str, ...] = (
    "model_name", "pretrained", "precision", "device", "cache_dir", "batch_size", "resize_mode", "scales",
    "temperature", "template_set", "normalize_each", "extra_normal", "extra_anomalous", "patch_tokens",
    "smoothing_sigma",
)
#: The smallest image side accepted, in pixels: one 16-pixel patch of the ViT. Smaller images are skipped.
MIN_IMAGE_SIDE = 16
#: Exit status of ``winclip predict`` when some inputs were skipped (the rest were scored).
EXIT_SKIPPED = 3
#: Default output folder of ``winclip predict``.
DEFAULT_OUT = "winclip-predictions"
#: ``run.json``'s ``kind`` in an output folder (a folder holding it may be written again).
OUTPUT_KIND = "winclip-predict"
SCORES_COLUMNS = ("rank", "name", "path", "score", "s0", "visual_max", "decision", "width", "height")
ERRORS_COLUMNS = ("path", "role", "problem", "reason")
#: The decision rule when no ``--threshold`` is given, as documented on the page and in ``--help``.
THRESHOLD_RULE = (
    "threshold = max(s) + std(s), where s are the normal references' leave-one-out scores (each reference scored "
    "by WinCLIP+ fitted on the other k-1 references) and std is the population standard deviation (ddof = 0); an "
    "image whose score is above the threshold is called anomalous. k reference images are a small sample: this "
    "threshold is a starting point, to be checked against the ranked images and set with --threshold."
)
_GLOB_CHARS = frozenset("*?[")


class NoInputError(ValueError):
    """The IMAGES (or the --normal references) matched no file at all."""


@dataclass(frozen=True)
class Skipped:
    """A file that was not scored: ``role`` "image" or "normal", ``problem`` a short kind ("not found", "not an
    image", "unreadable", "too small"), ``reason`` the full message (names the file and the fix)."""

    path: str
    role: str
    problem: str
    reason: str


@dataclass(frozen=True)
class Inputs:
    """The checked inputs: ``images`` and ``normal`` as (path, (height, width)) pairs, in argument order."""

    images: list[tuple[Path, tuple[int, int]]]
    normal: list[tuple[Path, tuple[int, int]]]
    skipped: list[Skipped]
    #: files found among IMAGES that are also normal references (not scored as queries).
    excluded: list[Path] = field(default_factory=list)
    #: True when an input folder holds a synthetic set (the results are then labelled DEMO).
    synthetic: bool = False


# ------------------------------------------------------------------------------------------------ inputs


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _scan(folder: Path) -> list[Path]:
    """Every visible file under ``folder`` (recursively, sorted), except a synthetic set's manifest."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not _hidden(p, folder) and p.name != MANIFEST_NAME)


def expand_paths(specs: Iterable[str | Path], exclude: Iterable[str | Path] = ()) -> tuple[list[Path], list[str]]:
    """Files named by ``specs``: a file as is, a folder searched recursively (hidden files and folders left out),
    anything else as a glob pattern (``**`` recurses). Duplicates are kept once, in order; files under an
    ``exclude`` folder are left out (the output folder).

    Returns:
        (absolute paths, the specs that matched no file).
    """
    excluded = [Path(e).expanduser().resolve() for e in exclude]
    out: dict[Path, Path] = {}
    unmatched = []
    for spec in specs:
        text = os.path.expanduser(str(spec))
        path = Path(text)
        if path.is_dir():
            found = _scan(path)
        elif path.is_file():
            found = [path]
        elif _GLOB_CHARS & set(text):
            found = []
            for match in sorted(glob.glob(text, recursive=True)):
                m = Path(match)
                found += _scan(m) if m.is_dir() else [m] if m.is_file() else []
        else:
            found = []
        kept = 0
        for f in found:
            real = f.resolve()
            if any(real.is_relative_to(e) for e in excluded):
                continue
            out.setdefault(real, Path(os.path.abspath(f)))
            kept += 1
        if not kept:
            unmatched.append(str(spec))
    return list(out.values()), unmatched


def check_image(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file that can be scored.

    Raises:
        ImageError: not an image file (its extension), unreadable (missing, no permission, corrupt, truncated), or
            smaller than :data:`MIN_IMAGE_SIDE` on a side. The message names the file and the fix.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ImageError(f"{path} is not an image file (extension {path.suffix or 'none'!r}); images must end in "
                         f"{', '.join(IMAGE_EXTENSIONS)}: convert it, or leave it out")
    try:
        with path.open("rb") as f:
            f.read(1)
    except PermissionError as exc:
        raise ImageError(f"cannot read {path}: permission denied; make it readable (chmod +r)") from exc
    except FileNotFoundError as exc:
        raise ImageError(f"image file {path} does not exist") from exc
    h, w = load_image(path).shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ImageError(f"image {path} is {w} x {h} px, smaller than the minimum of {MIN_IMAGE_SIDE} x "
                         f"{MIN_IMAGE_SIDE} px (one patch of the model); use a larger photo")
    return h, w


def _problem(message: str) -> str:
    for key, words in (("not an image", "is not an image file"), ("too small", "smaller than the minimum"),
                       ("not found", "does not exist"), ("unreadable", "")):
        if words in message:
            return key
    return "unreadable"


def _check_all(paths: Sequence[Path], role: str, progress: bool | None
               ) -> tuple[list[tuple[Path, tuple[int, int]]], list[Skipped]]:
    ok, skipped = [], []
    for p in bar(paths, enabled=progress, desc=f"check {role}", unit="file", leave=False):
        try:
            ok.append((p, check_image(p)))
        except ImageError as exc:
            skipped.append(Skipped(str(p), role, _problem(str(exc)), str(exc)))
    return ok, skipped


def _is_synthetic(paths: Iterable[Path]) -> bool:
    """True when a folder holding one of ``paths`` (or above it) is a synthetic set."""
    seen: set[Path] = set()
    for p in paths:
        for folder in p.parents:
            if folder in seen:
                break
            seen.add(folder)
            if is_synthetic_root(folder):
                return True
    return False


def collect_inputs(images: Sequence[str | Path] | str | Path, normal: Sequence[str | Path] | str | Path | None = (),
                   out_dir: str | Path | None = None, progress: bool | None = None) -> Inputs:
    """Expand and check the IMAGES and the normal references (see :func:`expand_paths`, :func:`check_image`).

    A normal reference found among the IMAGES is not scored as a query (:attr:`Inputs.excluded`); files under
    ``out_dir`` are ignored (an earlier run's overlays). A spec that matched nothing, when others did, is listed as
    skipped ("not found").

    Raises:
        NoInputError: IMAGES (or, when given, the references) matched no file; the message names the specs.
    """
    image_specs = [images] if isinstance(images, str | Path) else list(images)
    normal_specs = [] if normal is None else [normal] if isinstance(normal, str | Path) else list(normal)
    exclude = [out_dir] if out_dir is not None else []
    image_files, image_unmatched = expand_paths(image_specs, exclude)
    normal_files, normal_unmatched = expand_paths(normal_specs, exclude)
    if not image_files:
        raise NoInputError(f"no file matched the IMAGES {', '.join(map(repr, image_unmatched)) or '(none given)'}: "
                           "pass image files, folders or glob patterns (quote a pattern so that the shell does "
                           "not expand it)")
    if normal_specs and not normal_files:
        raise NoInputError(f"no file matched the --normal references {', '.join(map(repr, normal_unmatched))}: "
                           "pass normal image files, folders or glob patterns, or leave out --normal (zero-shot)")
    refs = {p.resolve() for p in normal_files}
    excluded = [p for p in image_files if p.resolve() in refs]
    image_files = [p for p in image_files if p.resolve() not in refs]
    skipped = [Skipped(spec, role, "not found", f"{spec!r} matched no file (no such file or folder, an empty "
                                                "folder, or a pattern without matches): check the path")
               for role, specs in (("image", image_unmatched), ("normal", normal_unmatched)) for spec in specs]
    ok_images, bad_images = _check_all(image_files, "image", progress)
    ok_normal, bad_normal = _check_all(normal_files, "normal", progress)
    return Inputs(ok_images, ok_normal, skipped + bad_images + bad_normal, excluded,
                  _is_synthetic(image_files + normal_files))


def image_key(path: str | Path) -> str:
    """A stable name for an image file: its stem (letters, digits, ``._-``) and 8 hex digits of its absolute path,
    e.g. ``img_01-3fa2c1d0`` (names the overlay and the map in ``maps.npz``)."""
    p = Path(path)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem).strip("._-")[:60] or "image"
    digest = hashlib.sha256(os.path.abspath(p).encode()).hexdigest()[:8]
    return f"{stem}-{digest}"


# ------------------------------------------------------------------------------------------------ threshold


@dataclass(frozen=True)
class Threshold:
    """The decision threshold and how it was chosen.

    Attributes:
        value: the threshold, or None (no decision).
        source: "given" (``--threshold``), "leave-one-out" (:data:`THRESHOLD_RULE`) or "none".
        explanation: one sentence for people (the page, the command's output).
        loo_scores: the references' leave-one-out scores (k >= 2), also when the threshold was given.
    """

    value: float | None
    source: str
    explanation: str
    loo_scores: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "explanation": self.explanation,
                "rule": THRESHOLD_RULE if self.source == "leave-one-out" else None,
                "loo_scores": list(self.loo_scores),
                "loo_threshold": loo_threshold(self.loo_scores) if len(self.loo_scores) >= 2 else None}


def leave_one_out_scores(model: WinCLIP, references: Features) -> np.ndarray:
    """The WinCLIP+ score of each of k >= 2 references with the model fitted on the other k - 1 (the model's own
    memory is restored afterwards)."""
    k = len(references)
    if k < 2:
        raise ValueError(f"leave-one-out needs at least 2 references, got {k}")
    memory = model.memory
    try:
        scores = []
        for i in range(k):
            others = torch.tensor([j for j in range(k) if j != i])
            model.fit(references[others])
            scores.append(float(model.predict_features(references[i]).score[0]))
    finally:
        model.memory = memory
    return np.asarray(scores, dtype=np.float64)


def loo_threshold(scores: Sequence[float]) -> float:
    """:data:`THRESHOLD_RULE`: max + population std of the leave-one-out scores."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size < 2:
        raise ValueError(f"the leave-one-out threshold needs at least 2 scores, got {s.size}")
    return float(s.max() + s.std(ddof=0))


def choose_threshold(given: float | None, loo_scores: Sequence[float] = ()) -> Threshold:
    """``given`` when not None; else the leave-one-out rule on ``loo_scores`` (k >= 2); else no threshold."""
    loo = tuple(float(s) for s in loo_scores)
    if given is not None:
        if not math.isfinite(given):
            raise ValueError(f"--threshold must be a finite number, got {given}")
        return Threshold(float(given), "given", f"given with --threshold: {given:g}", loo)
    if len(loo) >= 2:
        value = loo_threshold(loo)
        return Threshold(value, "leave-one-out",
                         f"{value:.4f} = max + std of the {len(loo)} references' leave-one-out scores (a starting "
                         "point from a small sample; set --threshold to change it)", loo)
    have = "no normal reference" if not loo else "only one normal reference"
    return Threshold(None, "none", f"no decision: {have} and no --threshold; give --threshold T, or at least two "
                                   "--normal references (the threshold is then computed from their leave-one-out "
                                   "scores)", loo)


def decide(scores: Sequence[float] | np.ndarray, threshold: float | None) -> list[str]:
    """"anomalous" where score > threshold, else "normal"; "n/a" for every image when there is no threshold."""
    if threshold is None:
        return ["n/a"] * len(scores)
    return ["anomalous" if s > threshold else "normal" for s in np.asarray(scores, dtype=np.float64)]


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class PredictionRun:
    """The outcome of :func:`predict_images`.

    Attributes:
        config: the settings (a :class:`RunConfig`). class_name: the prompt's object name.
        images, names, sizes: the scored image files in input order, their stable names (:func:`image_key`) and
            (height, width).
        references: the normal references used (k = their number; 0 is zero-shot).
        score: (N,) final scores. s0: (N,) zero-shot image scores. visual_max: (N,) max of the visual map
            (few-shot only, else None).
        maps: (N, S, S) final anomaly maps at the model's input resolution.
        threshold: :class:`Threshold`. skipped: :class:`Skipped` files. excluded: references found among IMAGES.
        backbone: the backbone as loaded (``describe()``); is_random: random weights; label: the DEMO label or None.
        precision: the precision actually used.
        encode_counts: the feature cache's counts (``encoded`` 0 on a re-run). seconds: wall time of the scoring.
        model, cache: the fitted model and the cache (for :func:`explain_image`; None when nothing was scored).
    """

    config: RunConfig
    class_name: str
    images: list[Path]
    names: list[str]
    sizes: list[tuple[int, int]]
    references: list[Path]
    score: np.ndarray
    s0: np.ndarray
    visual_max: np.ndarray | None
    maps: np.ndarray
    threshold: Threshold
    skipped: list[Skipped]
    excluded: list[Path]
    backbone: str
    is_random: bool
    label: str | None
    encode_counts: dict[str, int]
    seconds: float
    precision: str
    model: WinCLIP | None = field(default=None, repr=False)
    cache: FeatureCache | None = field(default=None, repr=False)

    @property
    def k(self) -> int:
        return len(self.references)

    @property
    def mode(self) -> str:
        return f"WinCLIP+ (few-shot, k = {self.k})" if self.k else "WinCLIP (zero-shot)"

    @property
    def decisions(self) -> list[str]:
        return decide(self.score, self.threshold.value)

    @property
    def exit_status(self) -> int:
        """0 when every input was scored, :data:`EXIT_SKIPPED` when anything was skipped."""
        return EXIT_SKIPPED if self.skipped else 0

    def color_range(self) -> tuple[float, float]:
        """(min, max) over every map of the run: the one colour scale of all its overlays."""
        if self.maps.size == 0:
            return 0.0, 1.0
        lo, hi = float(np.nanmin(self.maps)), float(np.nanmax(self.maps))
        return (lo, hi) if hi > lo else (lo, lo + 1e-6)

    def table(self) -> pd.DataFrame:
        """One row per scored image, highest score first (:data:`SCORES_COLUMNS`)."""
        df = pd.DataFrame({
            "name": self.names,
            "path": [str(p) for p in self.images],
            "score": self.score.astype(np.float64),
            "s0": self.s0.astype(np.float64),
            "visual_max": np.full(len(self.images), np.nan) if self.visual_max is None
            else self.visual_max.astype(np.float64),
            "decision": self.decisions,
            "width": [w for _, w in self.sizes],
            "height": [h for h, _ in self.sizes],
        })
        df = df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df[list(SCORES_COLUMNS)]

    def index(self, name_or_path: str | Path | int) -> int:
        """Position of an image given by its name, its path or its rank in :meth:`table` (an int)."""
        if isinstance(name_or_path, int):
            return self.names.index(self.table()["name"].iloc[name_or_path - 1])
        key = str(name_or_path)
        for i, (n, p) in enumerate(zip(self.names, self.images, strict=True)):
            if key in (n, str(p)) or os.path.abspath(key) == str(p):
                return i
        raise KeyError(f"{name_or_path!r} is not one of the scored images")


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def predict_images(cfg: RunConfig, class_name: str, inputs: Inputs, threshold: float | None = None, *,
                   backbone: Backbone | None = None, progress: bool | None = None) -> PredictionRun:
    """Score the checked inputs: zero-shot without references, WinCLIP+ with k = every usable reference.

    Every image is encoded through the feature cache of ``cfg`` (``cache_dir``, in batches of ``batch_size``); the
    references' leave-one-out scores (k >= 2) set the threshold unless ``threshold`` is given
    (:func:`choose_threshold`). With no image to score, nothing is loaded and the run is empty.

    Raises:
        ValueError / FileNotFoundError / WeightsUnavailableError: a setting this machine cannot run (before any
            encoding).
    """
    started = time.perf_counter()
    is_random = is_random_weights(cfg.pretrained)
    label = demo_label(is_random, inputs.synthetic)
    choose_threshold(threshold)  # checks a given threshold before any work
    paths = [p for p, _ in inputs.images]
    refs = [p for p, _ in inputs.normal]
    if not paths:
        nothing = Threshold(threshold, "given" if threshold is not None else "none", "no image could be scored")
        return PredictionRun(cfg, class_name, [], [], [], refs, np.zeros(0), np.zeros(0), None, np.zeros((0, 0, 0)),
                             nothing, list(inputs.skipped), list(inputs.excluded), "none (no image to score)",
                             is_random, label, {}, 0.0, cfg.precision)
    cfg.check_runnable()
    if backbone is None:
        backbone = load_backbone(cfg.model_name, cfg.pretrained, precision=cfg.precision, device=cfg.device)
    else:
        _check_backbone(cfg, backbone)
    show = progress_enabled(progress)
    cache = FeatureCache.from_config(cfg, backbone, progress=show)
    model = WinCLIP.from_config(backbone, cfg, class_name)
    device = backbone.device
    scores, s0s, vmax, maps = [], [], [], []
    loo: np.ndarray = np.zeros(0)
    with torch.inference_mode():
        if refs:
            ref_features = cache.features(refs, desc="encode references").to(device)
            if len(refs) >= 2:
                loo = leave_one_out_scores(model, ref_features)
            model.fit(ref_features)
        chunk = max(cfg.batch_size, 32)
        for part in bar(list(_chunks(paths, chunk)), enabled=show, desc="score", unit="chunk", leave=False):
            pred = model.predict_features(cache.features(part, desc="encode images").to(device))
            scores.append(pred.score.float().cpu())
            s0s.append(pred.image_score.float().cpu())
            if model.memory is not None:
                vmax.append((2 * pred.score.double() - pred.image_score.double()).float().cpu())  # eq. 4
            maps.append(pred.map.float().cpu())
    return PredictionRun(
        config=cfg, class_name=class_name, images=paths, names=[image_key(p) for p in paths],
        sizes=[hw for _, hw in inputs.images], references=refs,
        score=torch.cat(scores).numpy(), s0=torch.cat(s0s).numpy(),
        visual_max=torch.cat(vmax).numpy() if vmax else None, maps=torch.cat(maps).numpy(),
        threshold=choose_threshold(threshold, loo), skipped=list(inputs.skipped), excluded=list(inputs.excluded),
        backbone=backbone.describe(), is_random=backbone.is_random, label=demo_label(backbone.is_random,
                                                                                      inputs.synthetic),
        encode_counts=cache.counts(), seconds=time.perf_counter() - started, precision=backbone.precision,
        model=model, cache=cache,
    )


def explain_image(run: PredictionRun, image: str | Path | int) -> Prediction:
    """The full :class:`~winclip_lib.core.model.Prediction` of one scored image (per-scale zero-shot maps, visual
    maps when few-shot), re-scored from the feature cache with the run's fitted model. ``image``: its name, path,
    or rank (1 = highest score)."""
    if run.model is None or run.cache is None:
        raise ValueError("this run scored no image")
    i = run.index(image)
    with torch.inference_mode():
        feats = run.cache.features([run.images[i]], desc="encode").to(run.model.backbone.device)
        return run.model.predict_features(feats)


# ------------------------------------------------------------------------------------------------ outputs


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
        "is_random": run.is_random,
        "label": run.label,
        "encode_counts": run.encode_counts,
        "seconds": round(run.seconds, 3),
        "seconds_per_image": round(run.seconds / n, 4) if n else None,
        "versions": {"winclip_lib": winclip_lib.__version__, "torch": torch.__version__,
                     "open_clip": open_clip.__version__},
    }
