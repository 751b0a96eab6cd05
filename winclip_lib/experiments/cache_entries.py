"""One feature-cache entry on disk: its file format, its checksum, and the thread that writes entries in the
background.

An entry (format :data:`ENTRY_FORMAT`) is one file, ``<id>.feat``::

    b"WINCLIPF"  u32 little-endian header length  header (UTF-8 JSON)  zero padding  tensor bytes

The header holds the format, the spec key and spec, the image id, the checksum and, per named tensor, its dtype,
shape, offset and byte count; each tensor's raw bytes start at a multiple of 64 bytes after the header, so a read is
one ``readinto`` and the tensors are views of that buffer. Tensors are stored in the encoder's precision where
that is exact (the features of a bf16 or fp16 encoder are bf16 or fp16 values held in float32, so the round trip
loses nothing and the entry takes half the disk), else in float32; :func:`read_entry` returns float32 either way.

The format before this one (2) was a ``torch.save`` of ``{format, key, spec, image, checksum, tensors}`` in
``<id>.pt``, all float32: :func:`read_legacy_entry` reads it, so a cache written by an earlier version is used, not
recomputed (and rewritten in this format by the cache).

:class:`EntryWriter` writes entries from one background thread: the encoder hands over an entry and goes on; a
bounded number of entries wait (the encoder waits beyond that, which the run's stage timings charge to
``cache_write``); :meth:`EntryWriter.flush` waits for all of them and raises the first error. Each file is written
to a temporary name and renamed into place (a killed run never leaves a partial entry under an entry's name); it is
not fsynced — after a power loss an entry may be lost or torn, and its checksum then sends it back to the encoder.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from winclip_lib.experiments.files import atomic_write_bytes
from winclip_lib.experiments.stages import StageTimes

__all__ = ["ENTRY_FORMAT", "ENTRY_SUFFIX", "LEGACY_FORMAT", "LEGACY_SUFFIX", "EntryWriter", "encode_entry",
           "features_checksum", "read_entry", "read_legacy_entry", "storage_tensors", "write_entry_file"]

#: Layout version of one cache entry (this module's docstring).
ENTRY_FORMAT = 3
ENTRY_SUFFIX = ".feat"
#: The ``torch.save`` entries of the previous version (read, then rewritten in :data:`ENTRY_FORMAT`).
LEGACY_FORMAT = 2
LEGACY_SUFFIX = ".pt"
_MAGIC = b"WINCLIPF"
_ALIGN = 64
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _raw(t: torch.Tensor) -> memoryview:
    """The bytes of a tensor, without a copy when it is contiguous on the CPU."""
    return memoryview(t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy())


def features_checksum(named: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes, dtypes and raw bytes of named tensors (in name order)."""
    h = hashlib.sha256()
    for name in sorted(named):
        t = named[name]
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(_raw(t))
    return h.hexdigest()


def storage_tensors(named: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Each float32 tensor in ``dtype`` where the round trip is exact (every value representable), else as it is."""
    if dtype == torch.float32:
        return dict(named)
    out = {}
    for name, t in named.items():
        low = t.to(dtype)
        out[name] = low if t.dtype == torch.float32 and torch.equal(low.float(), t) else t
    return out


def encode_entry(header: dict[str, Any], stored: dict[str, torch.Tensor]) -> bytes:
    """The bytes of an entry file: ``header`` (format, key, spec, image) with the checksum and the tensor table
    added, then the tensors' bytes (this module's docstring)."""
    table, offset, blobs = [], 0, []
    for name in sorted(stored):
        t = stored[name]
        if t.dtype not in _NAMES:
            raise ValueError(f"cannot store tensor {name} of dtype {t.dtype}")
        raw = _raw(t)
        table.append([name, _NAMES[t.dtype], list(t.shape), offset, raw.nbytes])
        blobs.append((offset, raw))
        offset += -(-raw.nbytes // _ALIGN) * _ALIGN
    meta = json.dumps({**header, "format": ENTRY_FORMAT, "checksum": features_checksum(stored), "tensors": table},
                      sort_keys=True, separators=(",", ":")).encode()
    start = -(-(len(_MAGIC) + 4 + len(meta)) // _ALIGN) * _ALIGN
    out = bytearray(start + offset)
    out[: len(_MAGIC)] = _MAGIC
    out[len(_MAGIC) : len(_MAGIC) + 4] = struct.pack("<I", len(meta))
    out[len(_MAGIC) + 4 : len(_MAGIC) + 4 + len(meta)] = meta
    for off, raw in blobs:
        out[start + off : start + off + raw.nbytes] = raw
    return bytes(out)


def read_entry(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """(header, stored tensors as views of the file's bytes) of an entry file whose checksum holds; None for a file
    that is not a complete, intact entry (truncated, garbage, a flipped bit). The caller checks the header against
    the spec and image it expects."""
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            buf = bytearray(size)
            if f.readinto(buf) != size or buf[: len(_MAGIC)] != _MAGIC:
                return None
        (length,) = struct.unpack_from("<I", buf, len(_MAGIC))
        header = json.loads(bytes(buf[len(_MAGIC) + 4 : len(_MAGIC) + 4 + length]))
        start = -(-(len(_MAGIC) + 4 + length) // _ALIGN) * _ALIGN
        stored = {}
        for name, dtype, shape, offset, nbytes in header["tensors"]:
            kind = _DTYPES[dtype]
            count = nbytes // kind.itemsize
            if start + offset + nbytes > size or count * kind.itemsize != nbytes or count != math.prod(shape):
                return None
            stored[name] = torch.frombuffer(buf, dtype=kind, count=count, offset=start + offset).reshape(shape)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error, RuntimeError):
        return None
    if header.get("format") != ENTRY_FORMAT or header.get("checksum") != features_checksum(stored):
        return None
    return header, stored


def read_legacy_entry(path: Path) -> dict[str, Any] | None:
    """An entry of the previous format (:data:`LEGACY_FORMAT`, ``torch.load(weights_only=True)``) as its dict
    (format, key, spec, image, checksum, tensors), when it loads and its checksum holds; else None."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, garbage, unpicklable: all mean "recompute"
        return None
    if not isinstance(entry, dict) or entry.get("format") != LEGACY_FORMAT:
        return None
    named = entry.get("tensors")
    if not isinstance(named, dict) or not all(isinstance(t, torch.Tensor) for t in named.values()):
        return None
    if entry.get("checksum") != features_checksum(named):
        return None
    return entry


@dataclass(frozen=True, eq=False)
class _Handed:
    """One hand-over to the writer (compared by identity: two hand-overs of equal values are two)."""

    value: Any


class EntryWriter:
    """Writes entries from one background thread (this module's docstring).

    Args:
        times: where the writer's busy seconds (``cache_write``) and the main thread's waits are charged.
        max_pending: entries handed over and not yet written, at most.
    """

    def __init__(self, times: StageTimes, max_pending: int = 64) -> None:
        self.times = times
        self._pool: ThreadPoolExecutor | None = None
        self._room = threading.BoundedSemaphore(max(1, max_pending))
        self._futures: list[Future] = []
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}

    def pending(self, key: str) -> Any:
        """What was handed over under ``key`` and is not written yet (None when there is nothing)."""
        with self._lock:
            handed = self._pending.get(key)
        return None if handed is None else handed.value

    def submit(self, key: str, value: Any, write: Callable[[], None]) -> None:
        """Run ``write()`` in the background; ``value`` is what :meth:`pending` answers for ``key`` until then."""
        if not self._room.acquire(blocking=False):
            with self.times.stage("cache_write"):
                self._room.acquire()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="winclip-cache-writer")
        handed = _Handed(value)
        with self._lock:
            self._pending[key] = handed
        self._futures.append(self._pool.submit(self._run, key, handed, write))
        self._futures = [f for f in self._futures if not f.done() or f.exception() is not None]

    def _run(self, key: str, handed: _Handed, write: Callable[[], None]) -> None:
        try:
            with self.times.busy("cache_write"):
                write()
        finally:
            with self._lock:
                if self._pending.get(key) is handed:  # not a later hand-over of the same key, still queued
                    del self._pending[key]
            self._room.release()

    def flush(self) -> None:
        """Wait until every entry handed over is written; raise the first error of a write."""
        futures, self._futures = self._futures, []
        if not futures:
            return
        with self.times.stage("cache_write"):
            for f in futures:
                f.exception()
        for f in futures:
            if f.exception() is not None:
                raise f.exception()

    def close(self) -> None:
        """:meth:`flush`, then stop the thread."""
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def write_entry_file(path: Path, data: bytes) -> None:
    """Write an entry atomically (temporary file, then rename), without fsync (this module's docstring)."""
    atomic_write_bytes(path, data, durable=False)
