"""Named choices: every setting that takes one of a fixed set of names is checked the same way, with the same error."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["check_choice", "unknown_choice"]


def unknown_choice(what: str, value: object, choices: Iterable[str]) -> ValueError:
    """The error for ``value`` not among ``choices``: names the setting, the value and every valid choice."""
    return ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def check_choice(what: str, value: object, choices: Iterable[str]) -> None:
    """Raise :func:`unknown_choice` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise unknown_choice(what, value, choices)
