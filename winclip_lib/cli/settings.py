"""Command-line flags built from a settings dataclass (:class:`~winclip_lib.experiments.config.RunConfig`): every
flag of ``winclip run`` and ``winclip predict`` is one of its fields, with the field's help text, choices and
default; a command that offers a setting offers the same flag, help and default."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from winclip_lib.experiments.config import RunConfig, setting_fields
from winclip_lib.experiments.feature_cache import is_no_cache

__all__ = ["absolute_path", "add_config_arguments", "given_settings"]

def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple | list):
        return " ".join(str(v) for v in value) or "none"
    return "none" if value is None else str(value)


def _flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _is_tuple(tp: Any) -> type | None:
    """The item type of ``tuple[X, ...]`` (also inside a union), else None."""
    options = typing.get_args(tp) if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union \
        else (tp,)
    for opt in options:
        if typing.get_origin(opt) is tuple:
            return typing.get_args(opt)[0]
    return None


def _optional_number(tp: Any) -> type | None:
    """``int`` or ``float`` for a setting typed ``int | None`` or ``float | None``, else None."""
    if not (isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union):
        return None
    options = set(typing.get_args(tp))
    if type(None) not in options:
        return None
    numbers = [t for t in options - {type(None)} if t in (int, float)]
    return numbers[0] if len(numbers) == 1 and len(options) == 2 else None


def _number_or_none(kind: type) -> Any:
    """An argparse ``type`` reading ``kind`` (int or float), or "none" as None (the setting's "not set")."""
    def parse(text: str) -> Any:
        if text.strip().lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} or none, got "
                                             f"{text!r}") from None
    parse.__name__ = f"{kind.__name__} or none"
    return parse


def _cli_names(cls: type, include: Sequence[str] | None) -> list[str]:
    """The command-line settings of ``cls`` (all, or those named in ``include``; an unknown name raises)."""
    names = [f.name for f, _ in setting_fields(cls) if f.metadata.get("cli", True)]
    if include is None:
        return names
    unknown = sorted(set(include) - set(names))
    if unknown:
        raise ValueError(f"not command-line settings of {cls.__name__}: {', '.join(unknown)}")
    return [n for n in names if n in include]


def add_config_arguments(parser: argparse.ArgumentParser, cls: type = RunConfig,
                         include: Sequence[str] | None = None) -> None:
    """One flag per command-line setting of ``cls``, with its help text, choices and default (shown in --help);
    ``include`` selects a subset of the settings by name (every command that offers a setting offers the same
    flag, help and default).

    Defaults are not set on the parser (``argparse.SUPPRESS``): :func:`given_settings` returns only the flags given,
    and the dataclass's own default holds for the others.
    """
    defaults = cls()
    chosen = set(_cli_names(cls, include))
    for field, tp in setting_fields(cls):
        if field.name not in chosen:
            continue
        md = field.metadata
        help_text = f"{md.get('help', '')} (default: {_show(getattr(defaults, field.name))})"
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, "help": help_text}
        choices = md.get("choices")
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif (item := _is_tuple(tp)) is not None and not choices:
            kwargs.update(nargs="+", type=item, metavar=md.get("metavar") or "VALUE")
        elif (number := _optional_number(tp)) is not None:
            kwargs["type"] = _number_or_none(number)
            if md.get("metavar"):
                kwargs["metavar"] = md["metavar"]
        else:
            scalar = tp if tp in (int, float) else str
            kwargs.update(type=scalar, choices=list(choices) if choices else None)
            if md.get("metavar"):
                kwargs["metavar"] = md["metavar"]
        parser.add_argument(_flag(field), **kwargs)


def absolute_path(path: str) -> str:
    """``path`` with ``~`` expanded, made absolute (``run.json`` is read later from other folders)."""
    return str(Path(path).expanduser().resolve())


def given_settings(args: argparse.Namespace, cls: type = RunConfig, include: Sequence[str] | None = None
                   ) -> dict[str, Any]:
    """The settings given as flags (see :func:`add_config_arguments`), by name; ``cache_dir`` made absolute (unless
    it is "none")."""
    given = {name: getattr(args, name) for name in _cli_names(cls, include) if hasattr(args, name)}
    if "cache_dir" in given and not is_no_cache(given["cache_dir"]):
        given["cache_dir"] = absolute_path(given["cache_dir"])
    return given
