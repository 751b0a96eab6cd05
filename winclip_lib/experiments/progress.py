"""Progress bars: shown while a person watches, off where nobody does.

``WINCLIP_PROGRESS=0`` turns every bar of the library off (the notebook runner sets it for the kernels it starts, so
executed notebooks hold no half-drawn widgets); ``progress=False`` does so for one call. :func:`set_progress` changes
the default in code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["PROGRESS_ENV", "bar", "progress_enabled", "set_progress"]

PROGRESS_ENV = "WINCLIP_PROGRESS"
_DEFAULT: dict[str, bool] = {}


def set_progress(enabled: bool) -> None:
    """Set the default for calls that do not say (overrides ``WINCLIP_PROGRESS``)."""
    _DEFAULT["enabled"] = bool(enabled)


def progress_enabled(requested: bool | None = None) -> bool:
    """``requested`` when given, else the default: :func:`set_progress`'s, else ``WINCLIP_PROGRESS`` (on unless 0)."""
    if requested is not None:
        return bool(requested)
    if "enabled" in _DEFAULT:
        return _DEFAULT["enabled"]
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def bar(iterable: Iterable[Any] | None = None, *, enabled: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (``tqdm.auto``), disabled unless :func:`progress_enabled`."""
    return tqdm(iterable, disable=not progress_enabled(enabled), **kwargs)
