"""Compositional Prompt Ensemble, CPE (WinCLIP §3.2, Fig. 5).

A prompt is a *template* filled with a *state* of the object: 7 normal states and 4 anomalous states, each in 22
templates, give 154 normal and 88 anomalous prompts (242 in all). Each group is encoded by CLIP's text tower and
averaged into one embedding, so a class has two text embeddings, rows [normal, anomalous]::

    t_normal    = normalise( mean_{s in normal states, T in templates} E_text(T(s(c))) )
    t_anomalous = normalise( mean_{s in anomalous states, T in templates} E_text(T(s(c))) )

The paper's CPE ablation strips the ensemble step by step (:data:`PROMPT_ENSEMBLES`): ``"states"`` keeps the state
words without templates; ``"two_class"`` is one prompt per class, "normal [c]" and "anomalous [c]" (CLIP-AC);
``"one_class"`` is the normal prompt alone — its anomalous row is the negated normal embedding, so the anomaly
probability sigmoid(-2 cos(f, t_n) / T) falls as an embedding comes closer to "normal [c]".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import torch
import torch.nn.functional as F

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.choices import check_choice
from winclip_lib.core.text_tower import encode_text

NORMAL_STATES: tuple[str, ...] = (
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
)
ANOMALOUS_STATES: tuple[str, ...] = ("damaged {}", "{} with flaw", "{} with defect", "{} with damage")

#: The paper's 22 templates (Fig. 5), in its order.
TEMPLATES: tuple[str, ...] = (
    "a cropped photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of the {}.",
    "a dark photo of a {}.",
    "a jpeg corrupted photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a blurry photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.",
    "a photo of a {} for anomaly detection.",
)


def _anomalib_templates() -> tuple[str, ...]:
    """anomalib's 21 templates: the paper's without "a cropped photo of a {}." and "a jpeg corrupted photo of a
    {}.", with "a jpeg corrupted photo of the {}." listed twice (AnomalyCLIP authors' code uses the same list)."""
    out: list[str] = []
    for t in TEMPLATES:
        if t == "a cropped photo of a {}.":
            continue
        if t == "a jpeg corrupted photo of a {}.":
            t = "a jpeg corrupted photo of the {}."
        out.append(t)
    return tuple(out)


#: How much of the ensemble is used: the full CPE, or the ablation's reduced forms (see the module docstring).
PROMPT_ENSEMBLES = ("cpe", "states", "two_class", "one_class")

#: Named template sets: the paper's, anomalib's 21-template variant, and the paper's without trailing periods.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "paper": TEMPLATES,
    "anomalib": _anomalib_templates(),
    "no_period": tuple(t.rstrip(".") for t in TEMPLATES),
}


def build_prompts(
    class_name: str,
    template_set: str | Sequence[str] = "paper",
    extra_normal: Sequence[str] = (),
    extra_anomalous: Sequence[str] = (),
    ensemble_kind: str = "cpe",
) -> dict[str, list[str]]:
    """The prompt ensemble of one class.

    Args:
        class_name: the object's name in words ("metal nut").
        template_set: a name in :data:`TEMPLATE_SETS` or a sequence of templates with one ``{}``.
        extra_normal / extra_anomalous: task-specific state words with one ``{}`` (e.g. "{} without scratch").
        ensemble_kind: one of :data:`PROMPT_ENSEMBLES` (the reduced forms ignore templates and extra states).

    Returns:
        {"normal": [...], "anomalous": [...]}, state-major: all templates of state 1, then of state 2, ...
        ("one_class": no anomalous prompt).
    """
    check_choice("prompt ensemble", ensemble_kind, PROMPT_ENSEMBLES)
    if ensemble_kind in ("two_class", "one_class"):
        if not class_name or not class_name.strip():
            raise ValueError("class_name must be a non-empty string")
        return {"normal": [f"normal {class_name}"],
                "anomalous": [] if ensemble_kind == "one_class" else [f"anomalous {class_name}"]}
    if ensemble_kind == "states":
        template_set = ("{}",)
    if not class_name or not class_name.strip():
        raise ValueError("class_name must be a non-empty string")
    if isinstance(template_set, str):
        if template_set not in TEMPLATE_SETS:
            raise ValueError(f"unknown template set {template_set!r}; choose from {sorted(TEMPLATE_SETS)}")
        templates = TEMPLATE_SETS[template_set]
    else:
        templates = tuple(template_set)
    for s in (*templates, *extra_normal, *extra_anomalous):
        if s.count("{}") != 1:
            raise ValueError(f"template/state {s!r} must contain exactly one '{{}}'")

    def fill(states: Sequence[str]) -> list[str]:
        return [t.format(s.format(class_name)) for s in states for t in templates]

    return {"normal": fill((*NORMAL_STATES, *extra_normal)), "anomalous": fill((*ANOMALOUS_STATES, *extra_anomalous))}


def ensemble(embeddings: torch.Tensor, normalize_each: bool = False) -> torch.Tensor:
    """(N, D) prompt embeddings -> (D,) unit-norm ensemble embedding.

    Default: average the raw embeddings, then normalise (the common choice); ``normalize_each`` normalises each prompt
    embedding before averaging.
    """
    if normalize_each:
        embeddings = F.normalize(embeddings, dim=-1)
    return F.normalize(embeddings.mean(dim=0), dim=-1)


class TextEmbeddingCache:
    """In-memory cache of (2, D) class text embeddings keyed by (model, weights, precision, class, prompt set);
    thread-safe: a class asked for while another thread encodes it is waited for, not encoded twice."""

    def __init__(self) -> None:
        self._store: dict[tuple, torch.Tensor] = {}
        self._pending: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self.encodes = 0  # how many classes were actually encoded

    def get(self, key: tuple) -> torch.Tensor | None:
        return self._store.get(key)

    def put(self, key: tuple, value: torch.Tensor) -> None:
        self._store[key] = value

    def get_or_compute(self, key: tuple, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The entry of ``key``; computed with ``compute()`` (and counted in :attr:`encodes`) when there is none, or
        waited for when another thread is computing it."""
        with self._lock:
            hit = self._store.get(key)
            if hit is not None:
                return hit
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = Future()
        if not owner:
            return pending.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            self._store[key] = value
            self.encodes += 1
            del self._pending[key]
        pending.set_result(value)
        return value

    def __len__(self) -> int:
        return len(self._store)


def text_embeddings(
    backbone: Backbone,
    class_name: str,
    template_set: str | Sequence[str] = "paper",
    *,
    normalize_each: bool = False,
    extra_normal: Sequence[str] = (),
    extra_anomalous: Sequence[str] = (),
    ensemble_kind: str = "cpe",
    cache: TextEmbeddingCache | None = None,
) -> torch.Tensor:
    """The class's two CPE text embeddings.

    Args:
        ensemble_kind: the full CPE or a reduced form (:data:`PROMPT_ENSEMBLES`).
        cache: where to look up and store the result, keyed by (model, weights, precision, device, prompts,
            normalize_each), so that a class is encoded once per cache; None encodes every time.

    Returns:
        (2, D) float32 unit-norm rows [normal, anomalous], on the backbone's device ("one_class": the anomalous
        row is the negated normal one).
    """
    prompts = build_prompts(class_name, template_set, extra_normal, extra_anomalous, ensemble_kind)
    key = (
        backbone.model_name, backbone.weights_id, backbone.precision, str(backbone.device),
        tuple(prompts["normal"]), tuple(prompts["anomalous"]), normalize_each,
    )

    def compute() -> torch.Tensor:
        normal = ensemble(encode_text(backbone, prompts["normal"]), normalize_each)
        anomalous = ensemble(encode_text(backbone, prompts["anomalous"]), normalize_each) if prompts["anomalous"] \
            else -normal
        return torch.stack([normal, anomalous])

    return compute() if cache is None else cache.get_or_compute(key, compute)
