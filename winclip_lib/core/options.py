"""The method's settings, each defined once with its default: :class:`WinCLIPOptions`.

The experiment configuration (:class:`winclip_lib.experiments.config.RunConfig`) extends this dataclass with the
settings of a run, and the command line and the notebooks are built from the fields of both: each field carries its
help text, its choices, and whether it changes results (see :func:`setting`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from winclip_lib.core.choices import check_choice
from winclip_lib.core.encoder import PATCH_TOKENS
from winclip_lib.core.fewshot import FEWSHOT_IMAGE_SCORES, FUSIONS, MEMORIES
from winclip_lib.core.geometry import RESIZE_MODES
from winclip_lib.core.prompts import PROMPT_ENSEMBLES, TEMPLATE_SETS
from winclip_lib.core.scoring import DENSE_FEATURES, IMAGE_SCORES, WINDOW_AGGREGATIONS, ZERO_SHOT_MAPS

__all__ = ["WinCLIPOptions", "replace_settings", "set_frozen", "setting"]


def setting(default: Any, help: str, *, choices: Iterable[Any] | None = None, results: bool = True,
            cli: bool = True, flag: str | None = None, metavar: str | None = None) -> Any:
    """A dataclass field that is a setting: its default, its help text, its allowed values (``choices``), whether it
    changes results (``results``: part of the result identity of a run), whether the command line offers it
    (``cli``) and under which flag (default: ``--<name-with-dashes>``). A ``default`` that is a function is called
    for each new object (a default read from the environment when the object is made)."""
    metadata = {"help": help, "choices": None if choices is None else tuple(choices), "results": results,
                "cli": cli, "flag": flag, "metavar": metavar}
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def replace_settings(obj: Any, changes: Mapping[str, Any]) -> Any:
    """``dataclasses.replace`` with a clear error for a name that is not a setting of ``obj``."""
    known = {f.name for f in fields(obj)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)} for {type(obj).__name__}; known: "
                         f"{', '.join(sorted(known))}")
    return dataclasses.replace(obj, **changes)


def set_frozen(obj: Any, name: str, value: Any) -> None:
    """Set field ``name`` of a frozen dataclass ``obj`` (for ``__post_init__``, which normalises its settings)."""
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class WinCLIPOptions:
    """How WinCLIP encodes and scores (the paper's choices are the defaults)."""

    scales: tuple[int, ...] = setting((2, 3), "window sizes in patches (the paper: 2 and 3)", metavar="K")
    temperature: float = setting(0.07, "softmax temperature T of the text scores")
    template_set: str | tuple[str, ...] = setting(
        "paper", "prompt templates of the ensemble: a named set, or (in Python) a list of templates with one {}",
        choices=TEMPLATE_SETS)
    prompt_ensemble: str = setting("cpe", "prompts: the full compositional ensemble (cpe), or the ablation's reduced "
                                          "forms: state words only, 'normal [c]' vs 'anomalous [c]' (two_class), "
                                          "'normal [c]' alone (one_class)", choices=PROMPT_ENSEMBLES)
    normalize_each: bool = setting(False, "normalise each prompt embedding before averaging (else: average, then "
                                          "normalise)")
    extra_normal: tuple[str, ...] = setting((), "extra normal state words with one {} (e.g. '{} without scratch')",
                                            metavar="STATE")
    extra_anomalous: tuple[str, ...] = setting((), "extra anomalous state words with one {} (e.g. '{} with scratch')",
                                               metavar="STATE")
    patch_tokens: str = setting("ln_post", "WinCLIP+ patch memory: the last block's tokens after ln_post "
                                           "(open_clip's own), without it (raw), or the second-to-last block's "
                                           "(penultimate, penultimate_ln_post)", choices=PATCH_TOKENS)
    resize_mode: str = setting("resize", "preprocessing: resize the whole image to the input size (no crop), or "
                                         "'crop': shorter side to the input size, then the centre crop",
                               choices=RESIZE_MODES)
    smoothing_sigma: float = setting(0.0, "Gaussian smoothing of the final maps, in pixels (0: off)")
    image_score: str = setting("s0", "zero-shot image score: s0 (the whole-image text score), or s0 fused with the "
                                     "map's max (s0_map_max), with the windows' mean or max per scale "
                                     "(s0_windows_mean, s0_windows_max), the mean over five crops (multicrop), or "
                                     "the map's max "
                                     "(map_max)", choices=IMAGE_SCORES)
    zero_shot_map: str = setting("harmonic", "zero-shot map: the harmonic mean of s0 and the per-scale maps, or one "
                                             "minus the harmonic mean of the normal probabilities (normal_complement)",
                                 choices=ZERO_SHOT_MAPS)
    image_term: bool = setting(True, "include the image score s0 in the zero-shot map")
    window_aggregation: str = setting("harmonic", "window scores to patches in the zero-shot map: harmonic (eq. 1) or "
                                                  "mean", choices=WINDOW_AGGREGATIONS)
    dense_features: str = setting("windows", "what the zero-shot map is built from: masked windows (WinCLIP), tiles "
                                             "(each window region cropped and encoded whole) or the projected patch "
                                             "tokens", choices=DENSE_FEATURES)
    memories: tuple[str, ...] = setting(MEMORIES, "WinCLIP+ memories that take part: windows and/or patches",
                                        metavar="MEMORY")
    visual_aggregation: str = setting("harmonic", "window distances to patches in the visual map: harmonic or mean",
                                      choices=WINDOW_AGGREGATIONS)
    fusion: str = setting("mean", "WinCLIP+ map: (Z + V) / 2 (mean), Z + V (sum), 1 / (1/Z + 1/V) (harmonic), or V "
                                  "alone (visual: no language term)", choices=FUSIONS)
    fewshot_image_score: str = setting("mean", "WinCLIP+ image score: (zero-shot score + max V) / 2 (mean) or the "
                                               "max of the final map (map_max)", choices=FEWSHOT_IMAGE_SCORES)
    batch_size: int | str = setting("auto", "images per encoding pass; auto: from the device and its free memory "
                                            "(8 on the CPU, up to 256 on a GPU)", results=False, metavar="{auto,N}")

    def __post_init__(self) -> None:
        set_frozen(self, "scales", tuple(int(k) for k in self.scales))
        if not self.scales or min(self.scales) < 1:
            raise ValueError(f"scales must name at least one window size >= 1, got {self.scales}")
        if isinstance(self.template_set, str):
            check_choice("template set", self.template_set, TEMPLATE_SETS)
        else:
            set_frozen(self, "template_set", tuple(str(t) for t in self.template_set))
            if not self.template_set:
                raise ValueError("template_set must name a set or list at least one template")
        set_frozen(self, "extra_normal", tuple(str(s) for s in self.extra_normal))
        set_frozen(self, "extra_anomalous", tuple(str(s) for s in self.extra_anomalous))
        for text in (*([] if isinstance(self.template_set, str) else self.template_set), *self.extra_normal,
                     *self.extra_anomalous):
            if text.count("{}") != 1:
                raise ValueError(f"template or state {text!r} must contain exactly one '{{}}'")
        set_frozen(self, "temperature", float(self.temperature))
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        set_frozen(self, "memories", tuple(dict.fromkeys(str(m) for m in self.memories)))
        if not self.memories or set(self.memories) - set(MEMORIES):
            raise ValueError(f"memories must name one or more of {', '.join(MEMORIES)}, got {list(self.memories)}")
        for name, choices in (("prompt_ensemble", PROMPT_ENSEMBLES), ("image_score", IMAGE_SCORES),
                              ("zero_shot_map", ZERO_SHOT_MAPS), ("window_aggregation", WINDOW_AGGREGATIONS),
                              ("dense_features", DENSE_FEATURES),
                              ("visual_aggregation", WINDOW_AGGREGATIONS), ("fusion", FUSIONS),
                              ("fewshot_image_score", FEWSHOT_IMAGE_SCORES)):
            check_choice(name.replace("_", " "), getattr(self, name), choices)
        check_choice("patch tokens", self.patch_tokens, PATCH_TOKENS)
        check_choice("resize mode", self.resize_mode, RESIZE_MODES)
        set_frozen(self, "smoothing_sigma", float(self.smoothing_sigma))
        if self.smoothing_sigma < 0:
            raise ValueError(f"smoothing_sigma must be >= 0, got {self.smoothing_sigma}")
        if str(self.batch_size).lower() == "auto":
            set_frozen(self, "batch_size", "auto")
        else:
            try:
                set_frozen(self, "batch_size", int(self.batch_size))
            except (TypeError, ValueError):
                raise ValueError(f"batch_size must be a positive integer or 'auto', got {self.batch_size!r}") from None
            if self.batch_size < 1:
                raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def from_config(cls, config: Any) -> WinCLIPOptions:
        """The method's options out of any settings object that has them (e.g. a ``RunConfig``)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    def replace(self, **changes: Any) -> WinCLIPOptions:
        return replace_settings(self, changes)

    def feature_request(self) -> dict[str, Any]:
        """What the encoder must compute for these options: keyword arguments of
        :func:`~winclip_lib.core.encoder.encode_images` (window scales, patch-token variants, extras)."""
        patches = (self.patch_tokens, "ln_post") if self.dense_features == "patch_tokens" else (self.patch_tokens,)
        return {"scales": self.scales, "patch_tokens": tuple(dict.fromkeys(patches)),
                "crops": self.image_score == "multicrop",
                "tile_scales": self.scales if self.dense_features == "tiles" else ()}
