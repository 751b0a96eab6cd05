"""``python -m winclip_lib.cli``: the ``winclip`` command."""

import sys

from winclip_lib.cli.main import command

sys.exit(command())
