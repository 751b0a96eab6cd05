"""The experiment grid and what it needs: one configuration, the encode-once feature cache, the grid and its results.

:mod:`~winclip_lib.experiments.config` (:class:`RunConfig`), :mod:`~winclip_lib.experiments.presets`,
:mod:`~winclip_lib.experiments.feature_cache`, :mod:`~winclip_lib.experiments.units`,
:mod:`~winclip_lib.experiments.unit_eval`, :mod:`~winclip_lib.experiments.grid` (:func:`run_grid`,
:func:`run_or_load`), :mod:`~winclip_lib.experiments.results`, :mod:`~winclip_lib.experiments.summary`,
:mod:`~winclip_lib.experiments.rescore`, :mod:`~winclip_lib.experiments.ablations`,
:mod:`~winclip_lib.experiments.labels`, :mod:`~winclip_lib.experiments.files`,
:mod:`~winclip_lib.experiments.progress`. The command line is :mod:`winclip_lib.cli`; scoring your own images is
:mod:`winclip_lib.inspection`.
"""

from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.grid import load_run_backbone, run_grid, run_or_load
from winclip_lib.experiments.results import RunResult, load_results

__all__ = ["RunConfig", "RunResult", "load_results", "load_run_backbone", "run_grid", "run_or_load"]
