"""Stage timings of a ``winclip run`` whose own ``run.json`` has none (a checkout from before they were recorded),
measured from outside: run by :mod:`benchmarks.bench_grid` as a script, with that checkout first on ``PYTHONPATH``::

    python /path/to/benchmarks/grid_probe.py STAGES_JSON -- run --mvtec DATA --pretrained none ...

It wraps the functions that do each stage's work (:data:`PROBES`, looked up by name; a name the checkout lacks is
skipped) with the timer of this repository's :mod:`winclip_lib.experiments.stages` (loaded from its file, so the
checkout's own package is the one that runs), runs the command line as ``python -m winclip_lib.cli`` would, and
writes the stages as ``run.json`` would hold them to STAGES_JSON. The wrappers charge what the main thread spends
inside each function (a function called inside another is charged to the inner one); the image decoding of worker
threads is charged as busy time; the total is the time of ``run_grid``, as ours records it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import runpy
import sys
import time
from pathlib import Path

#: (module, attribute path, stage, how): "call" charges the calls on the main thread (wall) and on workers (busy);
#: "generator" charges the main thread's wait for each item of a generator (a batch decoded by worker threads).
PROBES: tuple[tuple[str, str, str, str], ...] = (
    ("winclip_lib.experiments.feature_cache", "FeatureCache._batches", "decode", "generator"),
    ("winclip_lib.experiments.feature_cache", "FeatureCache._preprocess_one", "decode", "call"),
    ("winclip_lib.experiments.unit_eval", "eval_masks", "decode", "call"),
    ("winclip_lib.experiments.feature_cache", "encode_images", "encode", "call"),
    ("winclip_lib.experiments.feature_cache", "FeatureCache._store", "cache_write", "call"),
    ("winclip_lib.experiments.feature_cache", "FeatureCache._load", "cache_read", "call"),
    ("winclip_lib.experiments.feature_cache", "FeatureCache.image_id", "cache_read", "call"),
    ("winclip_lib.core.model", "text_embeddings", "text", "call"),
    ("winclip_lib.core.model", "WinCLIP.predict_features", "scoring", "call"),
    ("winclip_lib.core.model", "WinCLIP.fit", "scoring", "call"),
    ("winclip_lib.experiments.unit_eval", "evaluate_category", "metrics", "call"),
    ("winclip_lib.experiments.unit_eval", "image_metrics", "metrics", "call"),
)


def _load_stages():
    path = Path(__file__).resolve().parents[1] / "winclip_lib" / "experiments" / "stages.py"
    spec = importlib.util.spec_from_file_location("_bench_grid_stages", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wrap(fn, stage: str, how: str, times):
    if how == "generator":
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            it = iter(fn(*args, **kwargs))
            while True:
                with times.stage(stage):
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                yield item
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with times.stage(stage):
            return fn(*args, **kwargs)
    return call


def install(times) -> list[str]:
    """Wrap every probe the imported checkout has; returns the ones installed."""
    done = []
    for module_name, attr, stage, how in PROBES:
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is None or not hasattr(owner, name):
            continue
        if isinstance(inspect.getattr_static(owner, name), staticmethod | classmethod):
            continue
        setattr(owner, name, _wrap(getattr(owner, name), stage, how, times))
        done.append(f"{module_name}.{attr}")
    return done


def main(argv: list[str]) -> int:
    out, sep, *cli = argv
    if sep != "--":
        raise SystemExit("usage: grid_probe.py STAGES_JSON -- <winclip arguments>")
    stages = _load_stages()
    times = stages.StageTimes()
    installed = install(times)
    grid = importlib.import_module("winclip_lib.experiments.grid")
    real = grid.run_grid
    record: dict = {}

    def run_grid(*args, **kwargs):
        times.__init__()  # the run starts here, as ours records it
        try:
            result = real(*args, **kwargs)
        finally:
            images = 0
            total = times.elapsed()
            try:
                info = json.loads((Path(args[0].out_dir) / "run.json").read_text())
                images = sum(u.get("n_test", 0) + u.get("n_references", 0) for u in info.get("units", [])
                             if u.get("status") == "computed")
            except (OSError, ValueError, AttributeError, IndexError):
                pass
            record.update(times.as_dict(total, images))
        return result

    for module in list(sys.modules.values()):  # the grid, and every module that imported run_grid by name already
        if getattr(module, "run_grid", None) is real and getattr(module, "__name__", "").startswith("winclip_lib"):
            module.run_grid = run_grid
    sys.argv = ["winclip", *cli]
    t0 = time.perf_counter()
    status = 0
    try:
        runpy.run_module("winclip_lib.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    record.update({"probes": installed, "process_seconds_after_imports": round(time.perf_counter() - t0, 3)})
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
