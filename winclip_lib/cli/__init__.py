"""The console command ``winclip`` — the top layer of the package, one module per sub-command:

- :mod:`~winclip_lib.cli.run` — ``winclip run``: run or resume an experiment grid, print its summary;
- :mod:`~winclip_lib.cli.summary` — ``winclip summary``: print the summary of a finished run;
- :mod:`~winclip_lib.cli.synthetic` — ``winclip synthetic``: write the small synthetic dataset;
- :mod:`~winclip_lib.cli.predict` — ``winclip predict``: score your own images, write the inspection page.

:mod:`~winclip_lib.cli.settings` builds the flags from :class:`~winclip_lib.experiments.config.RunConfig`;
:mod:`~winclip_lib.cli.main` is the parser and the exit statuses. ``python -m winclip_lib.cli`` is ``winclip``.
"""

from winclip_lib.cli.main import build_parser, command, main

__all__ = ["build_parser", "command", "main"]
