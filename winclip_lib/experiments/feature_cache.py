"""On-disk cache of encoded image features: every image is run through the ViT once per encoder setting.

An *encoder spec* (:class:`EncoderSpec`) lists everything that changes what the ViT computes for an image: model
name, weights id (pretrained tag, ``file:<sha>`` of a checkpoint, ``random:<seed>``), precision, preprocessing (input
size, geometry, mean / std), window stride and :data:`ENCODER_VERSION`. Its hash names a folder; inside, one entry
per image holding *named tensors* (:meth:`winclip_lib.core.features.Features.named`)::

    <cache_dir>/<spec key>/spec.json                   the spec, readable
    <cache_dir>/<spec key>/<id[:2]>/<id>.pt            torch.save of {format, key, spec, image, checksum, tensors}

A *request* (:class:`FeatureRequest`: window scales, patch-token variants, multi-crop views, tiles) says which named
tensors a scoring needs. An entry that holds them all serves the request by selection, so one encoding with the
scales {1, 2, 3} also serves a run with {2, 3}; an entry that lacks some is *extended*: only the missing tensors are
computed and added, the ones already stored are never recomputed (their values, and so every result computed from
them, stay bit-identical).

**Image identity is a content hash** (SHA-256 of the file's bytes), not the path or mtime: a dataset may be moved or
copied and its cache stays valid, and an image rewritten with other content is a miss even if its size and mtime
are unchanged. Each file is hashed once per process (:func:`~winclip_lib.experiments.files.content_digest`).
Identical files share one entry (and are encoded once).

The device is deliberately *not* part of the key: it changes features only by floating-point rounding, and a cache
encoded on a GPU is then reusable on a CPU. Batch composition likewise only changes rounding (the image embedding
of an image encoded alone differs from the same image encoded in a batch by ~3e-7), so an entry that is recomputed
(corrupt, or a run killed mid-unit) can move a metric in its 6th decimal; results are bit-identical whenever the
features come from the cache. ``batch_size=1`` makes encoding batch-independent.

An entry is used only if it loads with ``torch.load(weights_only=True)``, echoes this spec and this image id, has
the expected shapes and dtype, and its tensors hash to the stored checksum; anything else (a truncated file, an
entry of another spec, a bit flip) is counted in :attr:`FeatureCache.invalid_count`, deleted and recomputed — never
silently used. Entries are written atomically, so a run killed mid-write leaves no partial entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.encoder import DEFAULT_MAX_TOKENS, crop_boxes, encode_images
from winclip_lib.core.features import Features
from winclip_lib.core.geometry import RESIZE_MODES
from winclip_lib.core.options import WinCLIPOptions
from winclip_lib.core.preprocess import preprocess
from winclip_lib.experiments.files import atomic_write_bytes, atomic_write_text, content_digest

__all__ = [
    "CACHE_FORMAT",
    "ENCODER_VERSION",
    "EncoderSpec",
    "FeatureCache",
    "FeatureRequest",
    "features_checksum",
]

#: Bump when the encoder, the image decoding or the preprocessing change what features an image gets.
ENCODER_VERSION = "2"
#: Layout version of one cache entry.
CACHE_FORMAT = 2

_log = logging.getLogger(__name__)


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()


def features_checksum(named: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes, dtypes and raw bytes of named tensors (in name order)."""
    h = hashlib.sha256()
    for name in sorted(named):
        t = named[name]
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


# -------------------------------------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class EncoderSpec:
    """Everything that determines what the ViT computes for an image (see the module docstring)."""

    model_name: str
    weights_id: str
    precision: str
    image_size: int
    resize_mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stride: int
    encoder_version: str = ENCODER_VERSION

    @staticmethod
    def from_backbone(backbone: Backbone, *, stride: int = 1, resize_mode: str = "resize") -> EncoderSpec:
        """The spec of encoding with ``backbone`` (its own input size, mean and std)."""
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, got {resize_mode!r}")
        mean, std = backbone.mean_std
        return EncoderSpec(
            model_name=backbone.model_name,
            weights_id=backbone.weights_id,
            precision=backbone.precision,
            image_size=backbone.image_size,
            resize_mode=resize_mode,
            mean=tuple(float(m) for m in mean),
            std=tuple(float(s) for s in std),
            stride=int(stride),
        )

    def as_dict(self) -> dict:
        """JSON-friendly dict (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @property
    def key(self) -> str:
        """24 hex digits of the SHA-256 of the canonical JSON of :meth:`as_dict`."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class FeatureRequest:
    """Which tensors a scoring needs (keyword arguments of :func:`~winclip_lib.core.encoder.encode_images`).

    ``patch_tokens[0]`` is the variant served as :attr:`Features.patches`; the others, the crops and the tiles come
    in :attr:`Features.extra`.
    """

    scales: tuple[int, ...] = (2, 3)
    patch_tokens: tuple[str, ...] = ("ln_post",)
    crops: bool = False
    tile_scales: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(sorted({int(k) for k in self.scales})))
        object.__setattr__(self, "patch_tokens", tuple(dict.fromkeys(self.patch_tokens)))
        object.__setattr__(self, "tile_scales", tuple(sorted({int(k) for k in self.tile_scales})))
        if not self.patch_tokens:
            raise ValueError("a feature request needs at least one patch-token variant")

    @staticmethod
    def from_options(options: WinCLIPOptions) -> FeatureRequest:
        return FeatureRequest(**options.feature_request())

    def names(self) -> list[str]:
        """The named tensors of this request (:meth:`Features.named`)."""
        return (["image", *(f"windows.{k}" for k in self.scales), *(f"patches.{p}" for p in self.patch_tokens)]
                + (["crops"] if self.crops else []) + [f"tiles.{k}" for k in self.tile_scales])

    def extras(self) -> list[str]:
        return [n for n in self.names() if n.startswith(("crops", "tiles.")) or
                (n.startswith("patches.") and n != f"patches.{self.patch_tokens[0]}")]

    def union(self, other: FeatureRequest) -> FeatureRequest:
        return FeatureRequest(tuple({*self.scales, *other.scales}), (*self.patch_tokens, *other.patch_tokens),
                              self.crops or other.crops, tuple({*self.tile_scales, *other.tile_scales}))

    def missing_from(self, names: set[str]) -> FeatureRequest | None:
        """The part of this request whose tensors are not in ``names`` (None when nothing is missing). The
        whole-image pass always runs, so a partial request carries one patch variant even if none is missing."""
        if set(self.names()) <= names:
            return None
        patches = tuple(p for p in self.patch_tokens if f"patches.{p}" not in names) or self.patch_tokens[:1]
        return FeatureRequest(tuple(k for k in self.scales if f"windows.{k}" not in names), patches,
                              self.crops and "crops" not in names,
                              tuple(k for k in self.tile_scales if f"tiles.{k}" not in names))


# ------------------------------------------------------------------------------------------------------- cache


class FeatureCache:
    """Encode images through the on-disk cache.

    Args:
        cache_dir: root folder of the cache (shared by all specs).
        backbone: the CLIP backbone that encodes the misses.
        request: the tensors :meth:`features` returns by default (:class:`FeatureRequest`).
        stride, resize_mode: the window stride and the preprocessing geometry (part of the spec).
        batch_size: images per :func:`~winclip_lib.core.encoder.encode_images` call. max_tokens: tokens per
            transformer call.
        progress: show a tqdm bar while encoding misses. workers: threads that decode images ahead of the encoder.

    Attributes:
        encode_count: images run through the ViT by this object.
        hit_count: images served from disk without encoding. extend_count: entries that had to be extended.
        invalid_count: entries found stale or corrupt (deleted, recomputed).
        encoded: Counter of image ids encoded (each should be 1).
    """

    def __init__(
        self,
        cache_dir: str | Path,
        backbone: Backbone,
        request: FeatureRequest | None = None,
        *,
        stride: int = 1,
        resize_mode: str = "resize",
        batch_size: int = 8,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        progress: bool = True,
        workers: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backbone = backbone
        self.request = request or FeatureRequest()
        self.spec = EncoderSpec.from_backbone(backbone, stride=stride, resize_mode=resize_mode)
        self.root = Path(cache_dir)
        self.dir = self.root / self.spec.key
        self.batch_size = int(batch_size)
        self.max_tokens = int(max_tokens)
        self.progress = progress
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.encode_count = 0
        self.hit_count = 0
        self.extend_count = 0
        self.invalid_count = 0
        self.encoded: Counter[str] = Counter()

    @classmethod
    def from_config(cls, config: Any, backbone: Backbone, *, request: FeatureRequest | None = None,
                    progress: bool = True) -> FeatureCache:
        """The cache of a config (``cache_dir``, ``resize_mode``, ``batch_size`` and, unless ``request`` is given,
        the tensors its method options need)."""
        request = request or FeatureRequest.from_options(WinCLIPOptions.from_config(config))
        return cls(config.cache_dir, backbone, request, resize_mode=config.resize_mode, batch_size=config.batch_size,
                   progress=progress)

    # -- identity ------------------------------------------------------------------------------------------
    def _expected_shape(self, name: str) -> tuple[int, ...] | None:
        g, d, w = self.backbone.grid_size, self.backbone.embed_dim, self.backbone.width
        kind, _, arg = name.partition(".")
        n = lambda k: ((g - int(k)) // self.spec.stride + 1) ** 2  # noqa: E731 - windows of scale k
        shapes = {"image": (1, d), "patches": (1, g * g, w), "crops": (1, len(crop_boxes(self.spec.image_size)), d)}
        if kind in ("windows", "tiles"):
            return (1, n(arg), d) if arg.isdigit() and 1 <= int(arg) <= g else None
        return shapes.get(kind)

    def image_id(self, path: str | Path) -> str:
        """Content hash of an image file: 32 hex digits of its SHA-256, read once per process
        (:func:`~winclip_lib.experiments.files.content_digest`, shared with the grid's unit keys)."""
        return content_digest(path)[:32]

    def entry_path(self, path: str | Path) -> Path:
        """Where the entry of an image file lives (whether or not it exists)."""
        return self._entry_path_of(self.image_id(path))

    def _entry_path_of(self, iid: str) -> Path:
        return self.dir / iid[:2] / f"{iid}.pt"

    # -- entries -------------------------------------------------------------------------------------------
    def _valid(self, entry: object, iid: str) -> dict[str, torch.Tensor] | None:
        """The entry's named tensors if it is a well-formed entry of this spec and image, else None."""
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            return None
        if entry.get("key") != self.spec.key or entry.get("spec") != self.spec.as_dict() or entry.get("image") != iid:
            return None
        named = entry.get("tensors")
        if not isinstance(named, dict) or "image" not in named:
            return None
        for name, t in named.items():
            shape = self._expected_shape(str(name))
            if shape is None or not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or t.dtype != torch.float32:
                return None
        if entry.get("checksum") != features_checksum(named):
            return None
        return dict(named)

    def _load(self, iid: str) -> dict[str, torch.Tensor] | None:
        entry_path = self._entry_path_of(iid)
        if not entry_path.is_file():
            return None
        try:
            entry = torch.load(entry_path, map_location="cpu", weights_only=True)
        except Exception:  # truncated, garbage, unpicklable: all mean "recompute"
            entry = None
        named = self._valid(entry, iid)
        if named is None:
            self.invalid_count += 1
            _log.warning("feature cache: invalid entry %s (stale or corrupt), deleted and recomputed", entry_path)
            with contextlib.suppress(FileNotFoundError):
                entry_path.unlink()
        return named

    def load(self, path: str | Path, request: FeatureRequest | None = None) -> Features | None:
        """The cached features (1 image) of an image file for ``request``, or None when its entry is missing or
        lacks some of the request; an invalid entry is deleted."""
        request = request or self.request
        named = self._load(self.image_id(path))
        if named is None or not set(request.names()) <= set(named):
            return None
        return self._assemble(named, request)

    def _store(self, iid: str, named: dict[str, torch.Tensor]) -> None:
        """Write one entry; the tensors (1 image) must own their CPU storage."""
        entry = {"format": CACHE_FORMAT, "key": self.spec.key, "spec": self.spec.as_dict(), "image": iid,
                 "checksum": features_checksum(named), "tensors": named}
        buf = io.BytesIO()
        torch.save(entry, buf)
        atomic_write_bytes(self._entry_path_of(iid), buf.getvalue())

    def _write_spec(self) -> None:
        spec_file = self.dir / "spec.json"
        if not spec_file.is_file():
            atomic_write_text(spec_file, json.dumps(self.spec.as_dict(), indent=2, sort_keys=True) + "\n")

    def _assemble(self, named: dict[str, torch.Tensor], request: FeatureRequest) -> Features:
        return Features.from_named(named, self.backbone.grid_size, self.spec.stride, request.scales,
                                   request.patch_tokens[0], request.extras())

    # -- encoding ------------------------------------------------------------------------------------------
    def _preprocess_one(self, path: Path) -> torch.Tensor:
        return preprocess(path, self.spec.image_size, mode=self.spec.resize_mode, mean=self.spec.mean,
                          std=self.spec.std)

    def _batches(self, paths: Sequence[Path]) -> Iterator[torch.Tensor]:
        """(b, 3, S, S) batches of ``paths``, the next batch decoded by threads while the current one encodes."""
        chunks = [paths[i : i + self.batch_size] for i in range(0, len(paths), self.batch_size)]
        with ThreadPoolExecutor(self.workers) as pool:
            pending = [pool.submit(self._preprocess_one, p) for p in chunks[0]] if chunks else []
            for i in range(len(chunks)):
                current = pending
                pending = [pool.submit(self._preprocess_one, p) for p in chunks[i + 1]] if i + 1 < len(chunks) else []
                yield torch.cat([f.result() for f in current])

    def _encode(self, todo: dict[str, tuple[Path, FeatureRequest, dict[str, torch.Tensor]]], desc: str
                ) -> dict[str, dict[str, torch.Tensor]]:
        """Encode what each image lacks (``{id: (path, missing request, stored tensors)}``), grouped by the missing
        request; store each entry with the new tensors added; return ``{id: all its named tensors}``."""
        out: dict[str, dict[str, torch.Tensor]] = {}
        if not todo:
            return out
        self._write_spec()
        groups: dict[FeatureRequest, list[str]] = {}
        for iid, (_, missing, _) in todo.items():
            groups.setdefault(missing, []).append(iid)
        bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not self.progress, leave=False)
        try:
            for missing, ids in groups.items():
                start = 0
                for x in self._batches([todo[i][0] for i in ids]):
                    feats = encode_images(self.backbone, x, missing.scales, stride=self.spec.stride,
                                          patch_tokens=missing.patch_tokens, crops=missing.crops,
                                          tile_scales=missing.tile_scales, max_tokens=self.max_tokens).to("cpu")
                    new = feats.named()
                    for j in range(len(feats)):
                        iid = ids[start + j]
                        stored = todo[iid][2]
                        named = {**{n: t[j : j + 1].clone() for n, t in new.items() if n not in stored}, **stored}
                        self._store(iid, named)
                        out[iid] = named
                        self.encoded[iid] += 1
                    self.encode_count += len(feats)
                    start += len(feats)
                    bar.update(len(feats))
        finally:
            bar.close()
        return out

    def features(self, paths: Sequence[str | Path], desc: str = "encode", request: FeatureRequest | None = None
                 ) -> Features:
        """Features of image files, in order, encoding only what is not cached.

        Args:
            paths: N image files (duplicates allowed).
            desc: label of the progress bar.
            request: the tensors wanted (default: the cache's own request).

        Returns:
            :class:`Features` on the CPU with image (N, D), windows {k: (N, n_k, D)}, patches (N, G*G, W) and the
            requested extras.
        """
        if len(paths) == 0:
            raise ValueError("no images given: nothing to encode")
        request = request or self.request
        ids = [self.image_id(p) for p in paths]
        found: dict[str, dict[str, torch.Tensor]] = {}
        todo: dict[str, tuple[Path, FeatureRequest, dict[str, torch.Tensor]]] = {}
        for iid, p in zip(ids, paths, strict=True):
            if iid in found or iid in todo:
                continue
            named = self._load(iid) or {}
            missing = request.missing_from(set(named))
            if missing is None:
                found[iid] = named
                self.hit_count += 1
            else:
                if named:
                    self.extend_count += 1
                todo[iid] = (Path(p), missing, named)
        found.update(self._encode(todo, desc))
        return Features.cat([self._assemble(found[i], request) for i in ids])

    def counts(self) -> dict[str, int]:
        """{"encoded", "hits", "extended", "invalid", "distinct_encoded", "max_encodes_per_image"} of this object."""
        return {
            "encoded": self.encode_count,
            "hits": self.hit_count,
            "extended": self.extend_count,
            "invalid": self.invalid_count,
            "distinct_encoded": len(self.encoded),
            "max_encodes_per_image": max(self.encoded.values(), default=0),
        }
