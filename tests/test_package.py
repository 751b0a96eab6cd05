"""The package's version is defined once, in pyproject.toml, and read from the installed metadata."""

from __future__ import annotations

import re
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
