"""The package's version is defined once, in pyproject.toml, and read from the installed metadata; what importing the
package sets for the process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import tomllib

import winclip_lib

REPO = Path(__file__).resolve().parents[1]


def test_one_version_from_pyproject():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert winclip_lib.__version__ == version("winclip_lib") == declared
    literal = re.compile(r"""__version__\s*=\s*["']""")
    assert not [p for p in (REPO / "winclip_lib").rglob("*.py") if literal.search(p.read_text(encoding="utf-8"))]


_PIL_PROBE = ("import json, os\n"
              "{before}\n"
              "import winclip_lib\n"
              "from PIL import Image\n"
              "print(json.dumps([os.environ.get('PILLOW_BLOCKS_MAX'), Image.core.get_blocks_max()]))\n")


@pytest.mark.parametrize("case", ["default", "user's choice", "PIL first"])
def test_pils_memory_pool_is_turned_on_unless_the_user_chose_or_pil_came_first(case):
    """Importing winclip_lib before PIL keeps freed image memory for reuse (PILLOW_BLOCKS_MAX: 4 blocks per decoder
    thread); a value the user set, or a PIL imported before, is left as it is."""
    env = {k: v for k, v in os.environ.items() if k != "PILLOW_BLOCKS_MAX"}
    env["PYTHONPATH"] = str(REPO)
    before = "from PIL import Image" if case == "PIL first" else ""
    if case == "user's choice":
        env["PILLOW_BLOCKS_MAX"] = "3"
    out = subprocess.run([sys.executable, "-c", _PIL_PROBE.format(before=before)], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    variable, blocks = json.loads(out.stdout.strip().splitlines()[-1])
    expected = {"default": 4 * min(32, len(os.sched_getaffinity(0))), "user's choice": 3, "PIL first": 0}[case]
    assert blocks == expected
    assert variable == (None if case == "PIL first" else str(expected))
