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

__all__ = ["NotebookSetup", "RunsSetup", "settings_table", "setup_notebook", "setup_runs", "show_figure",
           "show_source"]


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


# ------------------------------------------------------------------ several runs with the same settings


@dataclass(frozen=True)
class RunsSetup:
    """What :func:`setup_runs` sets up: one run per group of datasets, the same settings and backbone for all.

    Attributes:
        config: the settings (a :class:`RunConfig` without datasets). backbone: the loaded backbone.
        banner: the DEMO label of everything drawn from the runs together (None for real weights on real data).
        figures, tables: the output folders. results: {group: its run}, for each group with datasets.
    """

    config: RunConfig
    backbone: Backbone
    banner: str | None
    figures: Path
    tables: Path
    results: dict[str, RunResult]

    @property
    def summary(self) -> pd.DataFrame:
        """The runs' summaries, one after the other (every dataset of every run)."""
        frames = [r.summary for r in self.results.values()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def setup_runs(groups: Mapping[str, Mapping[str, str | Path]], settings: Mapping[str, Any] | None = None, *,
               results_dir: str | Path, figures_dir: str | Path, tables_dir: str | Path | None = None,
               preset: str | None = None, categories: Mapping[str, Any] | None = None, **named: Any) -> RunsSetup:
    """:func:`setup_notebook` for a notebook that reads several runs made with the same settings on different
    datasets (notebook 08: the paper's benchmarks, the run notebooks 02-05 read, and the later ones): one run per
    group of ``groups`` ({group: {dataset: root}}) that names datasets, each read from ``results_dir`` when a run
    of those datasets and settings is there, else computed into it (:func:`run_or_load`); one backbone for all;
    the label covers every run (random weights if any run had them, synthetic data if any dataset is synthetic,
    the tiny model when it runs).
    ``categories`` entries apply to the group holding their dataset; ``named`` are the other settings."""
    base = RunConfig.from_settings(settings, preset=preset, **named)
    backbone = load_run_backbone(base)
    results: dict[str, RunResult] = {}
    for group, datasets in groups.items():
        if not datasets:
            continue
        chosen = {d: c for d, c in (categories or {}).items() if d in datasets}
        config = base.replace(datasets=dict(datasets), categories=chosen)
        results[group] = run_or_load(config, results_dir, backbone=backbone)
        print(f"{group}: run {results[group].out_dir}")
    if not results:
        raise ValueError("no datasets: give a root in at least one of " + ", ".join(groups))
    infos = [r.info for r in results.values()]
    banner = run_label({"is_random": any(bool(i.get("is_random", True)) for i in infos),
                        "synthetic_data": {f"{g}/{d}": bool(v) for g, r in results.items()
                                           for d, v in dict(r.info.get("synthetic_data") or {}).items()},
                        "weights": infos[0].get("weights"), "model_name": backbone.model_name}, name_model=True)
    print(backbone.describe())
    print(banner or "real weights on real data")
    figures = Path(figures_dir)
    tables = Path(tables_dir) if tables_dir is not None else figures / "tables"
    return RunsSetup(base, backbone, banner, figures, tables, results)
