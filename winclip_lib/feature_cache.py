"""On-disk cache of encoded image features: every image is run through the ViT once per encoder setting.

An *encoder spec* (:class:`EncoderSpec`) lists everything that changes the features of an image: model name, weights
id (pretrained tag, ``file:<sha>`` of a checkpoint, ``random:<seed>``), precision, preprocessing (input size, resize
mode, mean / std), window scales and stride, whether patch tokens are taken after ``ln_post``, and
:data:`ENCODER_VERSION`. Its hash names a folder; inside, one entry per image::

    <cache_dir>/<spec key>/spec.json                   the spec, readable
    <cache_dir>/<spec key>/<id[:2]>/<id>.pt            torch.save of {format, key, spec, image, checksum, features}

**Image identity is a content hash** (SHA-256 of the file's bytes), not the path or mtime: a dataset may be moved or
copied and its cache stays valid, and an image rewritten with other content is a miss even if its size and mtime
are unchanged. Hashes are memoised per (resolved path, size, mtime_ns) within a :class:`FeatureCache` object, so a
file is read for hashing at most once per object. Identical files share one entry (and are encoded once).

The device is deliberately *not* part of the key: it changes features only by floating-point rounding, and a cache
encoded on a GPU is then reusable on a CPU. Batch composition likewise only changes rounding: the image embedding
of an image encoded alone differs from the same image encoded in a batch by ~3e-7 (the projection's GEMM), so an
entry that is recomputed (corrupt, or a run killed mid-unit) can move a metric in its 6th decimal; results are
bit-identical whenever the features come from the cache. ``batch_size=1`` makes encoding batch-independent.

An entry is used only if it loads with ``torch.load(weights_only=True)``, echoes this spec and this image id, has
the expected shapes and dtype, and its tensors hash to the stored checksum; anything else (a truncated file, an
entry of another spec, a bit flip) is counted in :attr:`FeatureCache.invalid_count`, deleted and recomputed — never
silently used. Entries are written atomically (a temporary file in the same folder, then ``os.replace``), so a run
killed mid-write leaves no partial entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from winclip_lib.backbone import Backbone, file_sha256
from winclip_lib.encoder import DEFAULT_MAX_TOKENS, DEFAULT_SCALES, Features, encode_images
from winclip_lib.preprocess import preprocess

__all__ = [
    "ENCODER_VERSION",
    "CACHE_FORMAT",
    "EncoderSpec",
    "FeatureCache",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_digest",
    "features_checksum",
]

#: Bump when the encoder, the image decoding or the preprocessing change what features an image gets.
ENCODER_VERSION = "1"
#: Layout version of one cache entry.
CACHE_FORMAT = 1

_log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------- helpers


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def file_digest(path: str | Path, n_hex: int = 32) -> str:
    """SHA-256 of a file's bytes, first ``n_hex`` hex digits."""
    return file_sha256(path, n_hex)


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()


def features_checksum(features: Features) -> str:
    """SHA-256 over the raw bytes, shapes and dtypes of image, windows (by scale) and patches."""
    h = hashlib.sha256()
    tensors = [("image", features.image)] + [(f"w{k}", features.windows[k]) for k in sorted(features.windows)]
    tensors.append(("patches", features.patches))
    for name, t in tensors:
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _compact(feats: Features) -> Features:
    """A CPU copy that owns its storage (a slice of a batch would otherwise save the whole batch)."""
    return Features(
        feats.image.detach().cpu().clone(),
        {int(k): v.detach().cpu().clone() for k, v in feats.windows.items()},
        feats.patches.detach().cpu().clone(),
        feats.grid,
        feats.stride,
        dict(feats.meta),
    )


# -------------------------------------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class EncoderSpec:
    """Everything that determines the features of an image (see the module docstring)."""

    model_name: str
    weights_id: str
    precision: str
    image_size: int
    resize_mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scales: tuple[int, ...]
    stride: int
    patch_ln_post: bool
    encoder_version: str = ENCODER_VERSION

    @staticmethod
    def from_backbone(
        backbone: Backbone,
        scales: Sequence[int] = DEFAULT_SCALES,
        *,
        stride: int = 1,
        patch_ln_post: bool = True,
        resize_mode: str = "resize",
        image_size: int | None = None,
    ) -> EncoderSpec:
        """The spec of encoding with ``backbone`` (its own mean / std and input size)."""
        size = backbone.image_size if image_size is None else int(image_size)
        if size != backbone.image_size:
            raise ValueError(f"image_size {size} does not match the model's input size {backbone.image_size}")
        if resize_mode not in ("resize", "crop"):
            raise ValueError(f"resize_mode must be 'resize' or 'crop', got {resize_mode!r}")
        mean, std = backbone.mean_std
        return EncoderSpec(
            model_name=backbone.model_name,
            weights_id=backbone.weights_id,
            precision=backbone.precision,
            image_size=size,
            resize_mode=resize_mode,
            mean=tuple(float(m) for m in mean),
            std=tuple(float(s) for s in std),
            scales=tuple(sorted(int(k) for k in scales)),
            stride=int(stride),
            patch_ln_post=bool(patch_ln_post),
        )

    def as_dict(self) -> dict:
        """JSON-friendly dict (tuples as lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @property
    def key(self) -> str:
        """24 hex digits of the SHA-256 of the canonical JSON of :meth:`as_dict`."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------------------- cache


class FeatureCache:
    """Encode images through the on-disk cache.

    Args:
        cache_dir: root folder of the cache (shared by all specs).
        backbone: the CLIP backbone that encodes the misses.
        scales, stride, patch_ln_post: passed to :func:`winclip_lib.encoder.encode_images`.
        resize_mode, image_size: preprocessing (see :func:`winclip_lib.preprocess.preprocess`).
        batch_size: images per :func:`encode_images` call. max_tokens: tokens per transformer call.
        progress: show a tqdm bar while encoding misses. workers: threads that decode images ahead of the encoder.

    Attributes:
        encode_count: images run through the ViT by this object.
        hit_count: images served from disk. invalid_count: entries found stale or corrupt (deleted, recomputed).
        encoded: Counter of image ids encoded (each should be 1).
    """

    def __init__(
        self,
        cache_dir: str | Path,
        backbone: Backbone,
        scales: Sequence[int] = DEFAULT_SCALES,
        *,
        stride: int = 1,
        patch_ln_post: bool = True,
        resize_mode: str = "resize",
        image_size: int | None = None,
        batch_size: int = 8,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        progress: bool = True,
        workers: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backbone = backbone
        self.spec = EncoderSpec.from_backbone(backbone, scales, stride=stride, patch_ln_post=patch_ln_post,
                                              resize_mode=resize_mode, image_size=image_size)
        self.root = Path(cache_dir)
        self.dir = self.root / self.spec.key
        self.batch_size = int(batch_size)
        self.max_tokens = int(max_tokens)
        self.progress = progress
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.encode_count = 0
        self.hit_count = 0
        self.invalid_count = 0
        self.encoded: Counter[str] = Counter()
        self._digests: dict[tuple[str, int, int], str] = {}
        self._expected = self._expected_shapes()

    # -- identity ------------------------------------------------------------------------------------------
    def _expected_shapes(self) -> dict[str, tuple[int, ...]]:
        g, d, w = self.backbone.grid_size, self.backbone.embed_dim, self.backbone.width
        shapes = {"image": (1, d), "patches": (1, g * g, w)}
        for k in self.spec.scales:
            n = (g - k) // self.spec.stride + 1
            shapes[f"w{k}"] = (1, n * n, d)
        return shapes

    def image_id(self, path: str | Path) -> str:
        """Content hash of an image file (memoised per resolved path, size and mtime_ns)."""
        p = Path(path).resolve()
        st = p.stat()
        memo = (str(p), st.st_size, st.st_mtime_ns)
        if memo not in self._digests:
            self._digests[memo] = file_digest(p)
        return self._digests[memo]

    def entry_path(self, path: str | Path) -> Path:
        """Where the entry of an image file lives (whether or not it exists)."""
        iid = self.image_id(path)
        return self.dir / iid[:2] / f"{iid}.pt"

    def _entry_path_of(self, iid: str) -> Path:
        return self.dir / iid[:2] / f"{iid}.pt"

    # -- entries -------------------------------------------------------------------------------------------
    def _valid(self, entry: object, iid: str) -> Features | None:
        """The entry's features if it is a well-formed entry of this spec and image, else None."""
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            return None
        if entry.get("key") != self.spec.key or entry.get("spec") != self.spec.as_dict() or entry.get("image") != iid:
            return None
        try:
            feats = Features.from_state_dict(entry["features"])
        except (KeyError, TypeError, ValueError):
            return None
        if feats.grid != self.backbone.grid_size or feats.stride != self.spec.stride:
            return None
        if set(feats.windows) != set(self.spec.scales):
            return None
        got = {"image": feats.image, "patches": feats.patches, **{f"w{k}": v for k, v in feats.windows.items()}}
        for name, shape in self._expected.items():
            t = got[name]
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or t.dtype != torch.float32:
                return None
        if entry.get("checksum") != features_checksum(feats):
            return None
        return feats

    def load(self, path: str | Path) -> Features | None:
        """The cached features (1 image) of an image file, or None on a miss; an invalid entry is deleted."""
        return self._load(self.image_id(path))

    def _load(self, iid: str) -> Features | None:
        entry_path = self._entry_path_of(iid)
        if not entry_path.is_file():
            return None
        try:
            entry = torch.load(entry_path, map_location="cpu", weights_only=True)
        except Exception:  # truncated, garbage, unpicklable: all mean "recompute"
            entry = None
        feats = self._valid(entry, iid)
        if feats is None:
            self.invalid_count += 1
            _log.warning("feature cache: invalid entry %s (stale or corrupt), deleted and recomputed", entry_path)
            with contextlib.suppress(FileNotFoundError):
                entry_path.unlink()
        return feats

    def _store(self, iid: str, feats: Features) -> None:
        """Write one entry; ``feats`` (1 image) must own its CPU storage (see :func:`_compact`)."""
        entry = {
            "format": CACHE_FORMAT,
            "key": self.spec.key,
            "spec": self.spec.as_dict(),
            "image": iid,
            "checksum": features_checksum(feats),
            "features": feats.state_dict(),
        }
        buf = io.BytesIO()
        torch.save(entry, buf)
        atomic_write_bytes(self._entry_path_of(iid), buf.getvalue())

    def _write_spec(self) -> None:
        spec_file = self.dir / "spec.json"
        if not spec_file.is_file():
            atomic_write_text(spec_file, json.dumps(self.spec.as_dict(), indent=2, sort_keys=True) + "\n")

    # -- encoding ------------------------------------------------------------------------------------------
    def _preprocess_one(self, path: Path) -> torch.Tensor:
        mean, std = self.spec.mean, self.spec.std
        return preprocess(path, self.spec.image_size, mode=self.spec.resize_mode, mean=mean, std=std)

    def _batches(self, paths: Sequence[Path]) -> Iterator[torch.Tensor]:
        """(b, 3, S, S) batches of ``paths``, the next batch decoded by threads while the current one encodes."""
        chunks = [paths[i : i + self.batch_size] for i in range(0, len(paths), self.batch_size)]
        with ThreadPoolExecutor(self.workers) as pool:
            pending = [pool.submit(self._preprocess_one, p) for p in chunks[0]] if chunks else []
            for i in range(len(chunks)):
                current = pending
                pending = [pool.submit(self._preprocess_one, p) for p in chunks[i + 1]] if i + 1 < len(chunks) else []
                yield torch.cat([f.result() for f in current])

    def _encode_misses(self, misses: dict[str, Path], desc: str) -> dict[str, Features]:
        """Encode ``{image id: path}`` in batches, store each entry, return ``{image id: Features (1 image)}``."""
        out: dict[str, Features] = {}
        if not misses:
            return out
        self._write_spec()
        ids, paths = list(misses), list(misses.values())
        bar = tqdm(total=len(ids), desc=desc, unit="img", disable=not self.progress, leave=False)
        try:
            start = 0
            for x in self._batches(paths):
                feats = encode_images(self.backbone, x, self.spec.scales, stride=self.spec.stride,
                                      patch_ln_post=self.spec.patch_ln_post, max_tokens=self.max_tokens).to("cpu")
                for j in range(len(feats)):
                    iid = ids[start + j]
                    one = _compact(feats[j])
                    self._store(iid, one)
                    out[iid] = one
                    self.encoded[iid] += 1
                self.encode_count += len(feats)
                start += len(feats)
                bar.update(len(feats))
        finally:
            bar.close()
        return out

    def features(self, paths: Sequence[str | Path], desc: str = "encode") -> Features:
        """Features of image files, in order, encoding only what is not cached.

        Args:
            paths: N image files (duplicates allowed).
            desc: label of the progress bar.

        Returns:
            :class:`Features` on the CPU with image (N, D), windows {k: (N, n_k, D)}, patches (N, G*G, W).
        """
        if len(paths) == 0:
            raise ValueError("no images given: nothing to encode")
        ids = [self.image_id(p) for p in paths]
        found: dict[str, Features] = {}
        misses: dict[str, Path] = {}
        for iid, p in zip(ids, paths, strict=True):
            if iid in found or iid in misses:
                continue
            feats = self._load(iid)
            if feats is None:
                misses[iid] = Path(p)
            else:
                found[iid] = feats
                self.hit_count += 1
        found.update(self._encode_misses(misses, desc))
        return Features.cat([found[i] for i in ids])

    def counts(self) -> dict[str, int]:
        """{"encoded", "hits", "invalid", "distinct_encoded", "max_encodes_per_image"} of this object so far."""
        return {
            "encoded": self.encode_count,
            "hits": self.hit_count,
            "invalid": self.invalid_count,
            "distinct_encoded": len(self.encoded),
            "max_encodes_per_image": max(self.encoded.values(), default=0),
        }
