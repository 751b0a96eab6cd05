"""The documents that describe the structure stay true: every module docs/ARCHITECTURE.md names exists and every
module of the package is named there; every file and folder of the README's project layout exists, and every module
of the package is in it."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "winclip_lib"


def package_modules() -> set[str]:
    """Dotted names of the package's modules (``__init__`` and ``__main__`` left out)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        if path.stem in ("__init__", "__main__"):
            continue
        names.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    return names


def is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:  # a parent is a module, not a package
        return False


def resolves(dotted: str) -> bool:
    """True when ``dotted`` is a module, or an attribute (a class, function, constant) of one."""
    if is_module(dotted):  # not imported: __main__ would run
        return True
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        if not is_module(name):
            continue
        obj = importlib.import_module(name)
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_architecture_names_every_module_and_only_real_ones():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    dotted = set(re.findall(r"winclip_lib(?:\.\w+)+", text))
    assert [name for name in sorted(dotted) if not resolves(name)] == []
    assert sorted(package_modules() - dotted) == [], "name these modules in docs/ARCHITECTURE.md"
    paths = set(re.findall(r"`((?:winclip_lib|tests|docs|benchmarks|tools|data_prep)/[\w./-]+)`", text))
    assert paths and [p for p in sorted(paths) if not (REPO / p).exists()] == []
    layers = re.findall(r"^    (\S.*)$", (REPO / ".importlinter").read_text(), flags=re.M)
    for layer in layers:  # every layer of the contract is a row of the table, top to bottom
        assert all(f"`{name.strip()}`" in text for name in layer.split("|")), layer


def layout_entries() -> list[Path]:
    """The files and folders of the README's project layout: each line's names (before the description, separated by
    ", ") under the folder of the line above it with less indentation."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Project layout", 1)[1].split("```", 2)[1]
    entries, stack = [], []  # stack: (indent, folder)
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else REPO
        for name in (n.strip() for n in names.split(", ")):
            entries.append(parent / name.rstrip("/"))
        if names.endswith("/") and "," not in names:
            stack.append((indent, parent / names.rstrip("/")))
    return entries


def test_the_readme_layout_matches_the_tree():
    entries = layout_entries()
    assert len(entries) > 60
    assert [str(p.relative_to(REPO)) for p in entries if not p.exists()] == []
    listed = {".".join(p.relative_to(REPO).with_suffix("").parts) for p in entries if p.suffix == ".py"}
    assert sorted(package_modules() - listed) == [], "add these modules to the README's project layout"
    folders = {p for p in entries if p.is_dir()}
    packages = {p.parent for p in PACKAGE.rglob("__init__.py")}
    assert sorted(str(p.relative_to(REPO)) for p in packages - folders) == []
