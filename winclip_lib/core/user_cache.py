"""The user's winclip folder for small remembered facts: ``<WINCLIP_CACHE_DIR or ~/.cache/winclip>``.

What the core measures or computes once per machine or file is kept there as small JSON files, each written
atomically (a temporary file, then ``os.replace``): the precision probe's choice per machine (``precision.json``,
:mod:`winclip_lib.core.precision`) and the SHA-256 of checkpoint files (``checkpoint_sha256.json``,
:mod:`winclip_lib.core.checkpoints`). A file that cannot be read or written is simply computed again next time.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["CACHE_DIR_ENV", "cache_file", "read_json", "write_json"]

CACHE_DIR_ENV = "WINCLIP_CACHE_DIR"
_log = logging.getLogger(__name__)


def cache_file(name: str) -> Path:
    """``<WINCLIP_CACHE_DIR or ~/.cache/winclip>/<name>`` (read at call time)."""
    base = os.environ.get(CACHE_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "winclip")
    return Path(base) / name


def read_json(name: str, fmt: int) -> dict[str, Any]:
    """The JSON object in :func:`cache_file` ``name`` when its ``"format"`` is ``fmt``; else (missing, unreadable,
    another format) an empty dict."""
    try:
        data = json.loads(cache_file(name).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == fmt else {}


def write_json(name: str, fmt: int, data: dict[str, Any], indent: int = 2) -> bool:
    """Write ``{"format": fmt, **data}`` to :func:`cache_file` ``name`` atomically; False (logged at debug level)
    when the folder is not writable."""
    path = cache_file(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": fmt, **data}, indent=indent, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return True
    except OSError as exc:
        _log.debug("cannot write %s: %s", path, exc)
        return False
