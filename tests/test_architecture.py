"""The structure is a contract: the layers of .importlinter (imports point down only, and a broken one fails), and no
private name crosses a module boundary (ruff's PLC2701 does not see imports within one package; this test does)."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
#: The code whose imports are checked: the package, the repository tools, the benchmarks, the notebooks' sources.
CHECKED = ("winclip_lib", "tools", "data_prep", "benchmarks", "notebooks")
FIRST_PARTY = ("winclip_lib", "tools", "data_prep", "benchmarks")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--config", str(root / ".importlinter")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_layers_contract_holds():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The method core importing the experiment machinery, and the report importing the inspection package (the
    directions the layers forbid), are caught."""
    for name in FIRST_PARTY:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    for module, upward in (("core/scoring.py", "winclip_lib.experiments import grid"),
                           ("report/tables.py", "winclip_lib.inspection import page")):
        path = tmp_path / "winclip_lib" / module
        path.write_text(path.read_text() + f"\nfrom {upward}  # noqa: E402,F401\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout
    assert "winclip_lib.core.scoring -> winclip_lib.experiments.grid" in proc.stdout
    assert "winclip_lib.report.tables -> winclip_lib.inspection.page" in proc.stdout


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def private_imports(path: Path) -> list[str]:
    """Where ``path`` uses a private name of another first-party module: ``from m import _x``, an import of a
    private module, or ``m._x`` on an imported module ``m``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FIRST_PARTY:
            for alias in node.names:
                if _private(alias.name) or any(_private(part) for part in node.module.split(".")):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: from {node.module} import {alias.name}")
                elif _is_module(f"{node.module}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FIRST_PARTY:
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{path.relative_to(REPO)}:{node.lineno}: import {alias.name}")
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and _private(node.attr)):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {modules[node.value.id]}.{node.attr}")
    return found


def test_no_private_name_is_used_across_modules():
    files = [p for folder in CHECKED for p in sorted((REPO / folder).rglob("*.py"))]
    assert len(files) > 60
    found = [hit for path in files for hit in private_imports(path)]
    assert found == [], "make these names public, or move them where they are used:\n" + "\n".join(found)


def test_the_private_name_check_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text("from winclip_lib.experiments.grid import run_grid, _secret\n"
                   "from winclip_lib.core import vit_blocks\n"
                   "import winclip_lib.core.encoder as enc\n"
                   "x = vit_blocks._hidden(1) + enc._other + vit_blocks.linear\n")
    assert sorted(private_imports(bad)) == ["bad.py:1: from winclip_lib.experiments.grid import _secret",
                                            "bad.py:4: winclip_lib.core.encoder._other",
                                            "bad.py:4: winclip_lib.core.vit_blocks._hidden"]
