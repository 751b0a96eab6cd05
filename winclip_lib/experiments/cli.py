"""The experiment commands of ``winclip``, built from :class:`RunConfig`.

The console command ``winclip`` is :func:`winclip_lib.cli.main`, which runs :func:`main` here with the sub-commands
of the layers above (``predict``, whose page comes from the report layer) added as :class:`SubCommand` objects;
``python -m winclip_lib.experiments.cli`` offers the experiment commands alone. Sub-commands::

    winclip run --mvtec /data/mvtec --visa /data/visa --mpdd /data/mpdd --out build/results
    winclip run --synthetic demo/data --model WinCLIP-Tiny-240 --pretrained none --shots 0 1 --seeds 0 1
    winclip run --mvtec /data/mvtec --categories bottle mvtec:screw --shots 0 --precision bf16
    winclip summary --out build/results
    winclip synthetic --root build/synthetic        # the small synthetic dataset, in the MVTec layout
    winclip predict photos/ --class-name "metal nut" --normal good/   # your own images (winclip_lib.cli)

Every flag of ``run`` is a field of :class:`~winclip_lib.experiments.config.RunConfig` (its help text, choices and
default come from there). The whole configuration is checked before any image is encoded. ``--categories`` takes
plain names (given to every dataset that has them) or ``dataset:name``.

Exit status: 0 on success; 2 for a usage, data, device or weights problem (one line; ``--debug`` shows the
traceback); 130 after Ctrl-C (the run is recorded as interrupted and resumes when the same command is run again).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from winclip_lib.core.backbone import WeightsUnavailableError
from winclip_lib.core.checkpoints import as_entry_point
from winclip_lib.core.imageio import ImageError
from winclip_lib.core.openclip_adapter import UnsupportedOpenCLIPError
from winclip_lib.datasets.catalog import DATASET_LOADERS, DatasetError
from winclip_lib.datasets.layout import list_categories, no_categories_error
from winclip_lib.datasets.synthetic import SYNTHETIC_CATEGORIES, make_synthetic
from winclip_lib.experiments.config import RunConfig, setting_fields
from winclip_lib.experiments.grid import run_grid
from winclip_lib.experiments.presets import PRESETS
from winclip_lib.experiments.results import load_results

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "METRIC_DISPLAY", "SubCommand", "add_config_arguments", "build_parser",
           "config_from_args", "given_settings", "main", "resolve_categories"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
USER_ERRORS = (WeightsUnavailableError, UnsupportedOpenCLIPError, DatasetError, ImageError, FileNotFoundError,
               FileExistsError, ValueError)
#: How the tables printed here name the metrics (the report's names).
METRIC_DISPLAY: dict[str, str] = {
    "image_auroc": "Image AUROC", "image_ap": "Image AP", "image_f1_max": "Image F1-max",
    "pixel_auroc": "Pixel AUROC", "pixel_ap": "Pixel AP", "pixel_f1_max": "Pixel F1-max", "pixel_aupro": "PRO",
}


# ------------------------------------------------------------------------------------------- config as flags


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
        else:
            scalar = tp if tp in (int, float) else str
            kwargs.update(type=scalar, choices=list(choices) if choices else None)
            if md.get("metavar"):
                kwargs["metavar"] = md["metavar"]
        parser.add_argument(_flag(field), **kwargs)


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


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def given_settings(args: argparse.Namespace, cls: type = RunConfig, include: Sequence[str] | None = None
                   ) -> dict[str, Any]:
    """The settings given as flags (see :func:`add_config_arguments`), by name; ``cache_dir`` made absolute."""
    given = {name: getattr(args, name) for name in _cli_names(cls, include) if hasattr(args, name)}
    if "cache_dir" in given:
        given["cache_dir"] = _absolute(given["cache_dir"])
    return given


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``run`` arguments: the flags given, every other setting at its default.
    Paths are made absolute (``run.json`` is read later from other folders)."""
    datasets = {d: _absolute(getattr(args, d)) for d in DATASET_LOADERS if getattr(args, d, None)}
    if not datasets:
        flags = ", ".join(f"--{d} ROOT" for d in DATASET_LOADERS)
        raise DatasetError(f"no dataset given: pass at least one of {flags}")
    given = given_settings(args)
    for key in ("cache_dir", "out_dir"):
        given[key] = _absolute(given.get(key, getattr(RunConfig(), key)))
    # a preset first, the flags given over it; every value is checked before the categories touch the disk
    cfg = RunConfig.from_settings(given, preset=getattr(args, "preset", None), datasets=datasets)
    return cfg.replace(categories=resolve_categories(datasets, args.categories))


# ----------------------------------------------------------------------------------------------- commands


@dataclasses.dataclass(frozen=True)
class SubCommand:
    """A sub-command that a layer above adds to ``winclip`` (:func:`build_parser`, :func:`main`): its name and help,
    a function adding its arguments to its sub-parser, and the function that runs it and returns the exit
    status."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


def build_parser(extra: Sequence[SubCommand] = ()) -> argparse.ArgumentParser:
    """The parser of the experiment commands, plus the ``extra`` sub-commands."""
    p = argparse.ArgumentParser(prog="winclip", description="WinCLIP / WinCLIP+ (Jeong et al., CVPR 2023)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run or resume an experiment grid (encode once, score many)",
                       description="Run or resume a grid of datasets x categories x k x seeds. Values are checked "
                                   "before anything is encoded; a finished grid is read back, not recomputed.")
    data = r.add_argument_group("data")
    for name in DATASET_LOADERS:
        data.add_argument(f"--{name}", metavar="ROOT", help=f"{name} dataset root")
    data.add_argument("--categories", nargs="+", metavar="CAT",
                      help="category names or dataset:name (default: every category present)")
    r.add_argument("--preset", choices=list(PRESETS), help="start from a public reproduction's choices (flags given "
                   "explicitly win); see winclip_lib/experiments/presets.py")
    add_config_arguments(r.add_argument_group("settings"))
    r.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = sub.add_parser("summary", help="print the summary of a finished run")
    s.add_argument("--out", default=RunConfig.out_dir, help=f"the run folder (default: {RunConfig.out_dir})")
    s.add_argument("--per-category", action="store_true", help="also print the per-category table")

    y = sub.add_parser("synthetic", help="write the small synthetic dataset (MVTec layout) used by the demo and tests")
    y.add_argument("--root", required=True, type=Path, help="output folder (new, empty, or an earlier synthetic set)")
    y.add_argument("--categories", nargs="+", default=list(SYNTHETIC_CATEGORIES), choices=sorted(SYNTHETIC_CATEGORIES),
                   help="(default: %(default)s)")
    y.add_argument("--n-train", type=int, default=8, help="normal training images per category (default: %(default)s)")
    y.add_argument("--n-test-good", type=int, default=4, help="normal test images per category (default: %(default)s)")
    y.add_argument("--n-test-bad", type=int, default=6,
                   help="anomalous test images per category (default: %(default)s)")
    y.add_argument("--size", type=int, default=256, help="image side in pixels, >= 32 (default: %(default)s)")
    y.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    for command in extra:
        command.add_arguments(sub.add_parser(command.name, help=command.help,
                                             description=command.description or command.help))
    return p


def format_summary(summary: pd.DataFrame) -> str:
    """The summary as printed: metric names as in the report, values in %."""
    shown = summary.copy()
    shown["metric"] = shown["metric"].map(lambda m: METRIC_DISPLAY.get(m, m))
    for col in ("mean", "std"):
        if col in shown:
            shown[col] = (100 * shown[col]).round(1)
    shown = shown.rename(columns={"mean": "mean (%)", "std": "std (%)"})
    return shown.to_string(index=False)


def cmd_run(args: argparse.Namespace) -> int:
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
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    result = load_results(args.out)
    print(f"{result.info.get('backbone', '')}  (values in %)")
    if result.label:
        print(result.label)
    print(format_summary(result.summary))
    if args.per_category:
        print()
        print(format_summary(result.per_category()))
    return 0


def cmd_synthetic(args: argparse.Namespace) -> int:
    root = make_synthetic(args.root, args.categories, args.n_train, args.n_test_good, args.n_test_bad, args.size,
                          args.seed)
    print(f"wrote a synthetic dataset to {root.resolve()}: categories {', '.join(args.categories)}; per category "
          f"{args.n_train} training, {args.n_test_good} normal and {args.n_test_bad} anomalous test images of "
          f"{args.size} x {args.size}")
    print(f"run it with: winclip run --synthetic {root.resolve()} --pretrained none")
    return 0


COMMANDS = {"run": cmd_run, "summary": cmd_summary, "synthetic": cmd_synthetic}


@as_entry_point("cli")  # messages name the command's flags (e.g. --pretrained)
def main(argv: Sequence[str] | None = None, extra: Sequence[SubCommand] = ()) -> int:
    """Parse ``argv`` and run; returns the exit status (0; 2 for a user error; 130 after Ctrl-C; a command may
    return others, e.g. ``predict``'s 3 when files were skipped). ``extra``: sub-commands of the layers above."""
    args = build_parser(extra).parse_args(argv)
    commands = {**COMMANDS, **{command.name: command.run for command in extra}}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\nwinclip: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"winclip: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
