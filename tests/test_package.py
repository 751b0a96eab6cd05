"""The package's version is defined once, in pyproject.toml, and read from the installed metadata; loading the
package pauses the garbage collector."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import tomllib

import winclip_lib

REPO = Path(__file__).resolve().parents[1]


def test_one_version_from_pyproject():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert winclip_lib.__version__ == version("winclip_lib") == declared
    literal = re.compile(r"""__version__\s*=\s*["']""")
    assert not [p for p in (REPO / "winclip_lib").rglob("*.py") if literal.search(p.read_text(encoding="utf-8"))]


_IMPORT = r"""
import gc, json, sys
if sys.argv[1] == "off":
    gc.disable()
if sys.argv[1] == "frozen":
    gc.freeze()
frozen = gc.get_freeze_count()
before = [g["collections"] for g in gc.get_stats()]
import winclip_lib
after = [g["collections"] for g in gc.get_stats()]
print(json.dumps({"passes": [a - b for a, b in zip(after, before)], "on": gc.isenabled(),
                  "frozen": [frozen, gc.get_freeze_count()],
                  "generations": [len(gc.get_objects(generation=g)) for g in range(3)]}))
"""


def _import_in_new_interpreter(collector: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _IMPORT, collector], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_collector_is_paused_while_the_package_loads_and_left_as_it_was():
    """Loading torch, open_clip and the package makes hundreds of thousands of objects, nearly all kept: the collector
    makes no pass over the older generations while they load (without the pause it made ~90 and ~6), and what the
    load made is in the oldest generation, as if it had passed through the younger ones; the collector is on again
    afterwards — or still off, when the user had turned it off; objects the user had frozen stay frozen."""
    on = _import_in_new_interpreter("on")
    young, old = sum(on["generations"][:2]), on["generations"][2]
    assert old > 100_000 and young < 1_000  # what the load made waits for a full pass, not for every young one
    assert on["passes"][1:] == [0, 0] and on["passes"][0] <= 2 and on["on"] is True
    off = _import_in_new_interpreter("off")
    assert off["passes"] == [0, 0, 0] and off["on"] is False
    frozen = _import_in_new_interpreter("frozen")
    assert frozen["frozen"][0] > 1_000 and frozen["frozen"][1] > 0.9 * frozen["frozen"][0] and frozen["on"] is True
