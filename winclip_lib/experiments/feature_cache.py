"""On-disk cache of encoded image features: every image is run through the ViT once per encoder setting.

An *encoder spec* (:class:`EncoderSpec`) lists everything that changes what the ViT computes for an image: model
name, weights id (pretrained tag, ``file:<sha>`` of a checkpoint, ``random:<seed>``), precision, preprocessing (input
size, geometry, mean / std), window stride and :data:`ENCODER_VERSION`. Its hash names a folder; inside, one entry
per image holding *named tensors* (:meth:`winclip_lib.core.features.Features.named`)::

    <cache_dir>/<spec key>/spec.json                   the spec, readable
    <cache_dir>/<spec key>/<id[:2]>/<id>.feat          the entry (winclip_lib.experiments.cache_entries)

Entries hold the tensors in the encoder's precision where that is exact (bf16 or fp16 features take half the disk of
float32; about 0.87 MB per image for ViT-B-16-plus-240 in bf16, 1.74 MB in fp32) and are read back as float32. An
entry of the previous format (``<id>.pt``, :data:`~winclip_lib.experiments.cache_entries.LEGACY_FORMAT`) is read
and used as it is (its features are the same), then rewritten in the current format.

A *request* (:class:`FeatureRequest`: window scales, patch-token variants, multi-crop views, tiles) says which named
tensors a scoring needs. An entry that holds them all serves the request by selection, so one encoding with the
scales {1, 2, 3} also serves a run with {2, 3}; an entry that lacks some is *extended*: only the missing tensors are
computed and added, the ones already stored are never recomputed (their values, and so every result computed from
them, stay bit-identical).

**Image identity is a content hash** (SHA-256 of the file's bytes), not the path or mtime: a dataset may be moved or
copied and its cache stays valid, and an image rewritten with other content is a miss even if its size and mtime
are unchanged. Each file is hashed once per process (:func:`~winclip_lib.core.digests.content_digest`).
Identical files share one entry (and are encoded once).

The device is deliberately *not* part of the key: it changes features only by floating-point rounding, and a cache
encoded on a GPU is then reusable on a CPU. Batch composition likewise only changes rounding (the image embedding
of an image encoded alone differs from the same image encoded in a batch by ~3e-7), so an entry that is recomputed
(corrupt, or a run killed mid-unit) can move a metric in its 6th decimal; results are bit-identical whenever the
features come from the cache. ``batch_size=1`` makes encoding batch-independent.

An entry is used only if it is complete, its tensors hash to the stored checksum, it echoes this spec and this
image id, and it has the expected shapes and dtypes; anything else (a truncated file, an entry of another spec, a bit
flip) is counted in :attr:`FeatureCache.invalid_count`, deleted and recomputed — never silently used. Entries are
written atomically by a background thread (:class:`~winclip_lib.experiments.cache_entries.EntryWriter`) while the
encoder goes on, so a run killed mid-write leaves no partial entry; :meth:`FeatureCache.flush` waits for them.

**The pipeline** (:meth:`FeatureCache.features`): content hashes and entry reads run on a pool of threads; the misses
are decoded by the same threads a few batches ahead of the encoder (:class:`~winclip_lib.experiments.image_loader.
ImageLoader`), encoded, and handed to the writer — decode, encode and write overlap. Each step's time goes to the
cache's :class:`~winclip_lib.experiments.stages.StageTimes`.

**Without a disk** (``cache_dir`` None; ``--cache-dir none``): entries are kept in memory until :meth:`FeatureCache.
end_unit` (the grid calls it after each unit), for data sets too large to cache (Real-IAD's 150,000 images would take
about 130 GB in bf16). Nothing is reused across units or runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.digests import FileChangedError, content_digest, content_digests, digest_last_read
from winclip_lib.core.encoder import DEFAULT_MAX_TOKENS, crop_boxes, encode_images, resolve_batch_size
from winclip_lib.core.features import Features
from winclip_lib.core.geometry import RESIZE_MODES, Geometry
from winclip_lib.core.options import WinCLIPOptions
from winclip_lib.experiments.cache_entries import (
    ENTRY_SUFFIX,
    LEGACY_SUFFIX,
    EntryWriter,
    encode_entry,
    features_checksum,
    read_entry,
    read_legacy_entry,
    storage_tensors,
    write_entry_file,
)
from winclip_lib.experiments.files import atomic_write_text
from winclip_lib.experiments.image_loader import ImageLoader
from winclip_lib.experiments.stages import StageTimes

__all__ = [
    "AHEAD_IMAGES",
    "CACHE_FORMAT",
    "ENCODER_VERSION",
    "NO_CACHE",
    "EncoderSpec",
    "FeatureCache",
    "FeatureRequest",
    "features_checksum",
    "is_no_cache",
]

#: Bump when the encoder, the image decoding or the preprocessing change what features an image gets.
ENCODER_VERSION = "2"
#: Layout version of one cache entry (:mod:`~winclip_lib.experiments.cache_entries`).
CACHE_FORMAT = 3
#: The ``cache_dir`` value that means "no feature cache on disk".
NO_CACHE = "none"
#: Images :meth:`FeatureCache.prefetch` decodes ahead at most (about 180 MB of 240 x 240 inputs).
AHEAD_IMAGES = 1024

_log = logging.getLogger(__name__)
_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def is_no_cache(cache_dir: str | Path | None) -> bool:
    """True for the ``cache_dir`` values that mean no cache on disk: None and "none" (any case)."""
    return cache_dir is None or str(cache_dir).strip().lower() == NO_CACHE
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
    """Encode images through the feature cache (the module docstring).

    Args:
        cache_dir: root folder of the cache (shared by all specs); None or "none": no disk, entries kept in memory
            until :meth:`end_unit`.
        backbone: the CLIP backbone that encodes the misses.
        request: the tensors :meth:`features` returns by default (:class:`FeatureRequest`).
        stride, resize_mode: the window stride and the preprocessing geometry (part of the spec).
        batch_size: images per :func:`~winclip_lib.core.encoder.encode_images` call, or "auto"
            (:func:`~winclip_lib.core.encoder.resolve_batch_size`). max_tokens: tokens per transformer call.
        progress: show a tqdm bar while encoding misses. workers: threads that hash, read and decode files
            (default: one per CPU). times: where each stage's seconds go (default: a new
            :class:`~winclip_lib.experiments.stages.StageTimes`, :attr:`times`).

    Attributes:
        encode_count: images run through the ViT by this object.
        hit_count: images served from the cache without encoding. extend_count: entries that had to be extended.
        invalid_count: entries found stale or corrupt (deleted, recomputed).
        encoded: Counter of image ids encoded (each should be 1).
    """

    def __init__(
        self,
        cache_dir: str | Path | None,
        backbone: Backbone,
        request: FeatureRequest | None = None,
        *,
        stride: int = 1,
        resize_mode: str = "resize",
        batch_size: int | str = 8,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        progress: bool = True,
        workers: int | None = None,
        times: StageTimes | None = None,
    ) -> None:
        self.backbone = backbone
        self.request = request or FeatureRequest()
        self.spec = EncoderSpec.from_backbone(backbone, stride=stride, resize_mode=resize_mode)
        self.batch_size = resolve_batch_size(batch_size, backbone, max_tokens=max_tokens)
        self.root = None if is_no_cache(cache_dir) else Path(cache_dir)
        self.dir = None if self.root is None else self.root / self.spec.key
        self.max_tokens = int(max_tokens)
        self.progress = progress
        self.times = times if times is not None else StageTimes()
        self.loader = ImageLoader(Geometry(self.spec.image_size, self.spec.resize_mode), self.spec.mean,
                                  self.spec.std, backbone.device, workers, self.times)
        self.workers = self.loader.workers
        self.encode_count = 0
        self.hit_count = 0
        self.extend_count = 0
        self.invalid_count = 0
        self.encoded: Counter[str] = Counter()
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self._ahead: dict[Path, Future] = {}
        #: The content digest of every file :meth:`features` served in the current unit (until :meth:`end_unit`),
        #: by path: what a unit's results were computed from.
        self.served: dict[Path, str] = {}
        self._writer = EntryWriter(self.times, max_pending=max(64, 2 * self.batch_size))
        self._storage = backbone.dtype if backbone.dtype in (torch.bfloat16, torch.float16) else torch.float32

    @classmethod
    def from_config(cls, config: Any, backbone: Backbone, *, request: FeatureRequest | None = None,
                    progress: bool = True, times: StageTimes | None = None) -> FeatureCache:
        """The cache of a config (``cache_dir``, ``resize_mode``, ``batch_size`` and, unless ``request`` is given,
        the tensors its method options need)."""
        request = request or FeatureRequest.from_options(WinCLIPOptions.from_config(config))
        return cls(config.cache_dir, backbone, request, resize_mode=config.resize_mode, batch_size=config.batch_size,
                   progress=progress, times=times)

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
        (:func:`~winclip_lib.core.digests.content_digest`, shared with the grid's unit keys)."""
        return content_digest(path)[:32]

    def entry_path(self, path: str | Path) -> Path:
        """Where the entry of an image file lives (whether or not it exists)."""
        return self._entry_path_of(self.image_id(path))

    def _entry_path_of(self, iid: str, suffix: str = ENTRY_SUFFIX) -> Path:
        if self.dir is None:
            raise ValueError("this feature cache has no folder (cache_dir none): its entries are in memory")
        return self.dir / iid[:2] / f"{iid}{suffix}"

    # -- entries -------------------------------------------------------------------------------------------
    def _checked(self, header: object, stored: dict[str, torch.Tensor], iid: str, dtypes: tuple[torch.dtype, ...]
                 ) -> dict[str, torch.Tensor] | None:
        """The entry's tensors as float32 if it is a well-formed entry of this spec and image, else None."""
        if not isinstance(header, dict):
            return None
        if (header.get("key"), header.get("spec"), header.get("image")) != (self.spec.key, self.spec.as_dict(), iid):
            return None
        if "image" not in stored:
            return None
        for name, t in stored.items():
            shape = self._expected_shape(str(name))
            if shape is None or not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or t.dtype not in dtypes:
                return None
        return {str(n): t.float() for n, t in stored.items()}

    def _read(self, iid: str) -> tuple[dict[str, torch.Tensor] | None, Path | None, Path | None]:
        """(the entry's float32 tensors or None, the path of an invalid entry (deleted), the path of a valid entry of
        the previous format (to be rewritten)). Runs on the loader's threads."""
        if self.dir is None:
            return self._memory.get(iid), None, None
        pending = self._writer.pending(iid)
        if pending is not None:
            return pending, None, None
        path = self._entry_path_of(iid)
        if path.is_file():
            got = read_entry(path)
            named = None if got is None else self._checked(got[0], got[1], iid, _FLOAT_DTYPES)
        else:
            path = self._entry_path_of(iid, LEGACY_SUFFIX)
            if not path.is_file():
                return None, None, None
            entry = read_legacy_entry(path)
            named = None if entry is None else self._checked(entry, entry["tensors"], iid, (torch.float32,))
            if named is not None:
                return named, None, path
        if named is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None, path, None
        return named, None, None

    def _note_invalid(self, path: Path) -> None:
        self.invalid_count += 1
        _log.warning("feature cache: invalid entry %s (stale or corrupt), deleted and recomputed", path)

    def load(self, path: str | Path, request: FeatureRequest | None = None) -> Features | None:
        """The cached features (1 image) of an image file for ``request``, or None when its entry is missing or
        lacks some of the request; an invalid entry is deleted."""
        request = request or self.request
        named, invalid, _ = self._read(self.image_id(path))
        if invalid is not None:
            self._note_invalid(invalid)
        if named is None or not set(request.names()) <= set(named):
            return None
        return self._assemble(named, request)

    def _write(self, iid: str, named: dict[str, torch.Tensor], event: Any = None, replaces: Path | None = None
               ) -> None:
        """Store one entry (1 image): kept in memory without a disk, else handed to the writer thread (after
        ``event``, the copy of the tensors to the host, has completed); ``replaces``: an old-format entry deleted
        once the new one is written."""
        if self.dir is None:
            self._memory[iid] = named
            return
        header = {"key": self.spec.key, "spec": self.spec.as_dict(), "image": iid}
        target = self._entry_path_of(iid)

        def write() -> None:
            if event is not None:
                event.synchronize()
            write_entry_file(target, encode_entry(header, storage_tensors(named, self._storage)))
            if replaces is not None:
                replaces.unlink(missing_ok=True)

        self._writer.submit(iid, named, write)

    def flush(self) -> None:
        """Wait until every entry handed to the writer is on disk (raises the first write error)."""
        self._writer.flush()

    def end_unit(self) -> None:
        """The grid is done with a unit: :attr:`served` is emptied and, without a disk, its entries are forgotten."""
        self.served.clear()
        if self.dir is None:
            self._memory.clear()

    def close(self) -> None:
        """:meth:`flush`, then stop the writer and decoder threads (a later call starts them again)."""
        self._ahead.clear()
        try:
            self._writer.close()
        finally:
            self.loader.close()

    def _has_entry(self, iid: str) -> bool:
        if self.dir is None:
            return iid in self._memory
        return (self._entry_path_of(iid).is_file() or self._entry_path_of(iid, LEGACY_SUFFIX).is_file()
                or self._writer.pending(iid) is not None)

    def _prepare_ahead(self, path: Path) -> np.ndarray | None:
        """A later call's image: its content hash (remembered) and, when it has no entry, its decoded input."""
        return None if self._has_entry(self.image_id(path)) else self.loader.image(path)

    def prefetch(self, paths: Sequence[str | Path]) -> None:
        """Prepare the images of a later :meth:`features` call ahead of time (:meth:`~winclip_lib.experiments.
        image_loader.ImageLoader.ahead_job`: at once on a GPU, while cores are spare on the CPU): their content hashes
        and, for those without an entry, their decoded inputs (at most :data:`AHEAD_IMAGES`, in order). The hashes of
        all come first (a few percent of the decoding's time), so that the call finds them made even when few inputs
        were decoded ahead. What a call needs before it is ready is done by the call itself; an earlier prefetch that
        was not used is dropped."""
        for f in self._ahead.values():
            f.cancel()
        self._ahead = {}
        unique = list(dict.fromkeys(Path(p) for p in paths))
        if unique:
            self.loader.ahead_job("cache_read", content_digests, unique, 1)  # (errors: raised by the call)
        for p in unique:
            if len(self._ahead) >= AHEAD_IMAGES:
                break
            self._ahead[p] = self.loader.ahead_job("decode", self._prepare_ahead, p)

    def _write_spec(self) -> None:
        spec_file = self.dir / "spec.json"
        if not spec_file.is_file():
            atomic_write_text(spec_file, json.dumps(self.spec.as_dict(), indent=2, sort_keys=True) + "\n")

    def _assemble(self, named: dict[str, torch.Tensor], request: FeatureRequest) -> Features:
        return Features.from_named(named, self.backbone.grid_size, self.spec.stride, request.scales,
                                   request.patch_tokens[0], request.extras())

    # -- encoding ------------------------------------------------------------------------------------------
    def _to_host(self, named: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], Any]:
        """The encoder's output on the host: as it is on the CPU; on a GPU copied into pinned memory without blocking,
        with the CUDA event that marks the copy's end (None on the CPU)."""
        if self.backbone.device.type != "cuda":
            return named, None
        host = {n: torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for n, t in named.items()}
        for n, t in named.items():
            host[n].copy_(t, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return host, event

    def _encode(self, todo: dict[str, tuple[Path, FeatureRequest, dict[str, torch.Tensor], Path | None]], desc: str
                ) -> dict[str, dict[str, torch.Tensor]]:
        """Encode what each image lacks (``{id: (path, missing request, stored tensors, old-format entry)}``),
        grouped by the missing request; hand each entry with the new tensors added to the writer; return ``{id: all
        its named tensors}``."""
        out: dict[str, dict[str, torch.Tensor]] = {}
        if not todo:
            return out
        if self.dir is not None:
            self._write_spec()
        groups: dict[FeatureRequest, list[str]] = {}
        for iid, (_, missing, _, _) in todo.items():
            groups.setdefault(missing, []).append(iid)
        bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not self.progress, leave=False)
        events = []
        try:
            for missing, ids in groups.items():
                for start, x in self.loader.batches([todo[i][0] for i in ids], self.batch_size, self._ahead):
                    with self.times.stage("encode"):
                        feats = encode_images(self.backbone, x, missing.scales, stride=self.spec.stride,
                                              patch_tokens=missing.patch_tokens, crops=missing.crops,
                                              tile_scales=missing.tile_scales, max_tokens=self.max_tokens)
                        new, event = self._to_host(feats.named())
                    events.append(event)
                    for j in range(len(feats)):
                        iid = ids[start + j]
                        decoded = digest_last_read(todo[iid][0])
                        if decoded is not None and decoded[:32] != iid:  # the file changed after it was hashed
                            raise FileChangedError(todo[iid][0])
                        stored, replaces = todo[iid][2], todo[iid][3]
                        named = {**{n: t[j : j + 1] for n, t in new.items() if n not in stored}, **stored}
                        out[iid] = named
                        self.encoded[iid] += 1
                        self._write(iid, named, event, replaces)
                    self.encode_count += len(feats)
                    bar.update(len(feats))
            with self.times.stage("encode"):
                for event in events:
                    if event is not None:
                        event.synchronize()
        finally:
            bar.close()
        return out

    def features(self, paths: Sequence[str | Path], desc: str = "encode", request: FeatureRequest | None = None,
                 *, wait: bool = True) -> Features:
        """Features of image files, in order, encoding only what is not cached.

        Args:
            paths: N image files (duplicates allowed).
            desc: label of the progress bar.
            request: the tensors wanted (default: the cache's own request).
            wait: return once every new entry is on disk (False: the writer may still be writing — call
                :meth:`flush` before relying on the files; reads through this object see the entries either way).

        Returns:
            :class:`Features` on the CPU with image (N, D), windows {k: (N, n_k, D)}, patches (N, G*G, W) and the
            requested extras.

        Raises:
            ImageError: a file cannot be read as an image (named).
            FileChangedError: a file's bytes when decoded are not those its digest was taken from (it changed while
                this call, or the work done ahead for it, read it): nothing is stored for it.
        """
        if len(paths) == 0:
            raise ValueError("no images given: nothing to encode")
        request = request or self.request
        with self.times.stage("cache_read"):  # the digests the decoders made are looked up; the others read here
            digests = content_digests(paths, workers=self.workers)
            self.served.update(zip((Path(p) for p in paths), digests, strict=True))
            ids = [d[:32] for d in digests]
            first = {iid: Path(p) for iid, p in reversed(list(zip(ids, paths, strict=True)))}
            unique = list(dict.fromkeys(ids))
            stored = [iid for iid in unique if self._has_entry(iid)]
        reads = dict(zip(stored, self.loader.map("cache_read", self._read, stored), strict=True))
        reads = [reads.get(iid, (None, None, None)) for iid in unique]
        found: dict[str, dict[str, torch.Tensor]] = {}
        todo: dict[str, tuple[Path, FeatureRequest, dict[str, torch.Tensor], Path | None]] = {}
        with self.times.stage("cache_read"):
            for iid, (named, invalid, legacy) in zip(unique, reads, strict=True):
                if invalid is not None:
                    self._note_invalid(invalid)
                named = named or {}
                missing = request.missing_from(set(named))
                if missing is None:
                    found[iid] = named
                    self.hit_count += 1
                    if legacy is not None:
                        self._write(iid, named, replaces=legacy)
                else:
                    if named:
                        self.extend_count += 1
                    todo[iid] = (first[iid], missing, named, legacy)
        found.update(self._encode(todo, desc))
        for p in paths:
            self._ahead.pop(Path(p), None)
        if wait:
            self.flush()
        return self._assemble({n: torch.cat([found[i][n] for i in ids]) for n in request.names()}, request)

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
