"""The parser of ``winclip`` and its dispatch: one sub-command per module of this package, run with one error
policy.

Exit status: 0 on success; 2 for a usage, data, device or weights problem, or a folder that cannot be written (a
full disk, a read-only file system: one line naming the path and the cause; ``--debug`` shows the traceback); 130
after Ctrl-C (a run is recorded as interrupted and resumes when the same command is run again); a
sub-command may return others (``predict``: 3 when files were skipped).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence

from winclip_lib.cli import predict, run, summary, synthetic
from winclip_lib.core.backbone import WeightsUnavailableError
from winclip_lib.core.checkpoints import as_entry_point
from winclip_lib.core.imageio import ImageError
from winclip_lib.core.openclip_adapter import UnsupportedOpenCLIPError
from winclip_lib.datasets.catalog import DatasetError
from winclip_lib.experiments.files import describe_error

__all__ = ["COMMANDS", "EXIT_INTERRUPTED", "EXIT_USAGE", "USER_ERRORS", "build_parser", "command", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: Errors shown as one line (exit 2): bad values and data, missing weights, and every ``OSError`` (a file in the way,
#: no permission, no space left: :func:`~winclip_lib.experiments.files.describe_error` names the path and the cause).
USER_ERRORS = (WeightsUnavailableError, UnsupportedOpenCLIPError, DatasetError, ImageError, ValueError, OSError)

#: The sub-commands, in the order of ``winclip --help``: each module has NAME, HELP, DESCRIPTION, add_arguments(parser)
#: and run(args) -> exit status.
COMMANDS = (run, summary, synthetic, predict)


class _Messages(logging.Handler):
    """While a command runs, the package's log messages (warnings about the data, a replaced cache entry) go to
    stderr as ``winclip: warning: ...``, whatever else configured logging."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"winclip: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command."""
    p = argparse.ArgumentParser(prog="winclip", description="WinCLIP / WinCLIP+ (Jeong et al., CVPR 2023)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION))
    return p


@as_entry_point("cli")  # messages name the command's flags (e.g. --pretrained)
def main(argv: Sequence[str] | None = None) -> int:
    """``winclip``: parse ``argv`` and run the sub-command; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    commands = {command.NAME: command.run for command in COMMANDS}
    package_log, handler = logging.getLogger("winclip_lib"), _Messages(logging.WARNING)
    package_log.addHandler(handler)
    propagate, package_log.propagate = package_log.propagate, False
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
        print(f"winclip: error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        package_log.removeHandler(handler)
        package_log.propagate = propagate


def command() -> int:
    """The ``winclip`` process (the console script and ``python -m winclip_lib.cli``): :func:`main` on ``sys.argv``,
    after moving every object made so far — the ~700,000 of the loaded modules, which live as long as the process —
    out of the garbage collector's sight (:func:`gc.freeze`), so that its full passes during a run (0.1 to 0.2 s each
    on the 2-core EPYC, holding the GIL the decoder threads need) walk only what the run made."""
    gc.freeze()
    return main()
