"""``python -m winclip_lib.demo`` (``make demo``): the whole pipeline on a small synthetic dataset, in minutes.

1. writes the synthetic dataset (:func:`winclip_lib.synthetic.make_synthetic`, MVTec layout) to
   ``build/demo/data`` unless it is already there;
2. picks the weights: the paper's ``ViT-B-16-plus-240`` / ``laion400m_e31`` when they are available, otherwise the
   same architecture with **random weights** — said loudly, and every table and figure is then labelled
   "DEMO — random weights, synthetic data: not a reproduction" (synthetic data alone is labelled as well);
3. executes the five notebooks with papermill (:func:`winclip_lib.notebooks.run_notebooks`) into
   ``build/notebooks``, with the run's results, feature cache, figures and tables under ``build/demo``
   (``build/demo/figures``, never the report's ``figures/``);
4. prints what was written, the encode counts and the wall time.

``--tiny`` uses the tiny test model instead (seconds per notebook; under ``build/demo-tiny``); ``--clean`` deletes
the demo's earlier results, feature cache and figures first (a cold run). A failing notebook makes the command
exit with status 1 and the cell's error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from winclip_lib.notebooks import NOTEBOOK_DIR, run_notebooks
from winclip_lib.report import DEMO_BANNER

__all__ = ["DEMO_CATEGORIES", "DEMO_DATA", "DEMO_SHOTS", "DEMO_SEEDS", "demo_parameters", "choose_weights", "main"]

REPO_ROOT = NOTEBOOK_DIR.parent
#: The synthetic demo set: 2 categories, 6 normal training images, 10 test images (4 normal, 6 anomalous) each.
DEMO_CATEGORIES: tuple[str, ...] = ("tiles", "disc")
DEMO_DATA: dict[str, int] = {"n_train": 6, "n_test_good": 4, "n_test_bad": 6, "size": 256, "seed": 0}
DEMO_SHOTS: tuple[int, ...] = (0, 1, 2, 4)
DEMO_SEEDS: tuple[int, ...] = (0, 1)

_RULE = "=" * 100


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def ensure_data(root: Path) -> bool:
    """Write the synthetic demo dataset to ``root`` unless a synthetic set with the demo's settings is there.
    Returns True when it was (re)written."""
    from winclip_lib.synthetic import make_synthetic, read_manifest

    manifest = read_manifest(root) if root.exists() else None
    if manifest is not None and set(manifest.get("categories", {})) == set(DEMO_CATEGORIES) and all(
        manifest.get(k) == DEMO_DATA[k] for k in ("size", "seed")
    ) and all(c.get("train") == DEMO_DATA["n_train"] for c in manifest["categories"].values()):
        return False
    make_synthetic(root, categories=DEMO_CATEGORIES, **DEMO_DATA)
    return True


def choose_weights(tiny: bool = False, random_weights: bool = False, precision: str = "bf16"
                   ) -> tuple[str, str | None, str]:
    """(model_name, pretrained, precision) for the demo.

    The paper's weights when :func:`~winclip_lib.backbone.load_backbone` can load them; on
    :class:`~winclip_lib.backbone.WeightsUnavailableError` (not cached and offline — raised at once) the same
    architecture with random weights, announced loudly.
    """
    from winclip_lib.backbone import (
        DEFAULT_MODEL,
        DEFAULT_PRETRAINED,
        TINY_MODEL,
        WeightsUnavailableError,
        load_backbone,
    )

    if tiny:
        _say(f"model: {TINY_MODEL} (the tiny test model) with RANDOM weights, fp32")
        return TINY_MODEL, None, "fp32"
    if not random_weights:
        try:
            load_backbone(DEFAULT_MODEL, DEFAULT_PRETRAINED, precision=precision, device="cpu")
            _say(f"model: {DEFAULT_MODEL} / {DEFAULT_PRETRAINED} (the paper's weights), {precision}")
            return DEFAULT_MODEL, DEFAULT_PRETRAINED, precision
        except WeightsUnavailableError as exc:
            reason = str(exc).splitlines()[0]
            _say(f"{_RULE}\n!! The pretrained weights are not available: {reason}")
    _say(f"!! The demo runs {DEFAULT_MODEL} with RANDOM WEIGHTS. Its numbers are NOT a reproduction; every table and"
         f"\n!! figure is labelled '{DEMO_BANNER}'.\n{_RULE}")
    return DEFAULT_MODEL, None, precision


def demo_parameters(base: Path, model_name: str, pretrained: str | None, precision: str) -> dict[str, Any]:
    """The notebooks' parameters for the demo (absolute paths under ``base``)."""
    figures = base / "figures"
    return {
        "datasets": {"synthetic": str(base / "data")},
        "categories": None,
        "shots": list(DEMO_SHOTS),
        "seeds": list(DEMO_SEEDS),
        "model_name": model_name,
        "pretrained": pretrained,
        "precision": precision,
        "device": "auto",
        "cache_dir": str(base / "cache"),
        "results_dir": str(base / "results"),
        "figures_dir": str(figures),
        "tables_dir": str(figures / "tables"),
        "paper_alias": {"synthetic": "mvtec"},
        "dataset": "synthetic",
        "category": DEMO_CATEGORIES[-1],
    }


def _encode_counts(results: Path) -> dict[str, Any] | None:
    try:
        return json.loads((results / "run.json").read_text()).get("encode_counts")
    except (OSError, ValueError):
        return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m winclip_lib.demo", description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="the tiny test model (random weights): a fast smoke run")
    p.add_argument("--random-weights", action="store_true", help="do not look for the pretrained weights")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"],
                   help="weights precision of the ViT-B-16-plus-240 (default bf16)")
    p.add_argument("--clean", action="store_true", help="delete the demo's results, feature cache and figures first")
    p.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build",
                   help="build folder (default: <repo>/build); the demo writes <build>/demo and <build>/notebooks")
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' cell output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0, or 1 when a notebook fails."""
    from papermill.exceptions import PapermillExecutionError

    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    build = args.build_dir.resolve()
    base = build / ("demo-tiny" if args.tiny else "demo")
    if args.clean:
        for sub in ("results", "cache", "figures"):
            shutil.rmtree(base / sub, ignore_errors=True)
    if ensure_data(base / "data"):
        _say(f"wrote the synthetic dataset to {base / 'data'}")
    else:
        _say(f"using the synthetic dataset in {base / 'data'}")
    model_name, pretrained, precision = choose_weights(args.tiny, args.random_weights, args.precision)
    params = demo_parameters(base, model_name, pretrained, precision)
    out = build / "notebooks"
    counts: dict[str, Any] = {}

    def on_start(name: str) -> None:
        if name == "03_winclip_plus":  # notebook 02 ran the grid: its run.json has the encode counts
            counts.update(_encode_counts(base / "results") or {})
        _say(f"[{time.perf_counter() - started:6.0f} s] running notebooks/{name}.ipynb ...")

    try:
        paths = run_notebooks(parameters=params, out_dir=out, log_output=args.log_output, on_start=on_start)
    except PapermillExecutionError as exc:
        _say(f"\nFAILED: a notebook cell raised {exc.ename}: {exc.evalue}\n"
             f"The executed notebook with the traceback is in {out}.")
        return 1
    wall = time.perf_counter() - started

    figures = sorted((base / "figures").glob("*.png"))
    tables = sorted((base / "figures" / "tables").glob("*.md"))
    label = None
    try:
        label = json.loads((base / "results" / "run.json").read_text()).get("label")
    except (OSError, ValueError):
        pass
    _say(f"\n{_RULE}\nDemo finished in {wall:.0f} s ({wall / 60:.1f} min)")
    if label:
        _say(f"Label on every table and figure: {label}")
    _say(f"Executed notebooks ({len(paths)}): {out}")
    for p in paths:
        _say(f"  {p.name}")
    _say(f"Figures ({len(figures)}): {base / 'figures'}")
    for p in figures:
        _say(f"  {p.name}")
    _say(f"Tables ({len(tables)} Markdown, each with a CSV): {base / 'figures' / 'tables'}")
    _say(f"Report tables: {base / 'figures' / 'tables' / 'report.md'}")
    if counts:
        _say("Encode counts of the grid (notebook 02's run): "
             + ", ".join(f"{k}={v}" for k, v in counts.items()))
        if not counts.get("encoded"):
            _say("  (nothing encoded: earlier results and cached features were reused; --clean for a cold run)")
    _say(_RULE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
