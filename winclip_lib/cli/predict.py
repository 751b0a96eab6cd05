"""The console command ``winclip``: the experiment commands, plus ``predict``.

``predict`` scores your own images and writes an inspection page, so it needs the report layer, which sits above
the experiments layer (:mod:`winclip_lib.experiments.cli` may not import it). This module is the top layer of the
package (see ``.importlinter``): it adds ``predict`` as a :class:`~winclip_lib.experiments.cli.SubCommand` to the
experiment commands and runs them; nothing below imports it.

::

    winclip predict photos/ --class-name "metal nut"                       # zero-shot WinCLIP
    winclip predict photos/ "more/*.jpg" --class-name "metal nut" --normal good/ --out inspection
    winclip predict photos/ --class-name "metal nut" --threshold 0.6 --model WinCLIP-Tiny-240 --pretrained none

Exit status of ``predict``: 0 when every file was scored, 3 when some were skipped (listed in ``errors.csv`` and on
the page; the rest were scored), 2 for a usage error (nothing matched IMAGES, a bad setting), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from winclip_lib.experiments import cli as experiments_cli
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.predict import DEFAULT_OUT, EXIT_SKIPPED, MIN_IMAGE_SIDE, PREDICT_SETTINGS, THRESHOLD_RULE
from winclip_lib.report.inspection import inspect_images

__all__ = ["PREDICT", "main", "predict_config"]


def _add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGES",
                   help="image files, folders (searched recursively) or glob patterns (quoted, e.g. 'shots/*.jpg')")
    p.add_argument("--class-name", required=True, metavar="NAME",
                   help="the object's name in words, for the prompts (e.g. \"metal nut\")")
    p.add_argument("--normal", nargs="+", action="extend", default=[], metavar="REF",
                   help="normal reference images (files, folders or patterns): WinCLIP+ with k = all of them; "
                        "without: zero-shot WinCLIP")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="output folder: report.html, scores.csv, errors.csv, maps.npz, run.json, overlays/ "
                        "(default: %(default)s)")
    p.add_argument("--threshold", type=float, default=None, metavar="T",
                   help=f"decision threshold on the image score. Default with >= 2 references: {THRESHOLD_RULE} "
                        "With fewer references and no threshold there is no decision (n/a).")
    experiments_cli.add_config_arguments(p.add_argument_group("settings (as in `winclip run`)"),
                                         include=PREDICT_SETTINGS)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def predict_config(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``predict`` arguments: the setting flags given, the defaults otherwise."""
    return RunConfig().replace(**experiments_cli.given_settings(args, include=PREDICT_SETTINGS))


def _run_predict(args: argparse.Namespace) -> int:
    result = inspect_images(predict_config(args), args.class_name, args.images, args.normal, args.out,
                            args.threshold, progress=False if args.no_progress else None)
    if result.exit_status == EXIT_SKIPPED:
        print(f"{len(result.run.skipped)} file(s) skipped (listed in {result.files['errors']}); exit status "
              f"{EXIT_SKIPPED}", file=sys.stderr)
    return result.exit_status


PREDICT = experiments_cli.SubCommand(
    name="predict",
    help="score your own images (zero-shot, or WinCLIP+ with --normal references) and write an inspection page",
    description=(f"Score image files, folders or glob patterns for anomalies of one kind of object. Without --normal"
                 f": zero-shot WinCLIP; with --normal: WinCLIP+ with k = every usable reference. Files that cannot "
                 f"be scored (not an image, unreadable, smaller than {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} px) are "
                 f"skipped and listed; the rest are scored. Exit status: 0 all scored, {EXIT_SKIPPED} some skipped, "
                 "2 usage error."),
    add_arguments=_add_predict_arguments,
    run=_run_predict,
)


def main(argv: Sequence[str] | None = None) -> int:
    """``winclip``: the experiment commands and ``predict``; returns the exit status."""
    return experiments_cli.main(argv, extra=(PREDICT,))


if __name__ == "__main__":
    sys.exit(main())
