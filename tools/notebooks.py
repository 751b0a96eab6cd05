"""Execute the numbered notebooks headlessly with papermill (a repository tool: it needs the checkout's notebooks/).

``run_notebooks()`` executes ``notebooks/NN_*.ipynb`` in order, each in ``notebooks/``, with the given parameters
injected after its ``parameters`` cell, and writes the executed copies to ``out_dir``. Each notebook gets the
parameters it declares; a name no selected notebook declares is an error (a typo would otherwise be ignored). Path
parameters are made absolute first, and so is ``pretrained`` when it names a checkpoint file. The kernels run with
``WINCLIP_PROGRESS=0`` (no progress widgets are frozen into the executed notebooks) and know that they run as
notebooks (``WINCLIP_ENTRY_POINT``: messages name the notebooks' ``pretrained`` parameter, or ``make``'s variable
under ``make reproduce``). A failing cell stops the run with papermill's ``PapermillExecutionError``; the partly
executed notebook (with the traceback) is in ``out_dir``. Before the first notebook starts, every output folder is
checked (:data:`OUTPUT_PARAMETERS` as given, or as the notebooks declare them, and ``out_dir``): each must be a
folder or one that can be made, and writable (:func:`~winclip_lib.experiments.files.check_output_dir`) — a file in
the way, a read-only or full disk is one line, not a failed cell an hour later.

Command line (what ``make reproduce`` uses after the grid)::

    python -m tools.notebooks --mvtec data/mvtec --visa data/visa --mpdd data/mpdd [--btad data/btad ...] \\
        --results-dir build/results --figures-dir figures [--out build/notebooks] [-p key=value ...] [names ...]

The roots of the paper's benchmarks (``--mvtec``, ``--visa``, ``--mpdd``, ``--synthetic``) become the ``datasets``
parameter, those of the later benchmarks and of your own folders (``--btad`` ... ``--realiad``, ``--folder``, the
flags of ``winclip run``) the ``more_datasets`` parameter of notebook 08. When any root is given, both are set (a
group with none given is empty), so no notebook falls back on its default roots; an empty one is left out for
notebooks that do not take it.

Exit status 1 with the failing cell's error when a notebook fails, 2 on a usage error or an output folder that
cannot be written.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from winclip_lib.core.checkpoints import ENTRY_POINT_ENV, is_checkpoint_path
from winclip_lib.datasets.catalog import DATASET_LOADERS
from winclip_lib.experiments.files import check_output_dirs, describe_error

__all__ = [
    "DATASET_PARAMETERS",
    "MORE_DATASETS",
    "NOTEBOOK_DIR",
    "OUTPUT_PARAMETERS",
    "PAPER_DATASETS",
    "PATH_PARAMETERS",
    "absolute_parameters",
    "main",
    "notebook_names",
    "notebook_parameters",
    "notebook_path",
    "output_folders",
    "run_notebooks",
]

#: The repository's notebooks folder.
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
#: Parameters holding a path or a list of paths (``datasets`` holds a dict of them), made absolute before execution.
PATH_PARAMETERS: tuple[str, ...] = ("cache_dir", "results_dir", "figures_dir", "tables_dir", "out_dir", "images",
                                    "normal", "bench_json")
#: The datasets of the paper's notebooks (the ``datasets`` parameter) and the later benchmarks and your own folders
#: (notebook 08's ``more_datasets``), by their ``winclip run`` flag.
PAPER_DATASETS: tuple[str, ...] = ("mvtec", "visa", "mpdd", "synthetic")
MORE_DATASETS: tuple[str, ...] = tuple(d for d in DATASET_LOADERS if d not in PAPER_DATASETS)
#: Parameters holding {dataset: root}, each root made absolute before execution.
DATASET_PARAMETERS: dict[str, tuple[str, ...]] = {"datasets": PAPER_DATASETS, "more_datasets": MORE_DATASETS}

#: Parameters naming a folder the notebooks write into (checked before any notebook runs).
OUTPUT_PARAMETERS: tuple[str, ...] = ("results_dir", "figures_dir", "tables_dir", "cache_dir", "out_dir")


def notebook_names(notebook_dir: str | Path | None = None) -> list[str]:
    """The numbered notebooks (``NN_name``), in execution order."""
    folder = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    return sorted(p.stem for p in folder.glob("[0-9][0-9]_*.ipynb"))


def notebook_path(name: str, notebook_dir: str | Path | None = None) -> Path:
    """The ``.ipynb`` of a notebook name ("01_cpe" or "01_cpe.ipynb")."""
    folder = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    path = folder / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.is_file():
        raise FileNotFoundError(f"notebook {path} not found; known notebooks: {', '.join(notebook_names(folder))}")
    return path


def notebook_parameters(name: str, notebook_dir: str | Path | None = None) -> dict[str, Any]:
    """The parameters a notebook declares in its ``parameters`` cell, with their default values as written."""
    import papermill

    params = papermill.inspect_notebook(str(notebook_path(name, notebook_dir)))
    return {key: spec["default"] for key, spec in params.items()}


def absolute_parameters(parameters: Mapping[str, Any], base: str | Path | None = None) -> dict[str, Any]:
    """A copy of ``parameters`` with the path parameters (and the roots in ``datasets``) made absolute against
    ``base`` (default: the current folder), since the notebooks run in ``notebooks/``. Glob patterns keep their
    wildcards."""
    root = Path(base) if base is not None else Path.cwd()

    def absolute(p: Any) -> Any:
        if p is None:
            return None
        if isinstance(p, list | tuple):
            return [absolute(x) for x in p]
        return os.path.normpath(os.path.join(root, os.path.expanduser(str(p))))

    out = dict(parameters)
    for key in PATH_PARAMETERS:
        if key in out:
            out[key] = absolute(out[key])
    if isinstance(out.get("pretrained"), str) and is_checkpoint_path(out["pretrained"]):
        out["pretrained"] = absolute(out["pretrained"])
    for key in DATASET_PARAMETERS:
        if isinstance(out.get(key), Mapping):
            out[key] = {name: absolute(path) for name, path in out[key].items()}
    return out


def output_folders(parameters: Mapping[str, Any], declared: Mapping[str, Mapping[str, Any]],
                   notebook_dir: str | Path) -> dict[str, str]:
    """The folders the notebooks will write into, ``{"name (notebook)": absolute path}``: each of
    :data:`OUTPUT_PARAMETERS` as given in ``parameters`` (already absolute), else each notebook's declared default
    (a string, relative to ``notebook_dir``, where the notebooks run); None (a setting's default) is left out."""
    folders: dict[str, str] = {}
    for key in OUTPUT_PARAMETERS:
        if key in parameters:
            if parameters[key] is not None:
                folders[key] = str(parameters[key])
            continue
        for name, params in declared.items():
            try:
                default = ast.literal_eval(str(params.get(key)))
            except (ValueError, SyntaxError):
                continue
            if isinstance(default, str) and default not in ("", "none"):
                path = os.path.normpath(os.path.join(notebook_dir, os.path.expanduser(default)))
                if path not in folders.values():
                    folders[f"{key} ({name})"] = path
    return folders


def _jsonable(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Tuples to lists, paths to strings (papermill writes parameters as Python literals; keep them plain)."""
    def conv(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return {k: conv(v) for k, v in parameters.items()}


def run_notebooks(
    names: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    out_dir: str | Path = "build/notebooks",
    kernel_name: str | None = None,
    log_output: bool = False,
    *,
    notebook_dir: str | Path | None = None,
    on_start: Callable[[str], None] | None = None,
) -> list[Path]:
    """Execute notebooks in order with papermill and return the paths of the executed copies.

    Args:
        names: notebook names (default: every numbered notebook, in order).
        parameters: values for the notebooks' ``parameters`` cells (see the module docstring).
        out_dir: where the executed notebooks go (same file names).
        kernel_name: Jupyter kernel (default: the notebook's own, ``python3``).
        log_output: stream the cells' output to the log while running.
        notebook_dir: folder of the notebooks (default: the repository's ``notebooks/``).
        on_start: called with each notebook's name before it runs (progress messages).

    Raises:
        papermill.PapermillExecutionError: a cell failed.
        ValueError: a parameter no selected notebook declares. FileNotFoundError: an unknown notebook name.
        WriteError: an output folder that cannot be written (before any notebook runs).
    """
    import papermill

    folder = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    names = list(names) if names is not None else notebook_names(folder)
    params = _jsonable(absolute_parameters(parameters or {}))
    declared = {name: notebook_parameters(name, folder) for name in names}
    known = set().union(*declared.values()) if declared else set()
    params = {k: v for k, v in params.items() if k in known or not (k in DATASET_PARAMETERS and v == {})}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}; the notebooks declare: {', '.join(sorted(known))}")
    check_output_dirs({**output_folders(params, declared, folder), "the executed notebooks' folder": out_dir})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    previous = os.environ.get("WINCLIP_PROGRESS")
    previous_entry = os.environ.get(ENTRY_POINT_ENV)
    os.environ["WINCLIP_PROGRESS"] = "0"  # the kernels inherit it: no progress widgets in executed notebooks
    os.environ.setdefault(ENTRY_POINT_ENV, "notebook")  # unless make reproduce named itself
    try:
        for name in names:
            src = notebook_path(name, folder)
            dst = (out / src.name).resolve()
            if on_start is not None:
                on_start(name)
            papermill.execute_notebook(
                str(src), str(dst),
                parameters={k: v for k, v in params.items() if k in declared[name]},
                cwd=str(folder),
                kernel_name=kernel_name,
                log_output=log_output,
                progress_bar=False,
                # The kernel application's own log stays quiet: a warning about its local TCP sockets on every
                # start, at times a "KeyboardInterrupt caught" line as it shuts down after the last cell. A failing
                # cell still stops the run with its traceback (papermill reads it from the notebook, not this log).
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
            written.append(dst)
    finally:
        for name, value in (("WINCLIP_PROGRESS", previous), (ENTRY_POINT_ENV, previous_entry)):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return written


# ------------------------------------------------------------------------------------------------- command line


def _parse_value(text: str) -> Any:
    """A ``-p key=value`` value: JSON (numbers, lists, dicts, null, true/false), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.notebooks",
                                description="Execute the WinCLIP notebooks headlessly with papermill.")
    p.add_argument("names", nargs="*", help="notebooks to run (default: every numbered notebook)")
    for name in (*PAPER_DATASETS, *MORE_DATASETS):
        p.add_argument(f"--{name}", metavar="ROOT",
                       help=f"{name} dataset root ({'datasets' if name in PAPER_DATASETS else 'more_datasets'})")
    p.add_argument("--results-dir", help="the results folder (finished runs are read, missing ones computed there)")
    p.add_argument("--figures-dir", help="where figures go (the report: figures/)")
    p.add_argument("--tables-dir", help="where tables go (default: <figures-dir>/tables)")
    p.add_argument("--preset", help="a named preset of settings")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any notebook parameter, e.g. -p precision=bf16 -p 'shots=[0, 1]'; VALUE is JSON or a string")
    p.add_argument("--out", default="build/notebooks", help="folder for the executed notebooks")
    p.add_argument("--notebook-dir", type=Path, default=None, help="the notebooks' folder (default: notebooks/)")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebooks' own)")
    p.add_argument("--log-output", action="store_true", help="stream cell output")
    return p


def parameters_from_args(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    groups = {key: {d: getattr(args, d) for d in names if getattr(args, d)}
              for key, names in DATASET_PARAMETERS.items()}
    if any(groups.values()):
        params.update(groups)
    for key in ("results_dir", "figures_dir", "tables_dir", "preset"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    if args.figures_dir is not None and args.tables_dir is None:
        params["tables_dir"] = str(Path(args.figures_dir) / "tables")
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"-p expects KEY=VALUE, got {item!r}")
        params[key.strip()] = _parse_value(value)
    return params


def main(argv: Sequence[str] | None = None) -> int:
    """Run the notebooks from the command line; 0 on success, 1 when a notebook fails, 2 on a usage error."""
    from papermill.exceptions import PapermillExecutionError

    args = build_parser().parse_args(argv)
    try:
        params = parameters_from_args(args)
        started = time.perf_counter()
        paths = run_notebooks(args.names or None, params, args.out, kernel_name=args.kernel,
                              log_output=args.log_output, notebook_dir=args.notebook_dir,
                              on_start=lambda n: print(f"running {n} ...", flush=True))
    except PapermillExecutionError as exc:
        print(f"error: notebook failed: {exc.ename}: {exc.evalue}\n(cell {exc.exec_count}; the executed notebook "
              f"with the traceback is in {os.path.abspath(args.out)})", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"executed {p}")
    print(f"{len(paths)} notebook(s) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
