"""Headless execution of the numbered notebooks with papermill, and the few helpers the notebooks share.

``run_notebooks()`` executes ``notebooks/01_cpe.ipynb`` … ``05_report.ipynb`` in order with papermill, each in the
``notebooks/`` folder, with the given parameters injected after its ``parameters`` cell, and writes the executed
copies to ``out_dir``. A failing cell stops the run with papermill's :class:`PapermillExecutionError`, which names
the cell's exception; the partly executed notebook (with the traceback) is in ``out_dir``.

Command line (what ``make reproduce`` uses after the grid)::

    python -m winclip_lib.notebooks --mvtec data/mvtec --visa data/visa --mpdd data/mpdd \\
        --results-dir build/results --figures-dir figures [--out build/notebooks] [-p key=value ...] [names ...]

Relative paths in the parameters are resolved against the current folder before the notebooks run (they run in
``notebooks/``). The command exits with status 1 and the failing cell's error when a notebook fails.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "NOTEBOOKS",
    "NOTEBOOK_DIR",
    "PATH_PARAMETERS",
    "notebook_path",
    "notebook_parameters",
    "absolute_parameters",
    "run_notebooks",
    "backbone_settings",
    "run_config",
    "show_source",
    "main",
]

#: The notebooks, in execution order (02 and 03 run the grid, 04 and 05 only read its results).
NOTEBOOKS: tuple[str, ...] = ("01_cpe", "02_zero_shot_winclip", "03_winclip_plus", "04_heatmaps", "05_report")
#: The repository's notebooks folder (this package is installed editable from the repository).
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
#: Parameters holding a path (``datasets`` holds a dict of them), resolved to absolute paths before execution.
PATH_PARAMETERS: tuple[str, ...] = ("cache_dir", "results_dir", "figures_dir", "tables_dir")


def notebook_path(name: str, notebook_dir: str | Path | None = None) -> Path:
    """The ``.ipynb`` of a notebook name ("01_cpe" or "01_cpe.ipynb")."""
    folder = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    path = folder / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.is_file():
        raise FileNotFoundError(
            f"notebook {path} not found; known notebooks: {', '.join(NOTEBOOKS)} (run from a clone of the repository)"
        )
    return path


def notebook_parameters(name: str, notebook_dir: str | Path | None = None) -> dict[str, Any]:
    """The parameters a notebook declares in its ``parameters`` cell, with their default values as written."""
    import papermill

    params = papermill.inspect_notebook(str(notebook_path(name, notebook_dir)))
    return {key: spec["default"] for key, spec in params.items()}


def absolute_parameters(parameters: Mapping[str, Any], base: str | Path | None = None) -> dict[str, Any]:
    """A copy of ``parameters`` with the path parameters (and the roots in ``datasets``) made absolute against
    ``base`` (default: the current folder), since the notebooks run in ``notebooks/``."""
    root = Path(base) if base is not None else Path.cwd()

    def absolute(p: Any) -> Any:
        return p if p is None else str((root / Path(p).expanduser()).resolve())

    out = dict(parameters)
    for key in PATH_PARAMETERS:
        if key in out:
            out[key] = absolute(out[key])
    if isinstance(out.get("datasets"), Mapping):
        out["datasets"] = {name: absolute(path) for name, path in out["datasets"].items()}
    return out


def _jsonable(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Tuples to lists (papermill writes parameters as Python literals; keep them plain)."""
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
        names: notebook names (default: all of :data:`NOTEBOOKS`, in order).
        parameters: values for the notebooks' ``parameters`` cells. Each notebook gets the ones it declares; a
            name no notebook declares is an error (a typo would otherwise be ignored silently). Path parameters
            are made absolute first (:func:`absolute_parameters`).
        out_dir: where the executed notebooks go (same file names).
        kernel_name: Jupyter kernel (default: the notebook's own, ``python3``).
        log_output: stream the cells' output to the log while running.
        notebook_dir: folder of the notebooks (default: the repository's ``notebooks/``).
        on_start: called with each notebook's name before it runs (progress messages).

    Raises:
        papermill.PapermillExecutionError: a cell failed; its message names the cell and the exception, and the
            executed notebook in ``out_dir`` holds the traceback.
        ValueError: a parameter no selected notebook declares. FileNotFoundError: an unknown notebook name.
    """
    import papermill

    names = list(names) if names is not None else list(NOTEBOOKS)
    folder = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    params = _jsonable(absolute_parameters(parameters or {}))
    declared = {name: notebook_parameters(name, folder) for name in names}
    unknown = sorted(set(params) - set().union(*declared.values())) if declared else sorted(params)
    if unknown:
        known = sorted(set().union(*declared.values())) if declared else []
        raise ValueError(f"unknown notebook parameter(s) {unknown}; the notebooks declare: {', '.join(known)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
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
        )
        written.append(dst)
    return written


# ------------------------------------------------------------------------------------------ notebook helpers


def backbone_settings(model_name: str | None = None, pretrained: str | None = "default", precision: str = "fp32",
                      tiny: bool = False) -> dict[str, Any]:
    """``model_name``, ``pretrained`` and ``precision`` for :func:`~winclip_lib.backbone.load_backbone` from the
    notebooks' parameters: ``tiny=True`` swaps in :data:`~winclip_lib.backbone.TINY_MODEL` with random fp32 weights
    (tests and ``python -m winclip_lib.demo --tiny``); ``model_name=None`` and ``pretrained="default"`` mean the
    paper's backbone (``ViT-B-16-plus-240`` / ``laion400m_e31``); ``pretrained=None`` means random weights."""
    from winclip_lib.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, TINY_MODEL

    if tiny:
        return {"model_name": TINY_MODEL, "pretrained": None, "precision": "fp32"}
    return {"model_name": model_name or DEFAULT_MODEL,
            "pretrained": DEFAULT_PRETRAINED if pretrained == "default" else pretrained,
            "precision": precision}


def run_config(
    datasets: Mapping[str, str],
    categories: Mapping[str, Sequence[str] | None] | None = None,
    shots: Sequence[int] = (0, 1, 2, 4),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    model_name: str | None = None,
    pretrained: str | None = "default",
    precision: str = "fp32",
    device: str = "auto",
    cache_dir: str = "../.cache/winclip/features",
    results_dir: str = "../build/results",
    batch_size: int = 8,
    tiny: bool = False,
):
    """The notebooks' :class:`~winclip_lib.runner.RunConfig` from their parameters (the backbone as in
    :func:`backbone_settings`; ``results_dir`` is the runner's ``out_dir``)."""
    from winclip_lib.runner import RunConfig

    return RunConfig(
        datasets=dict(datasets),
        categories={k: (None if v is None else list(v)) for k, v in (categories or {}).items()},
        shots=tuple(shots),
        seeds=tuple(seeds),
        device=device,
        cache_dir=cache_dir,
        out_dir=results_dir,
        batch_size=batch_size,
        **backbone_settings(model_name, pretrained, precision, tiny),
    )


def show_source(obj: Any, highlight: str | None = None):
    """The source of a library function as Markdown (for a notebook cell), lines containing ``highlight``
    marked with ``# <--``. The notebooks show the code that implements an equation this way instead of copying it.
    """
    from IPython.display import Markdown

    lines, start = inspect.getsourcelines(obj)
    module = inspect.getmodule(obj)
    where = f"{module.__name__ if module else '?'}:{start}"
    body = []
    for line in lines:
        text = line.rstrip("\n")
        if highlight and highlight in text:
            text += "  # <--"
        body.append(text)
    return Markdown(f"`{where}`\n\n```python\n" + "\n".join(body) + "\n```")


# ------------------------------------------------------------------------------------------------- command line


def _parse_value(text: str) -> Any:
    """A ``-p key=value`` value: JSON (numbers, lists, dicts, null, true/false), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m winclip_lib.notebooks",
                                description="Execute the WinCLIP notebooks headlessly with papermill.")
    p.add_argument("names", nargs="*", help=f"notebooks to run (default: all of {', '.join(NOTEBOOKS)})")
    for name in ("mvtec", "visa", "mpdd", "synthetic"):
        p.add_argument(f"--{name}", metavar="ROOT", help=f"{name} dataset root")
    p.add_argument("--results-dir", help="the runner's results folder")
    p.add_argument("--figures-dir", help="where figures go (the report: figures/)")
    p.add_argument("--tables-dir", help="where tables go (default: <figures-dir>/tables)")
    p.add_argument("--cache-dir", help="feature cache folder")
    p.add_argument("--model", dest="model_name", help="open_clip model name")
    p.add_argument("--pretrained", help="pretrained tag, checkpoint path, or 'none' for random weights")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--device")
    p.add_argument("--shots", nargs="+", type=int)
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other notebook parameter; VALUE is JSON or a plain string")
    p.add_argument("--out", default="build/notebooks", help="folder for the executed notebooks")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebooks' own)")
    p.add_argument("--log-output", action="store_true", help="stream cell output")
    return p


def parameters_from_args(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    datasets = {d: getattr(args, d) for d in ("mvtec", "visa", "mpdd", "synthetic") if getattr(args, d)}
    if datasets:
        params["datasets"] = datasets
    for key in ("results_dir", "figures_dir", "tables_dir", "cache_dir", "model_name", "precision", "device",
                "shots", "seeds"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    if args.figures_dir is not None and args.tables_dir is None:
        params["tables_dir"] = str(Path(args.figures_dir) / "tables")
    if args.pretrained is not None:
        params["pretrained"] = None if args.pretrained.lower() in ("none", "random") else args.pretrained
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
                              log_output=args.log_output, on_start=lambda n: print(f"running {n} ...", flush=True))
    except PapermillExecutionError as exc:
        print(f"error: notebook failed: {exc.ename}: {exc.evalue}\n(cell {exc.exec_count}; the executed notebook "
              f"with the traceback is in {os.path.abspath(args.out)})", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"executed {p}")
    print(f"{len(paths)} notebook(s) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
