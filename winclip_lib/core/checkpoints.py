"""Checkpoint files: which weights ran, proven by their SHA-256, and one clear line for a file that cannot run.

The paper's numbers come from one file: OpenCLIP's ``ViT-B-16-plus-240`` trained on LAION-400M, tag
``laion400m_e31`` (:data:`PAPER_MODEL`, :data:`PAPER_TAG`). It is distributed twice, as different bytes: open_clip's
GitHub release (a ``.pt`` pickle) and the Hugging Face hub (``open_clip_model.safetensors``). :data:`KNOWN_DIGESTS`
holds the full SHA-256 of each distribution of that checkpoint and of ``laion400m_e32`` (the other LAION-400M tag of
the architecture), each with the public page that lists it.

- :func:`verify_checkpoint` hashes the file that is about to run (once: the digest is remembered per path, size and
  modification time, :func:`checkpoint_sha256`) and gives a :class:`WeightsVerdict`: "weights: laion400m_e31 (SHA-256
  verified)", "weights: laion400m_e32 — not the paper's", or "weights: unverified checkpoint". Random weights get
  the verdict "random" and keep the DEMO label.
- :func:`load_checkpoint_file` loads a file into a model through open_clip (``torch.load(weights_only=True)`` or
  safetensors) and turns every way a file can be wrong — a checkpoint of another architecture, a truncated copy, a
  pickle that ``weights_only`` refuses — into a :class:`CheckpointError`: one line naming the file and what is wrong.
- The checkpoint is one setting (``RunConfig.pretrained``) of every entry point; :data:`PRETRAINED_ENV`
  (``WINCLIP_PRETRAINED``) sets its default for all of them, and :func:`how_to_pass` words the way to pass a file for
  the entry point in use (:func:`entry_point`), for the offline error message.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import sys
import zipfile
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch

from winclip_lib.core.user_cache import read_json, write_json

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "ENTRY_POINTS",
    "ENTRY_POINT_ENV",
    "KNOWN_DIGESTS",
    "PAPER_MODEL",
    "PAPER_TAG",
    "PRETRAINED_ENV",
    "CheckpointError",
    "KnownDigest",
    "WeightsVerdict",
    "as_entry_point",
    "checkpoint_sha256",
    "default_pretrained",
    "entry_point",
    "file_sha256",
    "how_to_pass",
    "is_checkpoint_path",
    "load_checkpoint_file",
    "verify_checkpoint",
]

#: The checkpoint of the paper: OpenCLIP's ViT-B/16+ at 240 px, trained on LAION-400M for 31 epochs.
PAPER_MODEL = "ViT-B-16-plus-240"
PAPER_TAG = "laion400m_e31"
#: Sets the default of the checkpoint setting (a tag, a path, or "none") for every entry point.
PRETRAINED_ENV = "WINCLIP_PRETRAINED"
#: Names the entry point in use for the messages (set by ``make reproduce`` and the notebook runner).
ENTRY_POINT_ENV = "WINCLIP_ENTRY_POINT"
#: File names with these endings are checkpoint paths, not pretrained tags.
CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors")
_log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class KnownDigest:
    """The SHA-256 of one distributed checkpoint file, and where that digest is published.

    Attributes:
        sha256: the full digest (64 hex digits) of the file's bytes.
        model_name: the open_clip model the file is a checkpoint of.
        tag: its open_clip pretrained tag.
        file: the file as distributed (where to download it).
        source: the public page listing the full digest, and how it ties to the file.
    """

    sha256: str
    model_name: str
    tag: str
    file: str
    source: str


_RELEASE = "https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/"
_HUB = "https://huggingface.co/"
#: Known digests of ViT-B-16-plus-240 checkpoints. open_clip names its release files after the first 8 hex digits of
#: their SHA-256 and checks a download against them (open_clip 3.3.0, pretrained.py: the ``laion400m_e31`` and
#: ``laion400m_e32`` URLs; ``download_pretrained_from_url``); the full digests are the Git LFS SHA-256 values that
#: Hugging Face lists for the same files (each begins with open_clip's 8 digits, and has the release file's size,
#: 834 MB). The hub's own copy of ``laion400m_e31`` is a safetensors file with its own digest. Not found in public
#: sources, and so not listed: an ``open_clip_pytorch_model.bin`` of ViT-B-16-plus-240, and the hub's
#: ``timm/vit_base_patch16_plus_clip_240.laion400m_e32`` files — such files get the verdict "unverified checkpoint".
KNOWN_DIGESTS: tuple[KnownDigest, ...] = (
    KnownDigest(
        "8fb26589b9a8bab2e7a683d280e48df89b8e742f3a82132707282620b36facba", PAPER_MODEL, "laion400m_e31",
        _RELEASE + "vit_b_16_plus_240-laion400m_e31-8fb26589.pt",
        "Git LFS SHA-256 of the same file mirrored at " + _HUB + "jinaai/clip-models/blob/"
        "e2454c7a523321528581f80c6b666d702d8c98db/ViT-B-16-plus-240-laion400m_e31.pt (834 MB); open_clip's file "
        "name carries its first 8 hex digits",
    ),
    KnownDigest(
        "f65b63daa30d38e9c4afe87ebd40140cee700cf0a1091711248f512f48706840", PAPER_MODEL, "laion400m_e31",
        _HUB + "timm/vit_base_patch16_plus_clip_240.laion400m_e31/blob/main/open_clip_model.safetensors",
        "Git LFS SHA-256 listed on that page (commit 6dbe024, 834 MB): the repository open_clip's hf_hub entry for "
        "laion400m_e31 names",
    ),
    KnownDigest(
        "699c4b843885d82733517f36f0911d7e1b360bcc1314dda81d8c56c76fe9524d", PAPER_MODEL, "laion400m_e32",
        _RELEASE + "vit_b_16_plus_240-laion400m_e32-699c4b84.pt",
        "Git LFS SHA-256 of the same file mirrored at " + _HUB + "jinaai/clip-models/blob/"
        "e2454c7a523321528581f80c6b666d702d8c98db/ViT-B-16-plus-240-laion400m_e32.pt (834 MB); open_clip's file "
        "name carries its first 8 hex digits",
    ),
)


class CheckpointError(ValueError):
    """A checkpoint file that cannot run: the message is one line naming the file and what is wrong with it."""


# --------------------------------------------------------------------------------------------- the setting


def is_checkpoint_path(pretrained: str | Path) -> bool:
    """True when a ``pretrained`` value names a file (a checkpoint ending or a folder separator), not a tag."""
    text = str(pretrained)
    return Path(text).suffix in CHECKPOINT_SUFFIXES or "/" in text or os.sep in text


def default_pretrained() -> str:
    """The default of the checkpoint setting: :data:`PRETRAINED_ENV` when set (a checkpoint path there is made
    absolute), else the paper's tag."""
    value = os.environ.get(PRETRAINED_ENV, "").strip()
    if not value:
        return PAPER_TAG
    if is_checkpoint_path(value):
        return os.path.abspath(os.path.expanduser(value))
    return value


#: How each entry point takes a checkpoint file, and random weights: what the messages tell the user to type.
ENTRY_POINTS: dict[str, tuple[str, str]] = {
    "make": ("make reproduce MVTEC=... PRETRAINED=/path/to/file", "PRETRAINED=none"),
    "cli": ("winclip run ... --pretrained /path/to/file   (winclip predict takes the same flag)", "--pretrained none"),
    "notebook": ('the notebook\'s parameter  pretrained = "/path/to/file"   (papermill: -p pretrained /path/to/file)',
                 'pretrained = "none"'),
    "env": (f"export {PRETRAINED_ENV}=/path/to/file", f"{PRETRAINED_ENV}=none"),
    "python": ('load_backbone(pretrained="/path/to/file")   or   RunConfig(pretrained="/path/to/file")',
               "load_backbone(pretrained=None)"),
}


_ENTRY: ContextVar[str | None] = ContextVar("winclip_entry_point", default=None)


def as_entry_point(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate the function of an entry point (the ``winclip`` command's ``main``: "cli"): while it runs,
    :func:`entry_point` names it, unless the environment names an outer one (``make reproduce``)."""
    if name not in ENTRY_POINTS:
        raise ValueError(f"unknown entry point {name!r}; known: {', '.join(ENTRY_POINTS)}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            token = _ENTRY.set(name)
            try:
                return fn(*args, **kwargs)
            finally:
                _ENTRY.reset(token)

        return wrapper

    return decorate


def entry_point(pretrained: str | None = None) -> str:
    """The entry point in use, a key of :data:`ENTRY_POINTS`: "env" when ``pretrained`` is what
    :data:`PRETRAINED_ENV` holds; else what :data:`ENTRY_POINT_ENV` names (``make reproduce`` sets "make", the
    notebook runner "notebook"); else the running entry point (:func:`as_entry_point`: "cli" for the ``winclip``
    command); else "notebook" inside a Jupyter kernel, and "python" otherwise."""
    env_value = os.environ.get(PRETRAINED_ENV, "").strip()
    if pretrained is not None and env_value and env_value == str(pretrained):
        return "env"
    named = os.environ.get(ENTRY_POINT_ENV, "").strip()
    if named in ENTRY_POINTS:
        return named
    running = _ENTRY.get()
    if running is not None:
        return running
    ipython = sys.modules.get("IPython")  # inside a Jupyter kernel: its shell is running (not merely imported)
    shell = ipython.get_ipython() if ipython is not None else None
    if type(shell).__name__ == "ZMQInteractiveShell":
        return "notebook"
    return "python"


def how_to_pass(entry: str | None = None) -> tuple[str, str]:
    """(how to pass a checkpoint file, how to ask for random weights) for an entry point (default: the one in
    use, :func:`entry_point`)."""
    return ENTRY_POINTS[entry or entry_point()]


# ------------------------------------------------------------------------------------------------- digests


def file_sha256(path: str | Path, n_hex: int = 64) -> str:
    """SHA-256 of a file's bytes (read in 4 MiB blocks), its first ``n_hex`` hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:n_hex]


_DIGESTS: dict[tuple[str, int, int], str] = {}
_MEMORY = "checkpoint_sha256.json"
_MEMORY_FORMAT = 1


def checkpoint_sha256(path: str | Path) -> str:
    """The full SHA-256 of a checkpoint file, hashed once: remembered in this process and in
    ``<WINCLIP_CACHE_DIR or ~/.cache/winclip>/checkpoint_sha256.json`` under the file's absolute path, size and
    modification time (a file rewritten in place changes at least one of them and is hashed again)."""
    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    files = read_json(_MEMORY, _MEMORY_FORMAT).get("files", {})
    entry = files.get(key[0])
    if isinstance(entry, dict) and entry.get("size") == key[1] and entry.get("mtime_ns") == key[2] \
            and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64:
        digest = entry["sha256"]
    else:
        digest = file_sha256(resolved)
        files[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
        write_json(_MEMORY, _MEMORY_FORMAT, {"files": files}, indent=1)
    _DIGESTS[key] = digest
    return digest


# ------------------------------------------------------------------------------------------------ verdicts


@dataclass(frozen=True)
class WeightsVerdict:
    """Which weights ran, and whether they are the paper's.

    Attributes:
        status: "paper" (the digest is a known distribution of the paper's checkpoint), "other" (a known checkpoint
            that is not the paper's), "unverified" (a digest no public source lists, or no file to hash), "random"
            (seeded random weights: a demo).
        model_name: the open_clip model the weights were loaded into.
        asked: what was asked for (a tag or a path; None for random weights).
        file: the file that ran (None for random weights).
        sha256: that file's full SHA-256 (None without a file).
        tag: the tag the digest identifies (None when unknown).
        matched_file: the distributed file the digest matched, matched_source: where that digest is published.
    """

    status: str
    model_name: str
    asked: str | None = None
    file: str | None = None
    sha256: str | None = None
    tag: str | None = None
    matched_file: str | None = None
    matched_source: str | None = None

    @property
    def is_paper(self) -> bool:
        return self.status == "paper"

    def describe(self) -> str:
        """One line: "weights: laion400m_e31 (SHA-256 verified)", "weights: laion400m_e32 — not the paper's
        (SHA-256 verified; the paper: laion400m_e31)", "weights: unverified checkpoint (...)", "weights: random"."""
        asked = ""
        if self.asked and self.tag and not is_checkpoint_path(self.asked) and self.asked != self.tag:
            asked = f"; asked for {self.asked}"
        if self.status == "paper":
            return f"weights: {self.tag} (SHA-256 verified{asked})"
        if self.status == "other":
            return f"weights: {self.tag} — not the paper's (SHA-256 verified; the paper: {PAPER_TAG}{asked})"
        if self.status == "random":
            return "weights: random (DEMO: not a reproduction)"
        if self.sha256 is None:
            why = "no file to hash"
        elif self.model_name != PAPER_MODEL:
            why = f"SHA-256 {self.sha256[:12]}…; {self.model_name}, not the paper's {PAPER_MODEL}"
        else:
            why = f"SHA-256 {self.sha256[:12]}… is no known {PAPER_MODEL} file"
        return f"weights: unverified checkpoint ({why})"

    def as_dict(self) -> dict[str, Any]:
        """For ``run.json``: every field, plus ``is_paper`` and the one-line ``verdict``."""
        return {**asdict(self), "is_paper": self.is_paper, "verdict": self.describe()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WeightsVerdict:
        """Inverse of :meth:`as_dict` (extra keys ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def random(cls, model_name: str) -> WeightsVerdict:
        return cls("random", model_name)


def verify_checkpoint(path: str | Path, model_name: str = PAPER_MODEL, asked: str | None = None) -> WeightsVerdict:
    """Compare a checkpoint file's SHA-256 (:func:`checkpoint_sha256`) with :data:`KNOWN_DIGESTS`.

    Args:
        path: the file that runs.
        model_name: the open_clip model it is loaded into (a known digest of another model's file is no match).
        asked: what the user asked for (a tag or a path), recorded with the verdict.
    """
    digest = checkpoint_sha256(path)
    file = str(Path(path).expanduser().resolve())
    for known in KNOWN_DIGESTS:
        if known.sha256 == digest and known.model_name == model_name:
            status = "paper" if (known.model_name, known.tag) == (PAPER_MODEL, PAPER_TAG) else "other"
            return WeightsVerdict(status, model_name, asked, file, digest, known.tag, known.file, known.source)
    return WeightsVerdict("unverified", model_name, asked, file, digest)


# ----------------------------------------------------------------------------------------- loading a file


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if "Unsupported global" in line:  # torch's weights_only refusal: the line that names the object
            return line.strip().split(" was not an allowed global")[0].replace("WeightsUnpickler error: ", "")
    return (text.splitlines() or [""])[0][:200] or type(exc).__name__


def _read_failure(path: Path, exc: BaseException) -> str:
    """What is wrong with a file that cannot be read (for :class:`CheckpointError`)."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes): copy it again"
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(path):
        return (f"is truncated: a torch zip archive without its end ({size:,} bytes) — copy it again and compare its "
                "SHA-256 (data_prep/README.md)")
    if path.suffix == ".safetensors" and len(head) == 8:
        header = int.from_bytes(head, "little")
        if 8 + header > size or "incomplete" in str(exc) or "not fully covered" in str(exc):
            return (f"is truncated or damaged: a safetensors file whose header does not match its {size:,} bytes "
                    f"({_first_line(exc)}) — copy it again and compare its SHA-256 (data_prep/README.md)")
    return (f"cannot be read as a checkpoint ({type(exc).__name__}: {_first_line(exc)}) — a truncated or damaged copy, "
            "or not a PyTorch / safetensors file")


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _vit_text(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """" (a ViT of width 768 on 14 x 14 patches of 16 px)" from a state dict's shapes, or "" when not a ViT."""
    conv, pos = shapes.get("visual.conv1.weight"), shapes.get("visual.positional_embedding")
    if conv is None or pos is None or len(conv) != 4 or len(pos) != 2:
        return ""
    grid = int(round((pos[0] - 1) ** 0.5))
    return f" (a ViT of width {conv[0]} on {grid} x {grid} patches of {conv[2]} px)"


def _architecture_failure(model: torch.nn.Module, model_name: str, state: Mapping[str, Any]) -> str | None:
    """What differs between a state dict and the model, or None when every tensor fits."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    # the patch embedding first: its shape names the architecture best
    other = sorted((k for k in expected.keys() & found.keys() if expected[k] != found[k]),
                   key=lambda k: (k != "visual.conv1.weight", not k.startswith("visual."), k))
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    if not (other or missing or unexpected):
        return None
    parts = []
    if other:
        k = other[0]
        parts.append(f"{len(other)} tensor(s) of another shape (e.g. {k}: {_shape_text(found[k])} in the file, "
                     f"{_shape_text(expected[k])} in {model_name})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return (f"does not fit {model_name}{_vit_text(expected)}: " + ", ".join(parts)
            + f" — a checkpoint of another architecture{_vit_text(found)}; pass the {model_name} checkpoint, or the "
            "model name that matches the file")


def load_checkpoint_file(model: torch.nn.Module, path: str | Path, model_name: str) -> None:
    """Load a checkpoint file into an open_clip model with open_clip's own loader (``torch.load`` with
    ``weights_only=True``, or safetensors; its key conversions), strictly: every tensor must fit.

    Raises:
        CheckpointError: one line naming the file and what is wrong — a pickle ``weights_only`` refuses, a file that
            cannot be read (empty, truncated, damaged), no state dict in it, or tensors that do not fit the model
            (another architecture).
    """
    import open_clip

    path = Path(path)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
        return
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path}: torch.load(weights_only=True) refuses it: the pickle holds more than tensors "
            f"({_first_line(exc)}); load only a file you trust, and save its state dict (tensors only) as .pt or "
            ".safetensors") from exc
    except Exception as exc:  # noqa: BLE001 — any failure to load is diagnosed below and reported in one line
        failure = exc
    try:
        state = _read_state_dict(path)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {path} {_read_failure(path, exc)}") from failure
    if state is None:
        raise CheckpointError(f"checkpoint {path} holds no state dict of tensors") from failure
    problem = _architecture_failure(model, model_name, state)
    if problem is None:
        problem = f"cannot be loaded into {model_name} ({type(failure).__name__}: {_first_line(failure)})"
    raise CheckpointError(f"checkpoint {path} {problem}") from failure


def _read_state_dict(path: Path) -> Mapping[str, Any] | None:
    """The tensors of a checkpoint file as open_clip's ``load_state_dict`` finds them (a ``state_dict`` entry, or
    the file's dict itself; a ``module.`` prefix dropped), or None when the file holds no dict of tensors."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw: Any = load_file(str(path))
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not any(isinstance(v, torch.Tensor) for v in raw.values()):
        return None
    if all(str(k).startswith("module.") for k in raw):
        raw = {str(k)[len("module."):]: v for k, v in raw.items()}
    return raw
