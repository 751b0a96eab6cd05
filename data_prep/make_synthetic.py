"""Write the synthetic dataset (MVTec layout) and verify it.

python -m data_prep.make_synthetic --root build/synthetic
python -m data_prep.make_synthetic --root /tmp/syn --size 64 --n-train 4 --seed 1 --categories tiles
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from data_prep.verify import format_report, verify_root
from winclip_lib.synthetic import SYNTHETIC_CATEGORIES, make_synthetic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep.make_synthetic", description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, type=Path, help="output folder (new, empty, or an earlier synthetic set)")
    p.add_argument("--categories", nargs="+", default=["tiles", "disc"], choices=sorted(SYNTHETIC_CATEGORIES))
    p.add_argument("--n-train", type=int, default=8, help="normal training images per category")
    p.add_argument("--n-test-good", type=int, default=4, help="normal test images per category")
    p.add_argument("--n-test-bad", type=int, default=6, help="anomalous test images per category")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (>= 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-verify", action="store_true", help="skip the verify table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        root = make_synthetic(
            args.root, args.categories, args.n_train, args.n_test_good, args.n_test_bad, args.size, args.seed
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote synthetic dataset to {root} in {time.perf_counter() - t0:.2f} s")
    if args.no_verify:
        return 0
    report = verify_root("mvtec", root)
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
