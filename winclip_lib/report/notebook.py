"""Helpers the notebooks share: their common first steps, showing the library code that implements an equation, a
run's settings, and showing a saved figure.

Notebooks hold prose, parameters, calls and plots; everything they compute comes from the library.
:func:`setup_notebook` is the set-up every numbered notebook starts with: the configuration from its parameters
(named in the call, so each notebook shows what it sets), the backbone, the DEMO label of what it draws, its output
folders and, for the notebooks that read a run, the run.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from winclip_lib.core.backbone import Backbone
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.grid import load_run_backbone, run_or_load
from winclip_lib.experiments.labels import label_for, run_label
from winclip_lib.experiments.results import RunResult
from winclip_lib.report.figures.style import save_figure

__all__ = ["NotebookSetup", "settings_table", "setup_notebook", "show_figure", "show_source"]


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


@dataclass(frozen=True)
class NotebookSetup:
    """What a notebook's first code cell sets up (:func:`setup_notebook`).

    Attributes:
        config: the run's :class:`RunConfig` (a run's own, when one was read). backbone: the loaded backbone.
        banner: the DEMO label of everything the notebook draws (None for real weights on real data; it names the
            tiny test model when the notebook runs it).
        figures, tables: the output folders. result: the run (when ``results_dir`` was given), else None.
    """

    config: RunConfig
    backbone: Backbone
    banner: str | None
    figures: Path
    tables: Path
    result: RunResult | None = None

    def run_banner(self, result: RunResult) -> str | None:
        """The label of a run the notebook computed or read (its ``run.json``), the tiny model named as in
        :attr:`banner`."""
        return run_label(result.info, name_model=True)

    def settings(self) -> pd.DataFrame:
        """The settings that differ from their defaults (:func:`settings_table`)."""
        return settings_table(self.config, only_changed=True)


def setup_notebook(settings: Mapping[str, Any] | None = None, *, figures_dir: str | Path,
                   tables_dir: str | Path | None = None, results_dir: str | Path | None = None,
                   preset: str | None = None, **named: Any) -> NotebookSetup:
    """The configuration from a notebook's parameters (:meth:`RunConfig.from_settings`: ``settings``, ``preset``,
    then the settings ``named``, None meaning "the default"), its backbone, and the label of what the notebook draws;
    prints the backbone and the label.

    With ``results_dir`` the finished run of that configuration is read from it, or computed into it
    (:func:`~winclip_lib.experiments.grid.run_or_load`): the configuration is then the run's own and the label the
    run's. The label names the tiny test model when the notebook runs it ("DEMO — tiny model, ...").
    ``tables_dir`` defaults to ``figures_dir``/tables.
    """
    config = RunConfig.from_settings(settings, preset=preset, **named)
    backbone = load_run_backbone(config)
    result = None
    if results_dir is not None:
        result = run_or_load(config, results_dir, backbone=backbone)
        config, banner = result.config, run_label(result.info, name_model=True)
        print(f"run: {result.out_dir}")
    else:
        banner = label_for(backbone.is_random, config.datasets, backbone.weights, backbone.model_name)
    print(backbone.describe())
    print(banner or "real weights on real data")
    figures = Path(figures_dir)
    tables = Path(tables_dir) if tables_dir is not None else figures / "tables"
    return NotebookSetup(config, backbone, banner, figures, tables, result)


def show_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as PNG (:func:`~winclip_lib.report.figures.style.save_figure`), display it in the notebook and
    close it; returns the path."""
    from IPython.display import display

    saved = save_figure(fig, path)
    display(fig)
    plt.close(fig)
    return saved
