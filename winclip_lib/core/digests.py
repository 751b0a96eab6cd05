"""Content digests of input files: the SHA-256 of a file's bytes, the identity of an input image or mask (the feature
cache's entries, the finished units of a grid), computed once per process.

A digest is remembered *in this process only*, under the file's device, inode, size, modification time and
status-change time, so that every file is hashed once per process however many times, and by whichever path or
link, it is asked for, and a file rewritten during the process is hashed again. It is not remembered across
processes: the modification time can be set by anyone (``touch -d``, ``cp -p``, an archive restored with its times),
and the status-change time, which a user cannot set on a local file system, is not kept by every file system a
dataset lives on (FAT and exFAT have none, SMB shares report one their clients may set): a file rewritten with the
same size and times would then keep its old digest.

**Changed while read.** :func:`digest_last_read` answers which bytes a decoder last read from a path, so that what
is recorded for a file — a cache entry, a unit's results — can be checked to come from the bytes it is recorded
under (:class:`FileChangedError` otherwise).

**Hashed where the bytes are read.** The decoders read image and mask files through :func:`read_file`, which hashes
the bytes it returns when their digest is not known yet (on the decoder's thread: hashing releases the GIL; 1.2 ms for
a 2 MB PNG on the 2-core AMD EPYC, whose decoding and resizing take about 24 ms). A grid then finds the digests of
everything it decoded already made, from the very bytes that were decoded; :func:`content_digests` reads only the
files no decoder read.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from winclip_lib.core.checkpoints import file_sha256

__all__ = ["FileChangedError", "bytes_sha256", "content_digest", "content_digests", "digest_last_read",
           "file_identity", "read_file"]

Identity = tuple[int, int, int, int, int]

_DIGESTS: dict[Identity, str] = {}
_LAST_READ: dict[str, Identity] = {}  # path -> the identity of the file when read_file last read it
_LOCK = threading.Lock()


class FileChangedError(ValueError):
    """An input file changed while a run was using it: the bytes it decoded are not the bytes the file holds now."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"{path} changed while this run was reading it (its bytes differ from those the run "
                         "decoded); nothing computed from it was recorded: run the same command again")
        self.path = path


def _identity_of(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _path_key(path: str | Path) -> str:
    return os.fspath(Path(path))


def file_identity(path: str | Path) -> Identity:
    """(device, inode, size, mtime ns, ctime ns) of a file (links followed): what a digest is remembered under."""
    return _identity_of(os.stat(path))


def bytes_sha256(data: bytes) -> str:
    """The SHA-256 of bytes, 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def read_file(path: str | Path) -> bytes:
    """The bytes of a file; their SHA-256 is remembered as the file's content digest when it is not known yet (the
    identity taken from the open file, before its bytes are read).

    Raises:
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as f:
        key = _identity_of(os.fstat(f.fileno()))
        data = f.read()
    digest = bytes_sha256(data) if key not in _DIGESTS else None
    with _LOCK:
        if digest is not None:
            _DIGESTS.setdefault(key, digest)
        _LAST_READ[_path_key(path)] = key
    return data


def digest_last_read(path: str | Path) -> str | None:
    """The digest of the bytes :func:`read_file` last returned for ``path`` in this process (None: not read so)."""
    with _LOCK:
        key = _LAST_READ.get(_path_key(path))
        return None if key is None else _DIGESTS[key]


def content_digest(path: str | Path) -> str:
    """The full SHA-256 (64 hex digits) of a file's bytes, read once per process (the module docstring)."""
    return content_digests([path], workers=1)[0]


def content_digests(paths: Sequence[str | Path], workers: int | None = None) -> list[str]:
    """:func:`content_digest` of many files, in order; the files not read yet in this process are read once each
    (one path per file identity, whatever the paths or links to it), by ``workers`` threads (default: min(8, CPUs);
    hashing releases the GIL)."""
    keys = [file_identity(p) for p in paths]
    unread: dict[Identity, str | Path] = {}
    for path, key in zip(paths, keys, strict=True):
        if key not in _DIGESTS:
            unread.setdefault(key, path)
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(unread) < 2:
        digests = [file_sha256(p) for p in unread.values()]
    else:
        with ThreadPoolExecutor(workers) as pool:
            digests = list(pool.map(file_sha256, unread.values()))
    with _LOCK:
        for key, digest in zip(unread, digests, strict=True):
            _DIGESTS.setdefault(key, digest)
    return [_DIGESTS[key] for key in keys]
