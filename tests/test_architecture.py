"""The layers of the package are a contract (.importlinter): imports point down only, and a broken one fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--config", str(root / ".importlinter")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_layers_contract_holds():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The method core importing the experiment machinery (the direction the layers forbid) is caught."""
    for name in ("winclip_lib", "tools", "data_prep"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    scoring = tmp_path / "winclip_lib" / "core" / "scoring.py"
    scoring.write_text(scoring.read_text() + "\nfrom winclip_lib.experiments import grid  # noqa: E402,F401\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout
    assert "winclip_lib.core.scoring -> winclip_lib.experiments.grid" in proc.stdout
