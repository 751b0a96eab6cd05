"""Files a run writes: atomically (a killed run never leaves half a file), with the user's umask, and checksummed.

An atomic write goes to a temporary file in the same folder, is flushed to disk, gets the permissions an ordinary
``open(path, "w")`` would give (``0o666`` less the umask), and then replaces the target with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

import pandas as pd

from winclip_lib.core.checkpoints import file_sha256

__all__ = ["CSV_OPTIONS", "atomic_write_bytes", "atomic_write_text", "file_digest", "read_csv", "user_file_mode"]

#: How every results CSV is written: no index, Unix line ends.
CSV_OPTIONS = {"index": False, "lineterminator": "\n"}
_UMASK_LOCK = threading.Lock()


def user_file_mode() -> int:
    """The mode a new file gets from ``open()`` under the current umask (``0o666 & ~umask``)."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring); parent folders are created. ``durable=False``
    skips the fsync: still atomic against a killed process, but a power loss may lose or tear the file (for files
    whose readers check them, e.g. checksummed cache entries)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, user_file_mode())
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


#: Columns of the results CSVs that are names, read as text whatever they look like (BTAD's categories are "01" ...).
TEXT_COLUMNS = {c: str for c in ("dataset", "category", "metric", "image", "defect")}


def read_csv(path: str | Path) -> pd.DataFrame:
    """A results CSV written by this package (pandas >= 3 parses floats exactly, so a re-write gives the same
    bytes); name columns stay text (a category "01" is not the number 1)."""
    return pd.read_csv(path, keep_default_na=False, na_values=["", "NaN", "nan"], dtype=TEXT_COLUMNS)
