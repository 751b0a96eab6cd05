"""Command-line entry: ``winclip run`` runs (or resumes) a grid, ``winclip summary`` prints a finished run's summary.

Examples::

    winclip run --mvtec /data/mvtec --visa /data/visa --mpdd /data/mpdd --out build/results
    winclip run --synthetic demo/data --model WinCLIP-Tiny-240 --pretrained none --shots 0 1 --seeds 0 1
    winclip run --mvtec /data/mvtec --categories bottle mvtec:screw --shots 0 --precision bf16
    winclip summary --out build/results

``--categories`` takes plain names (given to every dataset that has them) or ``dataset:name``; a dataset left with
no category is an error, as is a name no dataset has. Data and weights problems print one message and exit with
status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from winclip_lib.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, WeightsUnavailableError
from winclip_lib.datasets import DEFAULT_SEEDS, DatasetError, list_categories
from winclip_lib.runner import DATASET_LOADERS, EVAL_RESOLUTIONS, RunConfig, load_results, run_grid

EXIT_USAGE = 2
_USER_ERRORS = (WeightsUnavailableError, DatasetError, FileNotFoundError, ValueError)


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="winclip", description="WinCLIP / WinCLIP+ experiment runner")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run or resume a grid (encode once, score many)")
    for name in DATASET_LOADERS:
        r.add_argument(f"--{name}", metavar="ROOT", help=f"{name} dataset root")
    r.add_argument("--categories", nargs="+", metavar="CAT", help="category names or dataset:name (default: all)")
    r.add_argument("--shots", nargs="+", type=int, default=[0, 1, 2, 4], metavar="K")
    r.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), metavar="SEED")
    r.add_argument("--model", default=DEFAULT_MODEL, help=f"open_clip model name (default {DEFAULT_MODEL})")
    r.add_argument("--pretrained", default=DEFAULT_PRETRAINED,
                   help=f"pretrained tag, checkpoint path, or 'none' for random weights (default {DEFAULT_PRETRAINED})")
    r.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    r.add_argument("--scales", nargs="+", type=int, default=[2, 3], metavar="S")
    r.add_argument("--temperature", type=float, default=0.07)
    r.add_argument("--template-set", default="paper")
    r.add_argument("--normalize-each", action="store_true", help="normalise each prompt embedding before averaging")
    r.add_argument("--no-patch-ln-post", action="store_true", help="patch tokens without ln_post")
    r.add_argument("--eval-resolution", default="240", choices=list(EVAL_RESOLUTIONS))
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--cache-dir", default=RunConfig.cache_dir)
    r.add_argument("--out", default=RunConfig.out_dir)
    r.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("summary", help="print the summary of a finished run")
    s.add_argument("--out", default=RunConfig.out_dir)
    s.add_argument("--per-category", action="store_true", help="also print the per-category table")
    return p


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def config_from_args(args: argparse.Namespace) -> RunConfig:
    # absolute paths: run.json is read later from other folders (the notebooks run in notebooks/)
    datasets = {d: _absolute(getattr(args, d)) for d in DATASET_LOADERS if getattr(args, d)}
    if not datasets:
        flags = ", ".join(f"--{d} ROOT" for d in DATASET_LOADERS)
        raise DatasetError(f"no dataset given: pass at least one of {flags}")
    pretrained = None if args.pretrained.lower() in ("none", "random") else args.pretrained
    return RunConfig(
        datasets=datasets, categories=resolve_categories(datasets, args.categories), shots=tuple(args.shots),
        seeds=tuple(args.seeds), model_name=args.model, pretrained=pretrained, precision=args.precision,
        device=args.device, scales=tuple(args.scales), temperature=args.temperature, template_set=args.template_set,
        normalize_each=args.normalize_each, patch_ln_post=not args.no_patch_ln_post,
        eval_resolution=args.eval_resolution, batch_size=args.batch_size, cache_dir=_absolute(args.cache_dir),
        out_dir=_absolute(args.out),
    )


def _print_table(df: pd.DataFrame, percent: Sequence[str]) -> None:
    shown = df.copy()
    for col in percent:
        shown[col] = (100 * shown[col]).round(1)
    print(shown.to_string(index=False))


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    result = run_grid(cfg, progress=not args.no_progress)
    counts = result.info["encode_counts"]
    print(f"backbone: {result.info['backbone']}")
    print(f"images encoded: {counts['encoded']}, cache hits: {counts['hits']}, invalid entries: {counts['invalid']}")
    print(f"results: {result.out_dir}")
    if result.label:
        print(result.label)
    _print_table(result.summary, ["mean", "std"])
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    result = load_results(args.out)
    print(f"{result.info.get('backbone', '')}  (values in %)")
    if result.label:
        print(result.label)
    _print_table(result.summary, ["mean", "std"])
    if args.per_category:
        print()
        _print_table(result.per_category(), ["mean", "std"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run; returns the exit status (0, or 2 for data / weights / usage errors)."""
    args = build_parser().parse_args(argv)
    try:
        return cmd_run(args) if args.command == "run" else cmd_summary(args)
    except _USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"winclip: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
