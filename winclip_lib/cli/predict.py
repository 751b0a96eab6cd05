"""``winclip predict``: score your own images (zero-shot, or WinCLIP+ with ``--normal`` references) and write an
inspection page — the command line of :func:`winclip_lib.inspection.inspect_images`.

::

    winclip predict photos/ --class-name "metal nut"                       # zero-shot WinCLIP
    winclip predict photos/ "more/*.jpg" --class-name "metal nut" --normal good/ --out inspection
    winclip predict photos/ --class-name "metal nut" --threshold 0.6 --model WinCLIP-Tiny-240 --pretrained none

Exit status: 0 when every file was scored, 3 when some were skipped (listed in ``errors.csv`` and on the page; the
rest were scored), 2 for a usage error (nothing matched IMAGES, a bad setting), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys

from winclip_lib.cli.settings import add_config_arguments, given_settings
from winclip_lib.experiments.config import RunConfig
from winclip_lib.inspection.inputs import MIN_IMAGE_SIDE
from winclip_lib.inspection.outputs import DEFAULT_OUT
from winclip_lib.inspection.scoring import EXIT_SKIPPED, PREDICT_SETTINGS
from winclip_lib.inspection.threshold import THRESHOLD_RULE

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "predict_config", "run"]

NAME = "predict"
HELP = "score your own images (zero-shot, or WinCLIP+ with --normal references) and write an inspection page"
DESCRIPTION = (f"Score image files, folders or glob patterns for anomalies of one kind of object. Without --normal: "
               f"zero-shot WinCLIP; with --normal: WinCLIP+ with k = every usable reference. Files that cannot be "
               f"scored (not an image, unreadable, smaller than {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} px) are skipped "
               f"and listed; the rest are scored. Exit status: 0 all scored, {EXIT_SKIPPED} some skipped, 2 usage "
               "error.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``winclip predict``: the inputs, the output folder, the threshold and the settings of
    :data:`~winclip_lib.inspection.scoring.PREDICT_SETTINGS` (the same flags, help and defaults as ``run``)."""
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
    add_config_arguments(p.add_argument_group("settings (as in `winclip run`)"), include=PREDICT_SETTINGS)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def predict_config(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``predict`` arguments: the setting flags given, the defaults otherwise."""
    return RunConfig().replace(**given_settings(args, include=PREDICT_SETTINGS))


def run(args: argparse.Namespace) -> int:
    """Score the images and write the outputs and the page; returns 0, or 3 when files were skipped."""
    from winclip_lib.inspection.pipeline import inspect_images  # (the figures' libraries: only for this command)

    result = inspect_images(predict_config(args), args.class_name, args.images, args.normal, args.out,
                            args.threshold, progress=False if args.no_progress else None)
    if result.exit_status == EXIT_SKIPPED:
        print(f"{len(result.run.skipped)} file(s) skipped (listed in {result.files['errors']}); exit status "
              f"{EXIT_SKIPPED}", file=sys.stderr)
    return result.exit_status
