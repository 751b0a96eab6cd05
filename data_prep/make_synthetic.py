"""Write the synthetic dataset (MVTec layout) and verify it: ``winclip synthetic`` plus the verify table.

    python -m data_prep.make_synthetic --root build/synthetic
    python -m data_prep.make_synthetic --root /tmp/syn --size 64 --n-train 4 --seed 1 --categories tiles

(``winclip synthetic --root DIR ...`` takes the same flags and works from any folder.)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from data_prep.verify import format_report, verify_root
from winclip_lib.cli import main as winclip_main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verify = "--no-verify" not in argv
    argv = [a for a in argv if a != "--no-verify"]
    t0 = time.perf_counter()
    status = winclip_main(["synthetic", *argv])
    if status != 0 or not verify:
        return status
    root = argv[argv.index("--root") + 1]
    print(f"written in {time.perf_counter() - t0:.2f} s")
    report = verify_root("mvtec", root)
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
