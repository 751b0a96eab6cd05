"""The CLIP backbone: load OpenCLIP by its own names, pick precision and device.

WinCLIP uses OpenCLIP's ``ViT-B-16-plus-240`` trained on LAION-400M (tag ``laion400m_e31``): 240 x 240 input,
16-pixel patches, so a 15 x 15 grid of patch tokens of width W = 896 and a joint embedding of D = 640.

Three ways to get weights:

- a pretrained tag (``"laion400m_e31"``): looked up in the Hugging Face cache (and open_clip's URL cache); downloaded
  when online; offline (``HF_HUB_OFFLINE=1``, or the hub unreachable) it fails at once with a message that says how
  to get the weights;
- a local checkpoint path (``.bin``/``.pt``/``.pth`` loaded with ``torch.load(weights_only=True)``, or
  ``.safetensors``): a file that does not fit the model, is truncated, or holds a pickle ``weights_only`` refuses is
  one :class:`~winclip_lib.core.checkpoints.CheckpointError` line;
- ``None``: random weights from a seed — the real architecture for tests and the demo. Numbers computed with them
  are not reproduction results, and :attr:`Backbone.is_random` says so.

The file that runs is compared with the known digests of the paper's checkpoint
(:func:`~winclip_lib.core.checkpoints.verify_checkpoint`): :attr:`Backbone.weights` says which weights ran and
whether they are the paper's, and :meth:`Backbone.describe` prints it.

``precision`` converts the *weights* (``bf16`` / ``fp16``), not autocast; ``"auto"`` (the default) picks the
precision measured fastest on this machine (:mod:`winclip_lib.core.precision`). Every model is checked on loading by
:mod:`winclip_lib.core.openclip_adapter`: a module layout this library does not recognise is refused at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import open_clip
import torch

from winclip_lib.core.checkpoints import (
    PAPER_MODEL,
    PAPER_TAG,
    PRETRAINED_ENV,
    WeightsVerdict,
    entry_point,
    how_to_pass,
    is_checkpoint_path,
    load_checkpoint_file,
    verify_checkpoint,
)
from winclip_lib.core.openclip_adapter import check_model
from winclip_lib.core.precision import DEFAULT_PRECISION, PRECISIONS, PrecisionChoice, resolve_precision

DEFAULT_MODEL = PAPER_MODEL
DEFAULT_PRETRAINED = PAPER_TAG
TINY_MODEL = "WinCLIP-Tiny-240"
DEFAULT_DEVICE = "auto"

_CONFIG_DIR = Path(__file__).parent / "model_configs"
_HF_WEIGHTS = "open_clip_pytorch_model.bin"
_HF_SAFE_WEIGHTS = "open_clip_model.safetensors"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached locally nor downloadable right now."""


def register_model_configs() -> None:
    """Register this package's model configs (the tiny test model) with open_clip; idempotent."""
    if TINY_MODEL not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR)


def available_devices() -> list[str]:
    """The device names this machine can run on: "auto", "cpu", and "cuda", "cuda:0", ... when GPUs are present."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    return names


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` / ``"auto"`` picks CUDA when present, else the CPU.

    Raises:
        ValueError: a name torch does not know, or a device this machine does not have (the message lists the
            available ones).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = ", ".join(available_devices())
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; available here: {available}") from exc
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {str(device)!r} asked for, but this machine has no CUDA GPU; available here: "
                             f"{available}")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {str(device)!r} asked for, but this machine has {count} GPU(s); available "
                             f"here: {available}")
    elif dev.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; available here: {available}")
    return dev


def hf_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value (read at call time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


class BackgroundTokenizer:
    """A model's tokenizer, built on a thread of its own from the moment the backbone is made; calling it (or reading
    one of its attributes) waits for the build. open_clip's BPE tokenizer reads its 49,152 merges in Python — 0.08 s
    on the 2-core AMD EPYC, before a run's first image otherwise; the first prompts are tokenized after the first
    batch is encoded. An error of the build is raised by the first use."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._built: Future[Any] = Future()
        threading.Thread(target=self._build, args=(build,), name="winclip-tokenizer", daemon=True).start()

    def _build(self, build: Callable[[], Any]) -> None:
        try:
            self._built.set_result(build())
        except BaseException as exc:  # noqa: BLE001 - raised by the first use, on the caller's thread
            self._built.set_exception(exc)

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (waits for the build)."""
        return self._built.result()

    def __call__(self, texts: Any, *args: Any, **kwargs: Any) -> Any:
        return self.tokenizer(texts, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def __deepcopy__(self, memo: dict) -> Any:
        return self.tokenizer  # (a copy of a backbone holds the tokenizer itself)

    def __reduce__(self) -> tuple:
        return (_same, (self.tokenizer,))


def _same(value: Any) -> Any:
    return value


def _model_tokenizer(model_name: str, context_length: int) -> Any:
    """open_clip's tokenizer of a model; CLIP's BPE tokenizer for a custom name open_clip does not know."""
    try:
        return open_clip.get_tokenizer(model_name)
    except Exception:
        return open_clip.SimpleTokenizer(context_length=context_length)


@dataclass
class Backbone:
    """An OpenCLIP model in eval mode with its tokenizer and the identity of its weights.

    ``weights_id`` names the weights for cache keys: the pretrained tag, ``"file:<sha256[:16]>"`` for a checkpoint,
    ``"random:<seed>"`` for random weights, or what the caller passed to :func:`wrap_model`. ``weights`` says which
    weights ran, proven by the SHA-256 of the file (:class:`~winclip_lib.core.checkpoints.WeightsVerdict`).
    """

    model: Any  # open_clip.CLIP
    model_name: str
    weights_id: str
    precision: str
    device: torch.device
    tokenizer: Any = field(repr=False)
    precision_choice: PrecisionChoice | None = field(default=None, repr=False)
    weights: WeightsVerdict | None = field(default=None, repr=False)

    @property
    def visual(self) -> Any:
        return self.model.visual

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    @property
    def is_random(self) -> bool:
        """True for random weights: results are not a reproduction and must be labelled so."""
        return self.weights_id.startswith("random")

    @property
    def image_size(self) -> int:
        return int(self.visual.image_size[0])

    @property
    def patch_size(self) -> int:
        return int(self.visual.patch_size[0])

    @property
    def grid_size(self) -> int:
        """Patches per side (15 for ViT-B/16+ at 240 px)."""
        return int(self.visual.grid_size[0])

    @property
    def embed_dim(self) -> int:
        """D, the joint image-text embedding size (640 for ViT-B/16+)."""
        return int(self.visual.output_dim)

    @property
    def width(self) -> int:
        """W, the transformer width of the patch tokens (896 for ViT-B/16+)."""
        return int(self.visual.transformer.width)

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        cfg = getattr(self.visual, "preprocess_cfg", None) or {}
        mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        return mean, std

    def describe(self) -> str:
        """One line: model / weights id / precision / device, then the DEMO note for random weights or the weights
        verdict ("weights: laion400m_e31 (SHA-256 verified)", ...)."""
        label = " (RANDOM WEIGHTS: not a reproduction)" if self.is_random else ""
        how = ""
        if self.precision_choice is not None and self.precision_choice.source != "argument":
            how = f" [{self.precision_choice.describe()}]"
        if self.weights is not None and not self.is_random:
            label = f" — {self.weights.describe()}"
        return f"{self.model_name} / {self.weights_id} / {self.precision}{how} / {self.device}{label}"


def wrap_model(
    model: Any,
    model_name: str = "custom",
    weights_id: str = "custom",
    *,
    precision: str = DEFAULT_PRECISION,
    device: str | torch.device | None = None,
    tokenizer: Any = None,
    weights: WeightsVerdict | None = None,
) -> Backbone:
    """Wrap an already-built open_clip CLIP model (e.g. with injected weights) as a :class:`Backbone`.

    The model's layout is checked (:func:`~winclip_lib.core.openclip_adapter.check_model`), then it is put in eval
    mode, frozen, moved to ``device`` and its weights converted to ``precision`` (``"auto"`` resolved for that
    device, :func:`~winclip_lib.core.precision.resolve_precision`). ``weights``: the verdict on the weights (default:
    "random" for a ``random:`` weights id, else "unverified" — weights passed in are not checked).

    Raises:
        UnsupportedOpenCLIPError: a model whose modules this library does not recognise.
    """
    check_model(model)
    dev = resolve_device(device)
    choice = resolve_precision(precision, dev)
    model = model.eval().requires_grad_(False).to(device=dev, dtype=PRECISIONS[choice.precision])
    if tokenizer is None:
        context_length = getattr(model, "context_length", 77)
        tokenizer = BackgroundTokenizer(lambda: _model_tokenizer(model_name, context_length))
    if weights is None:
        weights = WeightsVerdict("random" if weights_id.startswith("random") else "unverified", model_name)
    return Backbone(model, model_name, weights_id, choice.precision, dev, tokenizer, choice, weights)


def _hf_repo(cfg: dict) -> tuple[str, list[str]]:
    """(repo_id, candidate filenames) of a pretrained cfg's ``hf_hub`` entry ('org/name/' or 'org/name/file')."""
    repo_id, filename = os.path.split(cfg.get("hf_hub", ""))
    names = [filename] if filename else [_HF_SAFE_WEIGHTS, _HF_WEIGHTS]
    return repo_id, names


def find_cached_weights(model_name: str, tag: str, cache_dir: str | None = None) -> Path | None:
    """The local file holding ``tag``'s weights, from the HF cache or open_clip's URL cache, else None."""
    import huggingface_hub

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    repo_id, names = _hf_repo(cfg)
    if repo_id:
        for name in names:
            hit = huggingface_hub.try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
    url = cfg.get("url", "")
    if url:
        local = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(urlparse(url).path)
        if local.is_file():
            return local
    return None


@contextlib.contextmanager
def _quiet_open_clip():
    """Silence open_clip's "No pretrained weights loaded" warning where that is intended."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _hub_reachable(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _weights_help(model_name: str, tag: str, reason: str) -> str:
    """The offline error: how to get the weights, and how to pass a file in the way of the entry point in use
    (:func:`~winclip_lib.core.checkpoints.entry_point`)."""
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    repo_id, names = _hf_repo(cfg)
    entry = entry_point(tag)
    pass_file, pass_random = how_to_pass(entry)
    also = "" if entry == "env" else f"\n      (or, for every entry point: export {PRETRAINED_ENV}=/path/to/file)"
    what = f"pretrained weights {tag!r} for OpenCLIP model {model_name!r} are not in the local cache and {reason}"
    head = f"{PRETRAINED_ENV}={tag} is set, and {what}" if entry == "env" else what[0].upper() + what[1:]
    return (
        f"{head}.\n"
        "To get them:\n"
        f"  * run once with internet access (the weights are then cached, ~800 MB):\n"
        f"      python -c \"import open_clip; open_clip.create_model('{model_name}', pretrained='{tag}')\"\n"
        f"    or: hf download {repo_id} {names[0]}\n"
        f"  * or download the checkpoint on a connected machine ({cfg.get('url') or repo_id}), copy it here and pass "
        "its path (data_prep/README.md, 'Offline: the weights and the data'):\n"
        f"      {pass_file}{also}\n"
        "  * or, for tests and the demo only, use random weights (NOT a reproduction):\n"
        f"      {pass_random}"
    )


def load_backbone(
    model_name: str = DEFAULT_MODEL,
    pretrained: str | Path | None = DEFAULT_PRETRAINED,
    *,
    precision: str = DEFAULT_PRECISION,
    device: str | torch.device | None = DEFAULT_DEVICE,
    seed: int = 0,
    cache_dir: str | None = None,
) -> Backbone:
    """Build an OpenCLIP model by name and load its weights.

    Args:
        model_name: an open_clip model name (``"ViT-B-16-plus-240"``, or :data:`TINY_MODEL` for fast tests).
        pretrained: an open_clip pretrained tag, a checkpoint path, or None / ``"random"`` for seeded random weights.
        precision: ``"auto"`` (the fastest measured here, :mod:`~winclip_lib.core.precision`), ``"fp32"``,
            ``"bf16"`` or ``"fp16"`` — converts the weights.
        device: ``"auto"`` / ``None`` picks CUDA when present.
        seed: seed of the random weights (only with ``pretrained=None``).
        cache_dir: where pretrained weights are cached (default: the HF cache).

    Raises:
        WeightsUnavailableError: a tag whose weights are not cached while offline (``HF_HUB_OFFLINE=1``) or with
            the hub unreachable; raised at once, with the ways to get the weights.
        CheckpointError: a checkpoint file (given, or found in the cache) that cannot run: one line naming it.
        ValueError / FileNotFoundError: unknown model name or tag, precision or device, missing checkpoint file.
    """
    register_model_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r}; e.g. {DEFAULT_MODEL!r} or {TINY_MODEL!r}")
    resolve_precision(precision, resolve_device(device))

    if pretrained is None or str(pretrained).lower() in {"none", "random"}:
        with torch.random.fork_rng(devices=[]), _quiet_open_clip():
            torch.manual_seed(seed)
            model = open_clip.create_model(model_name, pretrained=None)
        return wrap_model(model, model_name, f"random:{seed}", precision=precision, device=device,
                          weights=WeightsVerdict.random(model_name))

    pretrained = str(pretrained)
    if is_checkpoint_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path} (pass an existing file, or a pretrained tag)")
    else:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained not in tags:
            raise ValueError(f"unknown pretrained tag {pretrained!r} for {model_name!r}; known tags: {tags}")
        cached = find_cached_weights(model_name, pretrained, cache_dir)
        if cached is None:
            if hf_offline():
                raise WeightsUnavailableError(_weights_help(model_name, pretrained, "HF_HUB_OFFLINE is set"))
            if not _hub_reachable():
                raise WeightsUnavailableError(_weights_help(model_name, pretrained, "the hub is unreachable"))
            model = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir)
            downloaded = find_cached_weights(model_name, pretrained, cache_dir)
            verdict = (verify_checkpoint(downloaded, model_name, pretrained) if downloaded is not None
                       else WeightsVerdict("unverified", model_name, pretrained))
            return wrap_model(model, model_name, pretrained, precision=precision, device=device, weights=verdict)
        path = cached

    with _quiet_open_clip():
        model = open_clip.create_model(model_name, pretrained=None)
    load_checkpoint_file(model, path, model_name)
    verdict = verify_checkpoint(path, model_name, pretrained)
    weights_id = f"file:{verdict.sha256[:16]}" if is_checkpoint_path(pretrained) else pretrained
    return wrap_model(model, model_name, weights_id, precision=precision, device=device, weights=verdict)
