"""The product's main job, timed as a user runs it: ``winclip run`` on a set of MVTec-AD's size, stage by stage,
beside the code of another checkout in the same run.

    python -m benchmarks.bench_grid                                  # CPU: the tiny model, a tenth of the images
    python -m benchmarks.bench_grid --baseline /tmp/base             # and another checkout, side by side
    python -m benchmarks.bench_grid --device cuda --model ViT-B-16-plus-240 --scale 1   # a GPU, the full set

(``make bench-grid`` runs the first; ``make bench-grid BASELINE=/tmp/base`` the second, where ``/tmp/base`` is e.g.
``git worktree add /tmp/base cb34c84``.)

**The set** (:mod:`benchmarks.grid_data`): MVTec-AD's 15 categories with its per-category test counts, 1024 x 1024
PNGs, 25 training images per category, every file distinct, masks in place; ``--scale`` keeps a fraction of the test
images, ``--side`` another image side, ``--categories`` a subset of the categories. It is built once (in parallel)
and reused while its parameters match.

**The runs**: each side runs the command line a user types, ``python -m winclip_lib.cli run --mvtec SET
--model M --pretrained none --device D --out OUT --cache-dir CACHE --no-progress`` (the defaults for everything
else: k 0 1 2 4, five seeds, precision and batch size "auto"), in a subprocess, from its checkout, with a new empty
cache (a first run), ``--repeats`` times, the sides interleaved (ours, baseline, ours, ...) so that the load of a
shared machine falls on both alike; the median run of each side is reported. Each command line is printed.

**The figures**: the process's wall time (what the user waits, imports included) and the images per second over it;
the seconds of each stage (:mod:`winclip_lib.experiments.stages`: wall time of the main thread, so they add up to
the run's time) from ``run.json`` — or, for a checkout whose ``run.json`` has none, measured from outside by
:mod:`benchmarks.grid_probe` (the same stages, charged to the functions that do them); the encodes and the cache's
size on disk; on CUDA the GPU's utilisation, sampled with ``nvidia-smi`` every half second (mean over the run, and
the share of samples with a kernel running). The machine's load average before and after is printed: on a shared
machine, compare ratios, not seconds. Everything also goes to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: The environment as the user started the benchmark, before importing winclip_lib (which sets OMP_WAIT_POLICY when
#: unset): each side's run gets this one, so each checkout runs as it would for the user.
USER_ENV = dict(os.environ)

from benchmarks.grid_data import build_grid_set  # noqa: E402
from winclip_lib.core.backbone import TINY_MODEL  # noqa: E402
from winclip_lib.core.cpus import numpy_features_to_disable  # noqa: E402
from winclip_lib.experiments.stages import STAGES  # noqa: E402

__all__ = ["GpuSampler", "format_table", "main", "run_side", "side_pythonpath"]

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().with_name("grid_probe.py")


class GpuSampler:
    """``nvidia-smi`` utilisation samples (percent of time a kernel ran) every ``interval`` seconds, in a thread."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5, check=True).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        return {"mean_percent": round(statistics.fmean(self.samples), 1),
                "busy_share": round(sum(s > 0 for s in self.samples) / len(self.samples), 3),
                "samples": len(self.samples)}


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def side_pythonpath(checkout: Path) -> str:
    """PYTHONPATH of one side: its checkout first, then the user's own entries (packages installed with ``--target``,
    as on the lent GPU machine), without any other checkout of this repository."""
    ours = {REPO.resolve(), checkout.resolve()}
    keep = [p for p in USER_ENV.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() not in ours]
    return os.pathsep.join([str(checkout), *keep])


def run_side(name: str, checkout: Path, data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One ``winclip run`` of ``checkout`` on ``data`` with a new cache: its figures (module docstring)."""
    out, cache = work / "out", work / "cache"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cli = ["run", "--mvtec", str(data), "--model", args.model, "--pretrained", "none", "--device", args.device,
           "--out", str(out), "--cache-dir", str(cache), "--no-progress"]
    if args.precision:
        cli += ["--precision", args.precision]
    own_stages = (checkout / "winclip_lib" / "experiments" / "stages.py").is_file()
    probe_json = work / "probe.json"
    cmd = ([sys.executable, "-m", "winclip_lib.cli", *cli] if own_stages
           else [sys.executable, str(PROBE), str(probe_json), "--", *cli])
    path = side_pythonpath(checkout)
    env = {**USER_ENV, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "WINCLIP_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
    print(f"[{name}] cd {shlex.quote(str(checkout))} && PYTHONPATH={shlex.quote(path)} "
          f"{shlex.join(cmd)}", flush=True)
    gpu = GpuSampler() if args.device.startswith("cuda") else None
    t0 = time.perf_counter()
    with gpu or _Nothing():
        proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / "log.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"[{name}] exited with {proc.returncode}; its output is in {work / 'log.txt'}:\n"
                           + (proc.stdout + proc.stderr)[-3000:])
    info = json.loads((out / "run.json").read_text())
    stages = info.get("stages") or json.loads(probe_json.read_text())
    images = stages.get("images") or sum(u["n_test"] + u["n_references"] for u in info["units"])
    result = {
        "name": name, "checkout": str(checkout), "command": shlex.join(cmd), "wall_seconds": round(wall, 2),
        "images": images, "images_per_second": round(images / wall, 2), "stages": stages,
        "stages_measured": "run.json" if info.get("stages") else "from outside (benchmarks/grid_probe.py)",
        "encoded": info.get("encode_counts", {}).get("encoded"), "precision": info.get("precision"),
        "batch_size": (info.get("feature_cache") or {}).get("batch_size") or info["config"].get("batch_size"),
        "cache_bytes": _du(cache), "gpu": gpu.summary() if gpu else None,
        "units": [{k: u.get(k) for k in ("dataset", "category", "status", "n_test", "n_references")}
                  for u in info["units"]],
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["wall_seconds"])
    return ordered[(len(ordered) - 1) // 2]


def _ratio(base: float | None, ours: float | None) -> str:
    if base is None or ours is None:
        return ""
    if ours <= 0:
        return "∞" if base > 0 else ""
    return f"{base / ours:.1f}×"


def format_table(ours: dict[str, Any], base: dict[str, Any] | None) -> str:
    """The side-by-side table: wall seconds of each stage, the whole run, images per second (ratio: baseline / ours,
    so higher is faster)."""
    head = f"{'':<26}{'ours':>12}" + (f"{'baseline':>12}{'speed-up':>10}" if base else "")
    rows = [head]

    def row(label: str, a: float | None, b: float | None, unit: str = "s") -> None:
        cell = lambda v: "" if v is None else f"{v:.2f} {unit}"  # noqa: E731
        rows.append(f"{label:<26}{cell(a):>12}" + (f"{cell(b):>12}{_ratio(b, a):>10}" if base else ""))

    for stage in STAGES:
        row(f"  {stage}", ours["stages"]["seconds"].get(stage), base and base["stages"]["seconds"].get(stage))
    row("run (run_grid)", ours["stages"]["total_seconds"], base and base["stages"]["total_seconds"])
    row("whole process", ours["wall_seconds"], base and base["wall_seconds"])
    ips = f"{'images / s (process)':<26}{ours['images_per_second']:>12.2f}"
    if base:
        ips += f"{base['images_per_second']:>12.2f}{ours['images_per_second'] / base['images_per_second']:>9.1f}×"
    rows.append(ips)
    busy = ", ".join(f"{k} {v:.1f} s" for k, v in (ours["stages"].get("busy_seconds") or {}).items())
    rows.append(f"workers busy (ours): {busy or 'none'}")
    for side in (ours, base) if base else (ours,):
        gpu = side.get("gpu")
        rows.append(f"{side['name']}: {side['images']} images, {side['encoded']} encoded, precision "
                    f"{side['precision']}, batch {side['batch_size']}, cache {side['cache_bytes'] / 1e6:.0f} MB"
                    + (f", GPU busy {gpu['mean_percent']:.0f} % on average ({100 * gpu['busy_share']:.0f} % of "
                       "samples with a kernel running)" if gpu else "")
                    + f"; stages {side['stages_measured']}")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--model", default=None, help=f"open_clip model (default: {TINY_MODEL} on the CPU, "
                   "ViT-B-16-plus-240 on CUDA)")
    p.add_argument("--precision", default=None, help="pass --precision to both sides (default: their 'auto')")
    p.add_argument("--scale", type=float, default=None,
                   help="fraction of MVTec-AD's test images (default: 0.1 on the CPU, 1 on CUDA)")
    p.add_argument("--side", type=int, default=1024, help="image side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the set's seed (default: %(default)s)")
    p.add_argument("--categories", default=None, help="comma-separated subset of MVTec-AD's categories (default: "
                   "all 15)")
    p.add_argument("--data", type=Path, default=None, help="where the set is built / reused (default: "
                   "build/bench/grid-data-<scale>-<side>)")
    p.add_argument("--baseline", type=Path, default=None, help="another checkout, run side by side")
    p.add_argument("--repeats", type=int, default=1, help="runs per side, interleaved; the median is reported")
    p.add_argument("--work", type=Path, default=REPO / "build" / "bench" / "grid-runs", help="runs' folders")
    p.add_argument("--keep", action="store_true", help="keep each run's results and cache")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default: build/bench/grid_<device>.json)")
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    args.model = args.model or ("ViT-B-16-plus-240" if gpu else TINY_MODEL)
    args.scale = args.scale if args.scale is not None else (1.0 if gpu else 0.1)
    args.categories = [c.strip() for c in args.categories.split(",") if c.strip()] if args.categories else None
    subset = "" if args.categories is None else "-" + "-".join(sorted(args.categories))
    args.data = args.data or REPO / "build" / "bench" / f"grid-data-{args.scale:g}-{args.side}{subset}"
    args.out = args.out or REPO / "build" / "bench" / f"grid_{args.device.split(':')[0]}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"bench_grid: {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    if (off := numpy_features_to_disable()) and not {"NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES"} & set(
            USER_ENV):
        print(f"AMD Zen 4: winclip_lib turns numpy's {off} off in its processes (a checkout from before keeps them)")
    t0 = time.perf_counter()
    data, manifest = build_grid_set(args.data, args.scale, args.side, args.seed, categories=args.categories)
    print(f"set: {data} — {manifest['test_images']} test images, {manifest['images']} image files of "
          f"{args.side} x {args.side}, {manifest['masks']} masks, {manifest['bytes'] / 1e9:.2f} GB "
          f"(ready in {time.perf_counter() - t0:.0f} s)", flush=True)
    sides = [("ours", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in sides}
    for i in range(max(1, args.repeats)):
        for name, checkout in sides:
            r = run_side(name, checkout, data, args.work / f"{name}-{i}", args)
            print(f"[{name}] run {i + 1}: {r['wall_seconds']:.1f} s, {r['images_per_second']:.2f} img/s", flush=True)
            runs[name].append(r)
    ours = _median_run(runs["ours"])
    base = _median_run(runs["baseline"]) if args.baseline else None
    print()
    print(format_table(ours, base))
    load = os.getloadavg()
    print(f"load average after: {load} (on a shared machine the ratios, measured side by side, are what count)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"node": platform.node(), "cpus": os.cpu_count(), "load_after": load},
        "set": manifest, "device": args.device, "model": args.model, "repeats": args.repeats,
        "ours": ours, "baseline": base, "runs": runs,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
