"""One configuration: :class:`RunConfig` defines every setting of a run, with its default.

It extends the method's :class:`~winclip_lib.core.options.WinCLIPOptions` with what a run adds (datasets, k, seeds,
backbone, device, evaluation, folders). The command line (:mod:`winclip_lib.cli`), the notebooks'
parameters (:meth:`RunConfig.from_settings`), the model (:meth:`winclip_lib.WinCLIP.from_config`) and the feature
cache (:meth:`~winclip_lib.experiments.feature_cache.FeatureCache.from_config`) are all built from its fields; adding a
setting means adding one field here (with its help text) and using it.

A config validates its values when it is made (an unknown template set, precision or resize mode fails before any
work); :meth:`RunConfig.check_runnable` also checks what depends on this machine (the device, the model name and
weights tag) and is called before anything is encoded.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from winclip_lib.core.backbone import DEFAULT_DEVICE, DEFAULT_MODEL, resolve_device
from winclip_lib.core.checkpoints import PRETRAINED_ENV, default_pretrained, is_checkpoint_path
from winclip_lib.core.choices import check_choice
from winclip_lib.core.geometry import MASK_METHODS
from winclip_lib.core.options import WinCLIPOptions, replace_settings, set_frozen, setting
from winclip_lib.core.precision import DEFAULT_PRECISION, PRECISION_CHOICES, check_precision
from winclip_lib.datasets.catalog import DATASET_LOADERS
from winclip_lib.datasets.references import REFERENCE_SAMPLINGS
from winclip_lib.evaluation.metrics import AUPRO_METHODS

__all__ = ["CLASS_NAME_STYLES", "RunConfig", "is_random_weights", "setting_fields"]

CLASS_NAME_STYLES = ("words", "folder")
#: Keys run.json files of earlier versions may hold that are no longer settings (ignored when read back).
_RETIRED = ("image_size",)


def _optional_int(name: str, value: Any) -> int | None:
    """A setting typed ``int | None`` as given in any form (7, "7", 7.0; None or "none": not set)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number.is_integer():
        raise ValueError(f"{name} must be a whole number or none, got {value!r}")
    return int(number)


def is_random_weights(pretrained: str | None) -> bool:
    """True for the ``pretrained`` values that mean random weights: None, "none", "random"."""
    return pretrained is None or str(pretrained).lower() in ("none", "random")


@dataclass(frozen=True)
class RunConfig(WinCLIPOptions):
    """One experiment grid: datasets x categories x k x seeds, and every setting of the method and the run.

    Each field's help text is in its metadata (``winclip run --help`` lists them all);
    :meth:`to_dict` / :meth:`from_dict` round-trip it through JSON (``run.json``).
    """

    datasets: dict[str, str] = setting({}, "dataset name -> root folder (mvtec, visa, mpdd, synthetic); run in this "
                                           "order", cli=False)
    categories: dict[str, list[str] | None] = setting({}, "dataset name -> categories to run (missing or None: every "
                                                          "category present)", cli=False)
    shots: tuple[int, ...] = setting((0, 1, 2, 4), "k: 0 is zero-shot WinCLIP (run once), k > 0 is WinCLIP+ with k "
                                                   "normal reference images", metavar="K")
    seeds: tuple[int, ...] = setting((0, 1, 2, 3, 4), "reference draws for each k > 0 (the paper: 5)",
                                     metavar="SEED")
    reference_sampling: str = setting("permutation", "how the k references are drawn from the normal training "
                                                     "images", choices=REFERENCE_SAMPLINGS)
    model_name: str = setting(DEFAULT_MODEL, "open_clip model name (WinCLIP-Tiny-240: the tiny test model)",
                              flag="--model")
    pretrained: str | None = setting(default_pretrained, "open_clip pretrained tag, a checkpoint path, or none: "
                                                         f"random weights (NOT a reproduction); default: "
                                                         f"${PRETRAINED_ENV} when set, else laion400m_e31")
    precision: str = setting(DEFAULT_PRECISION, "weights precision; auto: the fastest measured on this machine",
                             choices=PRECISION_CHOICES)
    device: str = setting(DEFAULT_DEVICE, "auto (CUDA when present), cpu, cuda, cuda:1, ...", results=False)
    eval_resolution: str = setting("240", "pixel metrics at N x N (maps resized from the patch grid, masks through the "
                                          "images' geometry; 240 is the model input), or 'mask': at each mask's own "
                                          "resolution", metavar="{240,mask,N}")
    mask_resize: str = setting("area", "how masks are resized: area (exact coverage, >= 0.5), nearest, or bilinear "
                                       "(> 0.5)", choices=MASK_METHODS)
    aupro: str = setting("exact", "PRO integration: exact, or thresholds200 (200 thresholds, FPR axis rescaled, as "
                                  "the public WinCLIP codes compute it)", choices=AUPRO_METHODS)
    class_names: str = setting("words", "the object's name in the prompts: words ('metal nut', 'printed circuit "
                                        "board') or the folder name as it is ('metal_nut', 'pcb1')",
                               choices=CLASS_NAME_STYLES)
    defect_states: bool = setting(False, "add anomalous state words built from the test set's defect folder names "
                                         "('{} with broken large'): uses test-set information")
    max_test_images: int | None = setting(None, "evaluate each category on at most this many test images (half normal, "
                                                "half anomalous, the first of each in listing order); none: all",
                                          metavar="N")
    masks: bool = setting(True, "evaluate pixel metrics against the ground-truth masks (--no-masks: image metrics "
                                "only, for datasets whose anomalous images have no masks)")
    preset: str | None = setting(None, "the named preset these settings started from (record only; see "
                                       "winclip_lib.experiments.presets)", results=False, cli=False)
    cache_dir: str = setting(".cache/winclip/features", "the feature cache (encoded images, reused by every run); "
                                                        "none: no cache on disk, each category's features kept in "
                                                        "memory for its scoring only", results=False)
    out_dir: str = setting("build/results", "where the results go", results=False, flag="--out")

    def __post_init__(self) -> None:
        super().__post_init__()
        set_frozen(self, "datasets", {str(k): str(v) for k, v in self.datasets.items()})
        set_frozen(self, "categories", {str(k): None if v is None else [str(c) for c in v]
                                     for k, v in self.categories.items()})
        set_frozen(self, "shots", tuple(sorted({int(k) for k in self.shots})))
        set_frozen(self, "seeds", tuple(dict.fromkeys(int(s) for s in self.seeds)))
        set_frozen(self, "pretrained", None if is_random_weights(self.pretrained) else str(self.pretrained))
        set_frozen(self, "cache_dir", str(self.cache_dir))
        set_frozen(self, "out_dir", str(self.out_dir))
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
        check_choice("reference sampling", self.reference_sampling, REFERENCE_SAMPLINGS)
        set_frozen(self, "eval_resolution", str(self.eval_resolution))
        if self.eval_resolution != "mask" and not (self.eval_resolution.isdigit() and int(self.eval_resolution) > 0):
            raise ValueError(f"eval_resolution must be 'mask' or a positive side in pixels (e.g. 240), got "
                             f"{self.eval_resolution!r}")
        check_choice("mask resize", self.mask_resize, MASK_METHODS)
        check_choice("AUPRO method", self.aupro, AUPRO_METHODS)
        check_choice("class-name style", self.class_names, CLASS_NAME_STYLES)
        check_precision(self.precision)
        set_frozen(self, "max_test_images", _optional_int("max_test_images", self.max_test_images))
        if self.max_test_images is not None and self.max_test_images < 2:
            raise ValueError(f"max_test_images must be at least 2 (a normal and an anomalous image), got "
                             f"{self.max_test_images}")

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None, *, preset: str | None = None,
                      **named: Any) -> RunConfig:
        """A config from settings given by name, where a value of None means "the default" (how the notebooks'
        parameters reach it: a parameter left at None takes the default defined here). A ``preset``
        (:mod:`~winclip_lib.experiments.presets`) is applied first; ``settings`` and ``named`` are merged over it,
        ``named`` winning; unknown names raise ValueError."""
        from winclip_lib.experiments.presets import preset_settings

        merged = {**dict(settings or {}), **named}
        explicit = {k: v for k, v in merged.items() if v is not None}
        base = cls()
        if preset:
            base = replace_settings(base, {**preset_settings(preset), "preset": preset})
        return replace_settings(base, explicit)

    def replace(self, **changes: Any) -> RunConfig:
        return replace_settings(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError (keys of retired settings are ignored)."""
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k not in _RETIRED}
        extra = sorted(set(d) - names)
        if extra:
            raise ValueError(f"unknown RunConfig field(s) {extra}; known: {sorted(names)}")
        return cls(**d)

    # -- checks that depend on this machine ------------------------------------------------------------------
    def check_runnable(self) -> None:
        """Raise ValueError / FileNotFoundError for a setting this machine cannot run: the device (the message
        lists the available ones), an unknown model name or weights tag, a missing checkpoint file."""
        import open_clip

        from winclip_lib.core.backbone import TINY_MODEL, register_model_configs

        resolve_device(self.device)
        register_model_configs()
        if self.model_name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {self.model_name!r}; e.g. {DEFAULT_MODEL!r} or {TINY_MODEL!r}")
        if self.pretrained is None:
            return
        path = Path(self.pretrained).expanduser()
        if is_checkpoint_path(self.pretrained):
            if not path.is_file():
                raise FileNotFoundError(f"checkpoint file not found: {path} (pass an existing file, or a pretrained "
                                        "tag)")
            return
        tags = open_clip.list_pretrained_tags_by_model(self.model_name)
        if self.pretrained not in tags:
            raise ValueError(f"unknown pretrained tag {self.pretrained!r} for {self.model_name!r}; known tags: "
                             f"{', '.join(tags) or 'none'} (or none: random weights)")

    # -- identity ------------------------------------------------------------------------------------------
    def result_settings(self) -> dict[str, Any]:
        """Every setting that changes results, by name (the backbone's as asked for; the runner records the
        backbone as loaded)."""
        d = self.to_dict()
        return {f.name: d[f.name] for f in fields(self)
                if f.metadata.get("results", True) and f.name not in ("datasets", "categories")}


def setting_fields(cls: type = RunConfig) -> list[tuple[Any, Any]]:
    """(field, resolved type) of every setting of a settings dataclass, in definition order."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in fields(cls)]
