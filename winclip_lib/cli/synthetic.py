"""``winclip synthetic``: write the small synthetic dataset (MVTec layout) that the demo and the tests use."""

from __future__ import annotations

import argparse
from pathlib import Path

from winclip_lib.datasets.synthetic import SYNTHETIC_CATEGORIES, make_synthetic

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "synthetic"
HELP = "write the small synthetic dataset (MVTec layout) used by the demo and tests"
DESCRIPTION = HELP


def add_arguments(y: argparse.ArgumentParser) -> None:
    """The flags of ``winclip synthetic``."""
    y.add_argument("--root", required=True, type=Path, help="output folder (new, empty, or an earlier synthetic set)")
    y.add_argument("--categories", nargs="+", default=list(SYNTHETIC_CATEGORIES), choices=sorted(SYNTHETIC_CATEGORIES),
                   help="(default: %(default)s)")
    y.add_argument("--n-train", type=int, default=8, help="normal training images per category (default: %(default)s)")
    y.add_argument("--n-test-good", type=int, default=4, help="normal test images per category (default: %(default)s)")
    y.add_argument("--n-test-bad", type=int, default=6,
                   help="anomalous test images per category (default: %(default)s)")
    y.add_argument("--size", type=int, default=256, help="image side in pixels, >= 32 (default: %(default)s)")
    y.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Write the synthetic set and say how to run it; returns 0."""
    root = make_synthetic(args.root, args.categories, args.n_train, args.n_test_good, args.n_test_bad, args.size,
                          args.seed)
    print(f"wrote a synthetic dataset to {root.resolve()}: categories {', '.join(args.categories)}; per category "
          f"{args.n_train} training, {args.n_test_good} normal and {args.n_test_bad} anomalous test images of "
          f"{args.size} x {args.size}")
    print(f"run it with: winclip run --synthetic {root.resolve()} --pretrained none")
    return 0
