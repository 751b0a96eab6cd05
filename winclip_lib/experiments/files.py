"""Files a run writes and reads: atomic writes (a killed run never leaves half a file) with the user's umask, the
output folders checked before any work, results CSVs read back.

An atomic write goes to a temporary file in the same folder, is flushed to disk, gets the permissions an ordinary
``open(path, "w")`` would give (``0o666`` less the umask), and then replaces the target with ``os.replace``. A write
that fails (a full disk, a read-only file system, no permission) raises :class:`WriteError`, whose message names the
file and the cause in one line; no temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd

from winclip_lib.core.checkpoints import file_sha256

__all__ = [
    "CSV_OPTIONS",
    "WriteError",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
    "check_output_dirs",
    "describe_error",
    "describe_os_error",
    "file_digest",
    "is_no_folder",
    "read_csv",
    "read_json_object",
    "user_file_mode",
    "visible_entries",
    "writing",
]

#: How every results CSV is written: no index, Unix line ends.
CSV_OPTIONS = {"index": False, "lineterminator": "\n"}
_UMASK_LOCK = threading.Lock()
#: Bytes written (and synced) by the probe of :func:`check_output_dir`: a disk without room for them is full.
_PROBE_BYTES = 4096


class WriteError(OSError):
    """A file or folder could not be written. ``str()`` is one line naming the path and the cause (e.g. ``cannot
    write /data/out/run.json: no space left on device``); ``errno`` and ``filename`` are those of the failure."""

    def __init__(self, code: int | None, message: str, filename: str | None = None) -> None:
        super().__init__(code, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


def describe_os_error(exc: OSError) -> str:
    """The cause of an ``OSError`` in a few lower-case words: "no space left on device", "read-only file system",
    "permission denied", ...; the exception's own text when it has no error code."""
    if isinstance(exc, WriteError):
        return exc.message
    if exc.errno is not None:
        return os.strerror(exc.errno).lower() if exc.errno != errno.EDQUOT else "disk quota exceeded"
    return str(exc) or type(exc).__name__


def _write_error(path: Path, exc: OSError) -> WriteError:
    return WriteError(exc.errno, f"cannot write {path}: {describe_os_error(exc)}", str(path))


def user_file_mode() -> int:
    """The mode a new file gets from ``open()`` under the current umask (``0o666 & ~umask``)."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring); parent folders are created. ``durable=False``
    skips the fsync: still atomic against a killed process, but a power loss may lose or tear the file (for files
    whose readers check them, e.g. checksummed cache entries).

    Raises:
        WriteError: the folder or the file could not be written (the message names ``path`` and the cause).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, user_file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Around a write that another library makes (a figure saved by matplotlib): an ``OSError`` it raises becomes a
    :class:`WriteError` naming ``path`` and the cause."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise _write_error(Path(path), exc) from exc


def is_no_folder(value: str | Path | None) -> bool:
    """True for a folder setting that means "no folder" (None or ``none``, as ``--cache-dir none``)."""
    return value is None or str(value).strip().lower() == "none"


def _cannot(what: str, folder: Path, cause: str, code: int | None) -> WriteError:
    return WriteError(code, f"{what} {folder} cannot be written: {cause}", str(folder))


def _probe(folder: Path, what: str) -> None:
    """Write, sync and remove a small hidden file in an existing ``folder``."""
    probe = None
    try:
        fd, probe = tempfile.mkstemp(prefix=".winclip-write-test.", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * _PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise _cannot(what, folder, describe_os_error(exc), exc.errno) from exc
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)


def _can_create_in(parent: Path, folder: Path, what: str) -> None:
    """Whether a folder can be made in the existing folder ``parent`` — asked without writing anything."""
    if not os.access(parent, os.W_OK | os.X_OK):
        code = errno.EROFS if os.statvfs(parent).f_flag & os.ST_RDONLY else errno.EACCES
        raise _cannot(what, folder, f"{describe_os_error(OSError(code, ''))} in {parent}", code)
    st = os.statvfs(parent)
    if st.f_bavail * st.f_frsize < _PROBE_BYTES:
        raise _cannot(what, folder, f"no space left on device ({parent})", errno.ENOSPC)


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Make sure ``path`` can take a run's files before any work starts: it is a folder, or can be made one (no file
    in the way, on it or above it), and it is writable and not full. An existing folder is probed by writing,
    syncing and removing a small hidden file; for a missing one, the nearest existing folder above it is checked
    (write permission, a read-only file system, free space) and nothing is created. Returns the absolute path.

    Raises:
        WriteError: one line naming ``what`` (e.g. "--cache-dir"), the path and the cause.
    """
    folder = Path(os.path.abspath(Path(path).expanduser()))
    for above in (folder, *folder.parents):
        if not (above.exists() or above.is_symlink()):
            continue
        if not above.is_dir():
            kind = "a file" if above.is_file() else "not a folder"
            where = f"is {kind}" if above == folder else f"is under {above}, which is {kind}"
            raise WriteError(errno.ENOTDIR, f"{what} {folder} {where}: choose a folder", str(above))
        if above == folder:
            _probe(folder, what)
        else:
            _can_create_in(above, folder, what)
        break
    return folder


def check_output_dirs(folders: Mapping[str, str | Path | None]) -> dict[str, Path]:
    """:func:`check_output_dir` of every ``{what: folder}`` (a folder that means none, :func:`is_no_folder`, is left
    out); returns the checked ones as absolute paths."""
    return {what: check_output_dir(folder, what) for what, folder in folders.items() if not is_no_folder(folder)}


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong: a :class:`WriteError`'s message; an ``OSError``'s file and cause
    ("/data/x.png: permission denied"); any other exception's message."""
    if isinstance(exc, WriteError):
        return exc.message
    if isinstance(exc, OSError):
        cause = describe_os_error(exc)
        return f"{exc.filename}: {cause}" if exc.filename else cause
    return str(exc) or type(exc).__name__


def visible_entries(folder: str | Path) -> list[str]:
    """The names in ``folder`` that are not hidden (``.name``: a temporary file, ``.DS_Store``), sorted; [] for a
    missing folder."""
    try:
        return sorted(e.name for e in os.scandir(folder) if not e.name.startswith("."))
    except FileNotFoundError:
        return []


def read_json_object(path: str | Path) -> dict | None:
    """The JSON object in ``path``; None when the file is missing, unreadable or holds anything else."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def file_digest(path: str | Path, n_hex: int = 32) -> str:
    """SHA-256 of a file's bytes, first ``n_hex`` hex digits (read every time; see :func:`content_digest`)."""
    return file_sha256(path, n_hex)


#: Columns of the results CSVs that are names, read as text whatever they look like (BTAD's categories are "01" ...).
TEXT_COLUMNS = {c: str for c in ("dataset", "category", "metric", "image", "defect")}


def read_csv(path: str | Path) -> pd.DataFrame:
    """A results CSV written by this package (pandas >= 3 parses floats exactly, so a re-write gives the same
    bytes); name columns stay text (a category "01" is not the number 1)."""
    return pd.read_csv(path, keep_default_na=False, na_values=["", "NaN", "nan"], dtype=TEXT_COLUMNS)
