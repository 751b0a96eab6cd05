"""``winclip summary``: print the summary of a finished run (``--per-category`` adds the per-category table).

The metric names are the report's (:data:`winclip_lib.report.names.METRIC_LABELS`), values in %.
"""

from __future__ import annotations

import argparse

import pandas as pd

from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.results import load_results
from winclip_lib.report.names import metric_label

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "format_summary", "run"]

NAME = "summary"
HELP = "print the summary of a finished run"
DESCRIPTION = HELP


def add_arguments(s: argparse.ArgumentParser) -> None:
    """The flags of ``winclip summary``."""
    s.add_argument("--out", default=RunConfig.out_dir, help=f"the run folder (default: {RunConfig.out_dir})")
    s.add_argument("--per-category", action="store_true", help="also print the per-category table")


def format_summary(summary: pd.DataFrame) -> str:
    """The summary as printed: metric names as in the report, values in %."""
    shown = summary.copy()
    shown["metric"] = shown["metric"].map(metric_label)
    for col in ("mean", "std"):
        if col in shown:
            shown[col] = (100 * shown[col]).round(1)
    shown = shown.rename(columns={"mean": "mean (%)", "std": "std (%)"})
    return shown.to_string(index=False)


def run(args: argparse.Namespace) -> int:
    """Print the summary of the run in ``args.out``; returns 0."""
    result = load_results(args.out)
    print(f"{result.info.get('backbone', '')}  (values in %)")
    if result.label:
        print(result.label)
    print(format_summary(result.summary))
    if args.per_category:
        print()
        print(format_summary(result.per_category()))
    return 0
