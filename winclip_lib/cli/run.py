"""``winclip run``: run or resume an experiment grid (datasets x categories x k x seeds, encoded once, scored many
times) and print its summary.

::

    winclip run --mvtec /data/mvtec --visa /data/visa --mpdd /data/mpdd --out build/results
    winclip run --synthetic demo/data --model WinCLIP-Tiny-240 --pretrained none --shots 0 1 --seeds 0 1
    winclip run --mvtec /data/mvtec --categories bottle mvtec:screw --shots 0 --precision bf16

Every flag is a field of :class:`~winclip_lib.experiments.config.RunConfig` (:mod:`winclip_lib.cli.settings`). The
whole configuration is checked before any image is encoded. ``--categories`` takes plain names (given to every
dataset that has them) or ``dataset:name``. Interrupted (Ctrl-C), the run is recorded as interrupted and resumes when
the same command is run again.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from winclip_lib.cli.settings import absolute_path, add_config_arguments, given_settings
from winclip_lib.cli.summary import format_summary
from winclip_lib.datasets.catalog import DATASET_LOADERS, DatasetError
from winclip_lib.datasets.layout import list_categories, no_categories_error
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.feature_cache import is_no_cache
from winclip_lib.experiments.grid import run_grid
from winclip_lib.experiments.presets import PRESETS
from winclip_lib.experiments.stages import format_stages

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "config_from_args", "resolve_categories", "run"]

NAME = "run"
HELP = "run or resume an experiment grid (encode once, score many)"
DESCRIPTION = ("Run or resume a grid of datasets x categories x k x seeds. Values are checked before anything is "
               "encoded; a finished grid is read back, not recomputed.")


def add_arguments(r: argparse.ArgumentParser) -> None:
    """The flags of ``winclip run``: the dataset roots, ``--categories``, ``--preset`` and every setting."""
    data = r.add_argument_group("data")
    for name in DATASET_LOADERS:
        data.add_argument(f"--{name}", metavar="ROOT", help=f"{name} dataset root")
    data.add_argument("--categories", nargs="+", metavar="CAT",
                      help="category names or dataset:name (default: every category present)")
    r.add_argument("--preset", choices=list(PRESETS), help="start from a public reproduction's choices (flags given "
                   "explicitly win); see winclip_lib/experiments/presets.py")
    add_config_arguments(r.add_argument_group("settings"))
    r.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_categories(datasets: dict[str, str], names: Sequence[str] | None) -> dict[str, list[str] | None]:
    """``--categories`` values to RunConfig.categories.

    ``dataset:name`` selects for that dataset; a plain ``name`` goes to every dataset whose root has it.

    Raises:
        DatasetError: a name no dataset has, a ``dataset:`` prefix without a root, or a dataset left with none.
    """
    if not names:
        return {}
    chosen: dict[str, list[str]] = {d: [] for d in datasets}
    present = {d: list_categories(DATASET_LOADERS[d], root) for d, root in datasets.items()}
    for d, cats in present.items():
        if not cats:
            raise no_categories_error(d, datasets[d])
    for name in names:
        dataset, sep, category = name.partition(":")
        if sep:
            if dataset not in datasets:
                raise DatasetError(f"--categories {name}: no root given for dataset {dataset!r} (use --{dataset})")
            chosen[dataset].append(category)  # validated by the runner, which lists what is present
            continue
        owners = [d for d in datasets if name in present[d]]
        if not owners:
            listing = "; ".join(f"{d}: {', '.join(c) or 'none'}" for d, c in present.items())
            raise DatasetError(f"unknown category {name!r}; categories present — {listing}")
        for d in owners:
            chosen[d].append(name)
    empty = [d for d, c in chosen.items() if not c]
    if empty:
        raise DatasetError(
            f"--categories selects nothing for {', '.join(empty)}; add e.g. {empty[0]}:<category> or drop "
            f"--{empty[0]}"
        )
    return {d: list(dict.fromkeys(c)) for d, c in chosen.items()}


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``run`` arguments: the flags given, every other setting at its default.
    Paths are made absolute (``run.json`` is read later from other folders)."""
    datasets = {d: absolute_path(getattr(args, d)) for d in DATASET_LOADERS if getattr(args, d, None)}
    if not datasets:
        flags = ", ".join(f"--{d} ROOT" for d in DATASET_LOADERS)
        raise DatasetError(f"no dataset given: pass at least one of {flags}")
    given = given_settings(args)
    for key in ("cache_dir", "out_dir"):
        value = given.get(key, getattr(RunConfig(), key))
        given[key] = value if key == "cache_dir" and is_no_cache(value) else absolute_path(value)
    # a preset first, the flags given over it; every value is checked before the categories touch the disk
    cfg = RunConfig.from_settings(given, preset=getattr(args, "preset", None), datasets=datasets)
    return cfg.replace(categories=resolve_categories(datasets, args.categories))


def run(args: argparse.Namespace) -> int:
    """Run the grid of the parsed arguments and print what was encoded and the summary; returns 0."""
    cfg = config_from_args(args)
    result = run_grid(cfg, progress=False if args.no_progress else None)
    counts = result.info["encode_counts"]
    print(f"backbone: {result.info['backbone']}")
    if result.reused_everything:
        print(f"all {len(result.info['units'])} units were already complete in {result.out_dir}; nothing was "
              "recomputed (delete the folder, or change --out, to recompute)")
    else:
        print(f"images encoded: {counts['encoded']}, read from the feature cache: {counts['hits']}, "
              f"cache entries extended: {counts['extended']}, invalid entries replaced: {counts['invalid']}")
    print(f"results: {result.out_dir}")
    if result.label:
        print(result.label)
    print("summary (mean over categories, then mean and std over seeds; values in %):")
    print(format_summary(result.summary))
    print(format_stages(result.info["stages"]))
    return 0
