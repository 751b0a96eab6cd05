"""``python -m tools.demo`` (``make demo``): the whole pipeline on small synthetic data, in minutes.

1. writes the synthetic dataset (:func:`winclip_lib.datasets.synthetic.make_synthetic`, MVTec layout) to
   ``build/demo/data`` unless it is already there, small stand-ins of later benchmarks for notebook 08
   (:func:`winclip_lib.datasets.standins.make_standins`, :data:`DEMO_MORE`, in ``build/demo/more``), and a folder
   of loose photos for notebook 07 (:func:`~winclip_lib.datasets.synthetic.make_loose_images`, not in any dataset
   layout);
2. picks the weights: the paper's ``ViT-B-16-plus-240`` / ``laion400m_e31`` when they are available, otherwise the
   same architecture with **random weights** — said loudly, and every table, figure, CSV and page is then labelled
   "DEMO — random weights, synthetic data: not a reproduction" (synthetic data alone is labelled as well);
3. executes the numbered notebooks with papermill (:func:`tools.notebooks.run_notebooks`) into ``build/notebooks``,
   in two streams side by side (:data:`DEMO_STREAMS`: 02 → 03 → 05 beside 01 → 06 → 08 → 07 → 04; 03, 04 and 05
   read 02's run and wait for it), with the runs, feature cache, figures and tables under ``build/demo`` (never the
   report's ``figures/``) and notebook 07's inspection page under ``build/demo/predictions``. With random weights,
   notebooks 06 (the ablations), 07 and 08 and notebook 05's presets table run on the tiny test model
   (:data:`TINY_NOTEBOOKS`; their figures, tables and pages say "DEMO — tiny model, ..."), everything else on the
   paper's architecture;
4. joins the executed notebooks into one HTML report, ``build/report/index.html`` (:mod:`tools.html_report`), and
   prints what was written, the encode counts and the wall time — last, the path of the HTML report.

``--tiny`` uses the tiny test model instead (seconds per notebook; under ``build/demo-tiny``); ``--clean`` deletes
the demo's earlier results, feature cache and figures first (a cold run). A failing notebook makes the command exit
with status 1 and the cell's error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tools.html_report import write_html_report
from tools.notebooks import notebook_names, notebook_parameters, run_notebooks
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.experiments.labels import DEMO_BANNER, label_for

__all__ = ["DEMO_CATEGORIES", "DEMO_DATA", "DEMO_MORE", "DEMO_NEEDS", "DEMO_SEEDS", "DEMO_SHOTS", "DEMO_STREAMS",
           "TINY_NOTEBOOKS", "choose_weights", "demo_parameters", "demo_plan", "main", "run_streams"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The synthetic demo set: 2 categories, 6 normal training images, 10 test images (4 normal, 6 anomalous) each.
DEMO_CATEGORIES: tuple[str, ...] = ("tiles", "disc")
DEMO_DATA: dict[str, int] = {"n_train": 6, "n_test_good": 4, "n_test_bad": 6, "size": 256, "seed": 0}
DEMO_SHOTS: tuple[int, ...] = (0, 1, 2, 4)
DEMO_SEEDS: tuple[int, ...] = (0, 1)
#: Notebook 06 on the demo: the few-shot ablation at k = 1 and 4 (the set has 6 normal training images, the paper's
#: 8-shot row needs 8), every test image (on the tiny model, see :data:`TINY_NOTEBOOKS`, the tiling rows — 365
#: whole-image passes per test image — take seconds) and one image for the tiling vs windows timing.
DEMO_ABLATIONS: dict[str, Any] = {"ablation_shots": {"fewshot": [1, 4]}, "max_test_images": None, "timing_images": 1}

#: Notebook 08 on the demo: stand-ins of two later benchmarks in their official layouts, one category each with 4
#: normal training images and 6 test images (2 normal, 4 anomalous) — 20 images more to encode (with random weights
#: on the tiny model, see :data:`TINY_NOTEBOOKS`).
DEMO_MORE: tuple[str, ...] = ("btad", "realiad")

_RULE = "=" * 100


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def ensure_data(root: Path) -> bool:
    """Write the synthetic demo dataset to ``root`` unless a synthetic set with the demo's settings is there.
    Returns True when it was (re)written."""
    from winclip_lib.datasets.synthetic import make_synthetic, read_manifest

    manifest = read_manifest(root) if root.exists() else None
    if manifest is not None and set(manifest.get("categories", {})) == set(DEMO_CATEGORIES) and all(
        manifest.get(k) == DEMO_DATA[k] for k in ("size", "seed")
    ) and all(c.get("train") == DEMO_DATA["n_train"] for c in manifest["categories"].values()):
        return False
    make_synthetic(root, categories=DEMO_CATEGORIES, **DEMO_DATA)
    return True


def choose_weights(tiny: bool = False, random_weights: bool = False) -> tuple[str, str]:
    """(model_name, pretrained) for the demo: the paper's weights when they can be loaded, else the same
    architecture with random weights ("none"), announced loudly; the tiny test model with ``tiny``."""
    from winclip_lib.core.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, find_cached_weights

    if tiny:
        _say(f"model: {TINY_MODEL} (the tiny test model) with RANDOM weights")
        return TINY_MODEL, "none"
    if not random_weights and find_cached_weights(DEFAULT_MODEL, DEFAULT_PRETRAINED) is not None:
        _say(f"model: {DEFAULT_MODEL} / {DEFAULT_PRETRAINED} (the paper's weights)")
        return DEFAULT_MODEL, DEFAULT_PRETRAINED
    _say(f"{_RULE}\n!! The pretrained weights {DEFAULT_PRETRAINED} are not in the local cache (see the README's "
         f"'Weights').\n!! The demo runs {DEFAULT_MODEL} with RANDOM WEIGHTS. Its numbers are NOT a reproduction; "
         f"every table,\n!! figure and page is labelled '{DEMO_BANNER}'.\n{_RULE}")
    return DEFAULT_MODEL, "none"


def demo_parameters(base: Path, model_name: str, pretrained: str, precision: str) -> dict[str, Any]:
    """The notebooks' parameters for the demo (absolute paths under ``base``)."""
    figures = base / "figures"
    loose = base / "photos"
    return {
        "datasets": {"synthetic": str(base / "data")},
        "shots": list(DEMO_SHOTS),
        "seeds": list(DEMO_SEEDS),
        "model_name": model_name,
        "pretrained": pretrained,
        "precision": precision,
        "cache_dir": str(base / "cache"),
        "results_dir": str(base / "results"),
        "figures_dir": str(figures),
        "tables_dir": str(figures / "tables"),
        "more_datasets": {d: str(base / "more" / d) for d in DEMO_MORE},
        "paper_alias": {"synthetic": "mvtec"},
        "dataset": "synthetic",
        "category": DEMO_CATEGORIES[-1],
        "bench_json": str(REPO_ROOT / "build" / "bench" / "speed_cpu.json"),
        **DEMO_ABLATIONS,
        "images": [str(loose)],
        "normal": [str(loose / "normal")],
        "class_name": "metal disc",
        "out_dir": str(base / "predictions"),
    }


# ------------------------------------------------------------ which model each notebook runs, in two streams

#: With random weights, what the paper's architecture adds nothing to runs on the tiny test model (``WinCLIP-Tiny-240``:
#: the same 240 px input and 15 x 15 patch grid, 2 blocks of width 64), and everything it writes is labelled "DEMO —
#: tiny model, random weights, synthetic data: not a reproduction": notebook 06 (the ablations), notebook 05's
#: presets table, notebook 07 (your own photos) and notebook 08 (every dataset beside the published numbers) — many
#: variants of the method, or more images, scored on one random encoder, whose bars, maps and cells show only that
#: each runs and how the figures, pages and tables read, while on the real architecture the image-tiling rows alone
#: cost 365 whole-image passes per test image, the presets two more encodings of the set, 07 its photos and 08 the
#: stand-ins' 20 images. The method's own notebooks (01-04, 05's comparison with the paper) run the paper's
#: architecture. {notebook: its parameters then}.
#: With the paper's weights every notebook runs the paper's model (the ablations then mean something).
TINY_NOTEBOOKS: dict[str, dict[str, str]] = {
    "05_report": {"preset_model_name": TINY_MODEL},
    "06_ablations": {"model_name": TINY_MODEL, "pretrained": "none"},
    "07_your_images": {"model_name": TINY_MODEL, "pretrained": "none"},
    "08_benchmarks": {"model_name": TINY_MODEL, "pretrained": "none"},
}
#: The notebooks in two streams run side by side, each stream in its order; a notebook first waits for those it
#: reads (:data:`DEMO_NEEDS`). 02 computes the grid that 03, 04 and 05 read (and 08, on the same model); 01, 06, 07
#: and, on the tiny model, 08 need nothing from another notebook, so the second stream runs them while 02 encodes,
#: then 04 once 02 has finished. A numbered notebook in neither stream joins the second.
DEMO_STREAMS: tuple[tuple[str, ...], ...] = (
    ("02_zero_shot_winclip", "03_winclip_plus", "05_report"),
    ("01_cpe", "06_ablations", "08_benchmarks", "07_your_images", "04_heatmaps"),
)
#: {notebook: the notebooks whose run it reads}: it starts only after they finished — when it runs the same model
#: (on another, it computes runs of its own).
DEMO_NEEDS: dict[str, tuple[str, ...]] = {name: ("02_zero_shot_winclip",)
                                          for name in ("03_winclip_plus", "04_heatmaps", "05_report", "08_benchmarks")}


#: How the report's label names what ran on the tiny model.
_TINY_PARTS = {"05_report": "notebook 05's presets", "06_ablations": "notebook 06", "07_your_images": "notebook 07",
               "08_benchmarks": "notebook 08"}


def demo_plan(params: dict[str, Any], tiny: bool = False) -> list[list[tuple[str, dict[str, Any]]]]:
    """The demo's streams (:data:`DEMO_STREAMS`), each a list of (notebook, the parameters it declares): the
    notebooks of :data:`TINY_NOTEBOOKS` get their tiny-model parameters when ``params`` run random weights (with
    ``tiny``, ``params`` name the tiny model for every notebook already)."""
    names = notebook_names()
    streams = [[n for n in stream if n in names] for stream in DEMO_STREAMS]
    streams[-1] += [n for n in names if not any(n in stream for stream in DEMO_STREAMS)]
    plan = []
    for stream in streams:
        steps = []
        for name in stream:
            small = not tiny and params["pretrained"] == "none" and name in TINY_NOTEBOOKS
            chosen = {**params, **TINY_NOTEBOOKS[name]} if small else params
            declared = notebook_parameters(name)
            steps.append((name, {k: v for k, v in chosen.items() if k in declared}))
        plan.append(steps)
    return plan


def run_streams(plan: list[list[tuple[str, dict[str, Any]]]], out: Path, log_output: bool = False,
                on_start: Callable[[str], None] | None = None) -> list[Path]:
    """Execute the streams of :func:`demo_plan` side by side (one thread each; the notebooks of a stream in order,
    each in its own kernel, each after the notebooks whose run it reads, :data:`DEMO_NEEDS`) and return the
    executed notebooks in notebook order. A failing notebook stops its stream and every notebook that needs it; the
    rest finishes, then the first failure is raised (papermill's ``PapermillExecutionError``)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from winclip_lib.core.checkpoints import ENTRY_POINT_ENV

    model = {name: params.get("model_name") for steps in plan for name, params in steps}
    finished = {name: threading.Event() for name in model}
    failed: set[str] = set()

    def run(steps: list[tuple[str, dict[str, Any]]]) -> list[Path]:
        done: list[Path] = []
        try:
            for name, params in steps:
                needs = [n for n in DEMO_NEEDS.get(name, ()) if n in model and model[n] == model[name]]
                for need in needs:
                    finished[need].wait()
                if any(n in failed for n in needs):
                    failed.add(name)
                    return done
                done += run_notebooks([name], parameters=params, out_dir=out, log_output=log_output,
                                      on_start=on_start)
                finished[name].set()
            return done
        finally:  # after a failure the rest of the stream never runs: release what waits for it
            for name, _ in steps:
                if not finished[name].is_set():
                    failed.add(name)
                    finished[name].set()

    # Set for every kernel of both streams before either starts (each run_notebooks call restores what it found).
    saved = {k: os.environ.get(k) for k in ("WINCLIP_PROGRESS", ENTRY_POINT_ENV)}
    os.environ["WINCLIP_PROGRESS"] = "0"
    os.environ.setdefault(ENTRY_POINT_ENV, "notebook")
    try:
        with ThreadPoolExecutor(max_workers=len(plan)) as pool:
            futures = [pool.submit(run, steps) for steps in plan if steps]
            errors = [f.exception() for f in futures if f.exception() is not None]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if errors:
        raise errors[0]
    return sorted((p for f in futures for p in f.result()), key=lambda p: p.name)


def _encode_counts(results: Path, model_name: str) -> dict[str, Any] | None:
    """The encode counts of notebook 02's run: the synthetic set's on ``model_name`` (notebook 08 adds the
    stand-ins' run, and on the tiny model a synthetic run of its own)."""
    for run in sorted(results.glob("run-*")):
        try:
            info = json.loads((run / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if "synthetic" in info.get("config", {}).get("datasets", {}) and info.get("model_name") == model_name:
            return info.get("encode_counts")
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="the tiny test model (random weights): a fast smoke run")
    p.add_argument("--random-weights", action="store_true", help="do not look for the pretrained weights")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="weights precision (default: auto, the fastest measured on this machine)")
    p.add_argument("--clean", action="store_true", help="delete the demo's results, feature cache and figures first")
    p.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build",
                   help="build folder (default: <repo>/build); the demo writes <build>/demo, <build>/notebooks and "
                        "<build>/report")
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' cell output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0, or 1 when a notebook fails."""
    from papermill.exceptions import PapermillExecutionError

    from winclip_lib.datasets.standins import make_standins
    from winclip_lib.datasets.synthetic import make_loose_images

    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    build = args.build_dir.resolve()
    base = build / ("demo-tiny" if args.tiny else "demo")
    if args.clean:
        for sub in ("results", "cache", "figures", "predictions"):
            shutil.rmtree(base / sub, ignore_errors=True)
    _say(f"{'wrote' if ensure_data(base / 'data') else 'using'} the synthetic dataset in {base / 'data'}")
    make_standins(base / "more", DEMO_MORE)
    make_loose_images(base / "photos")
    model_name, pretrained = choose_weights(args.tiny, args.random_weights)
    params = demo_parameters(base, model_name, pretrained, args.precision)
    out = build / ("notebooks-tiny" if args.tiny else "notebooks")

    plan = demo_plan(params, args.tiny)
    tiny_used = sorted(name for steps in plan for name, p in steps
                       if not args.tiny and TINY_MODEL in (p.get("model_name"), p.get("preset_model_name")))

    def on_start(name: str) -> None:
        model = " (tiny model: " + ", ".join(TINY_NOTEBOOKS[name]) + ")" if name in tiny_used else ""
        _say(f"[{time.perf_counter() - started:6.0f} s] running notebooks/{name}.ipynb{model} ...")

    _say("two streams side by side: " + " | ".join(" → ".join(n[:2] for n, _ in steps) for steps in plan))
    try:
        paths = run_streams(plan, out, log_output=args.log_output, on_start=on_start)
    except PapermillExecutionError as exc:
        _say(f"\nFAILED: a notebook cell raised {exc.ename}: {exc.evalue}\n"
             f"The executed notebook with the traceback is in {out}.")
        return 1
    banner = label_for(pretrained == "none", params["datasets"], model_name=model_name)
    if tiny_used:
        banner += "; on the tiny model: " + ", ".join(_TINY_PARTS.get(n, n) for n in tiny_used)
    report = write_html_report(paths, build / ("report-tiny" if args.tiny else "report") / "index.html",
                               title="WinCLIP reproduction report — demo", banner=banner)
    wall = time.perf_counter() - started

    figures = sorted((base / "figures").glob("*.png"))
    tables = sorted((base / "figures" / "tables").glob("*.md"))
    _say(f"\n{_RULE}\nDemo finished in {wall:.0f} s ({wall / 60:.1f} min)")
    _say(f"Label on every table, figure and page: {banner}")
    _say(f"Executed notebooks ({len(paths)} of {len(notebook_names())}): {out}")
    _say(f"Figures ({len(figures)}) and tables ({len(tables)} Markdown, each with a CSV): {base / 'figures'}")
    counts = _encode_counts(base / "results", model_name)
    if counts:
        _say("Encode counts of the grid (notebook 02's run): " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    _say(f"Your-own-images page (notebook 07): {base / 'predictions' / 'report.html'}")
    _say(f"{_RULE}\nThe HTML report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
