"""Helpers the notebooks share: showing the library code that implements an equation, and a run's settings.

Notebooks hold prose, parameters, calls and plots; everything they compute comes from the library. These helpers
only display.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

import pandas as pd

__all__ = ["settings_table", "show_source"]


def show_source(obj: Any, highlight: str | None = None):
    """The source of a library function as Markdown (for a notebook cell), lines containing ``highlight`` marked
    with ``# <--``. The notebooks show the code that implements an equation this way instead of copying it."""
    from IPython.display import Markdown

    lines, start = inspect.getsourcelines(obj)
    module = inspect.getmodule(obj)
    where = f"{module.__name__ if module else '?'}:{start}"
    body = []
    for line in lines:
        text = line.rstrip("\n")
        if highlight and highlight in text:
            text += "  # <--"
        body.append(text)
    return Markdown(f"`{where}`\n\n```python\n" + "\n".join(body) + "\n```")


def settings_table(config: Any, only_changed: bool = False) -> pd.DataFrame:
    """A settings dataclass (e.g. a ``RunConfig``) as a two-column table: setting, value (and its help text);
    ``only_changed`` keeps the settings that differ from their defaults."""
    defaults = type(config)()
    rows = []
    for f in fields(config):
        value = getattr(config, f.name)
        if only_changed and value == getattr(defaults, f.name):
            continue
        rows.append({"setting": f.name, "value": value, "meaning": f.metadata.get("help", "")})
    return pd.DataFrame(rows, columns=["setting", "value", "meaning"])
