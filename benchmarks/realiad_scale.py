"""Memory of a grid over a Real-IAD-sized stand-in: bounded by one category, not by the dataset.

    python -m benchmarks.realiad_scale [--root build/realiad-scale] [--out build/realiad-scale/memory.json]
        [--size 256] [--model WinCLIP-Tiny-240] [--cache-dir DIR | none] [--shots 0 1] [--seeds 0]

1. **The stand-in** (written once, kept when present), in Real-IAD's official layout (``realiad_256/<object>/...``
   and ``realiad_jsons_sv/<object>.json``, :func:`winclip_lib.datasets.standins.make_realiad`): the objects of
   :data:`GRID_COUNTS` with their own rendered images at ``--size`` px — they are decoded and scored — and the other
   objects of the release with :data:`LISTED_COUNTS` each, whose files are hard links of one image (and one mask)
   per object: they are listed, never scored. In all about 150,000 images, the size of the release.
2. **Listing**: the whole stand-in is listed and the grid of every object planned (:func:`plan_units`, what
   ``winclip run`` does before it encodes anything) in a subprocess: its peak RSS and seconds, beside the peak of
   the same imports alone.
3. **The grid**: ``winclip run --realiad ROOT --categories C`` for each grid object alone, then for all of them in
   one run, each in a subprocess (the tiny model with random weights by default: the memory that depends on the
   model is the features, reported per image beside the full-size model's), with its peak RSS (``wait4``) and
   seconds. The run over all grid objects peaks at its largest object's peak, not at the sum: memory is bounded by
   one category.

Every number is printed and written to ``--out`` as JSON. Timings taken on a shared machine are noisy; the peaks
are not (they depend on the data, the model and the settings).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from winclip_lib.datasets.catalog import REALIAD_CATEGORIES

__all__ = ["GRID_COUNTS", "LISTED_COUNTS", "feature_bytes_per_image", "fresh_run_dir", "main", "peak_of", "scaled",
           "write_standin"]

#: Objects scored, each (train OK, test OK, test NG): the release's mean per object (151,050 images, 51,329 of them
#: anomalous, over 30 objects: 5,035 and 1,711), split 1,500 / 1,824 / 1,711 — and a half and a fifth of it, so that
#: the objects differ in size.
GRID_COUNTS: dict[str, tuple[int, int, int]] = {"audiojack": (1500, 1824, 1711), "pcb": (750, 912, 856),
                                                "mint": (300, 365, 342)}
#: Every other object of the release: listed only, the mean counts.
LISTED_COUNTS: tuple[int, int, int] = (1500, 1824, 1711)
RESOLUTION = "realiad_256"


def scaled(counts: tuple[int, int, int], fraction: float) -> tuple[int, int, int]:
    """``counts`` times ``fraction``, at least one test image of each kind and 4 training images, the largest k
    (``--fraction``: a quick check of the script)."""
    return tuple(max(4 if i == 0 else 1, round(n * fraction)) for i, n in enumerate(counts))  # type: ignore


def write_standin(root: Path, size: int, fraction: float = 1.0) -> dict[str, Any]:
    """The stand-in under ``root`` (kept when its ``standin.json`` says it was written with these counts)."""
    from winclip_lib.datasets.standins import REALIAD_TIME, make_realiad

    grid = {c: scaled(n, fraction) for c, n in GRID_COUNTS.items()}
    listed = scaled(LISTED_COUNTS, fraction)
    spec = {"grid": grid, "listed": listed, "size": size, "resolution": RESOLUTION}
    stamp = root / "standin.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == json.loads(json.dumps(spec)):
        return spec
    started = time.perf_counter()
    make_realiad(root, grid, resolution=RESOLUTION, size=size, views=("C1",))
    # one rendered image and mask, hard-linked as every file of the objects that are only listed
    make_realiad(root / ".seed", {"seed": (0, 0, 1)}, resolution=RESOLUTION, size=size, views=("C1",))
    seed_image = next((root / ".seed" / RESOLUTION / "seed").rglob("*.jpg"))
    seed_mask = seed_image.with_suffix(".png")
    json_dir = root / "realiad_jsons_sv"
    for cat in (c for c in REALIAD_CATEGORIES if c not in grid):
        base = root / RESOLUTION / cat
        base.mkdir(parents=True, exist_ok=True)
        seeds = {}
        for src, ext in ((seed_image, ".jpg"), (seed_mask, ".png")):  # a file may have at most 65,000 links
            seeds[ext] = base / f"seed{ext}"
            shutil.copyfile(src, seeds[ext])
        splits: dict[str, list[dict]] = {"train": [], "test": []}
        sample = 0
        for split, n, bad in (("train", listed[0], False), ("test", listed[1], False), ("test", listed[2], True)):
            for i in range(n):
                sample += 1
                defect = ("AK", "BX", "QS")[i % 3] if bad else None
                rel = f"NG/{defect}/S{sample:04d}" if bad else f"OK/S{sample:04d}"
                stem = f"{cat}_{sample:04d}_{'NG_' + defect if bad else 'OK'}_C1_{REALIAD_TIME}"
                (base / rel).mkdir(parents=True, exist_ok=True)
                for ext in (".jpg", ".png") if bad else (".jpg",):
                    dst = base / rel / f"{stem}{ext}"
                    if not dst.exists():
                        os.link(seeds[ext], dst)
                splits[split].append({"category": cat, "anomaly_class": defect or "OK",
                                      "image_path": f"{rel}/{stem}.jpg",
                                      "mask_path": f"{rel}/{stem}.png" if bad else None})
        meta = {"prefix": cat, "normal_class": "OK", "pre_transform": None}
        (json_dir / f"{cat}.json").write_text(json.dumps({"meta": meta, **splits}))
    stamp.write_text(json.dumps(spec))
    print(f"wrote the stand-in in {time.perf_counter() - started:.0f} s", flush=True)
    return spec


def peak_of(argv: list[str], log: Path | None = None) -> dict[str, Any]:
    """Run ``argv`` in a subprocess; its peak resident memory (``wait4``'s ``ru_maxrss``: the process and its
    threads), seconds and exit status; its output goes to ``log``.

    The command is started by a small Python process of its own (:data:`_MEASURE`), not by this one: Linux starts
    the peak of a process created by ``fork`` or ``vfork`` at its parent's size, so a command started from a large
    process (this one, or pytest) would report at least that."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "peak.json"
        target = str(log if log is not None else os.devnull)
        actions = [(os.POSIX_SPAWN_OPEN, 1, target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
                   (os.POSIX_SPAWN_DUP2, 1, 2)]
        wrapper = [sys.executable, "-c", _MEASURE, str(result), *argv]
        _, status, _ = os.wait4(os.posix_spawn(sys.executable, wrapper, dict(os.environ), file_actions=actions), 0)
        if os.waitstatus_to_exitcode(status) != 0 or not result.is_file():
            raise RuntimeError(f"could not measure {argv[:4]}: the measuring process failed (see {target})")
        measured = json.loads(result.read_text())
    return {"peak_rss_mib": round(measured["maxrss_kib"] / 1024, 1),
            "seconds": round(time.perf_counter() - started, 1), "exit_status": measured["exit_status"]}


#: Started by :func:`peak_of`: runs the command and writes its peak RSS (KiB) and exit status to ``argv[1]``.
_MEASURE = """
import json, os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], dict(os.environ))
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"maxrss_kib": usage.ru_maxrss, "exit_status": os.waitstatus_to_exitcode(status)}, f)
"""


_IMPORTS = """
import json, sys, time
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.units import plan_units
"""
_PLAN = _IMPORTS + """
def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
before, t = rss_mib(), time.perf_counter()
units = plan_units(RunConfig(datasets={"realiad": sys.argv[1]}, shots=(0, 1, 2, 4), seeds=(0, 1, 2, 3, 4)))
print(json.dumps({"units": len(units), "test_images": sum(len(u.test) for u in units),
                  "references": sum(len(u.reference_union) for u in units),
                  "plan_seconds": round(time.perf_counter() - t, 1),
                  "rss_before_mib": round(before, 1), "rss_after_mib": round(rss_mib(), 1)}))
"""


def feature_bytes_per_image(model: str) -> int:
    """Bytes of the fp32 features of one image as the grid keeps them (image embedding, every window of the
    scales 2 and 3, the patch tokens), from the model's dimensions (no weights needed)."""
    from winclip_lib.core.backbone import load_backbone

    backbone = load_backbone(model, "none", precision="fp32", device="cpu")
    dim, width, grid = backbone.embed_dim, backbone.width, backbone.grid_size
    windows = sum((grid - k + 1) ** 2 for k in (2, 3))
    return 4 * (dim * (1 + windows) + width * grid * grid)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.realiad_scale", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("build/realiad-scale/data"))
    p.add_argument("--out", type=Path, default=Path("build/realiad-scale/memory.json"))
    p.add_argument("--size", type=int, default=256, help="side of the stand-in's images (realiad_256: 256)")
    p.add_argument("--model", default="WinCLIP-Tiny-240", help="open_clip model of the grid (random weights)")
    p.add_argument("--cache-dir", default=None,
                   help="the grid's feature cache (default: a fresh folder beside --out; 'none': no cache)")
    p.add_argument("--shots", type=int, nargs="+", default=[0, 1])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--precision", default="fp32")
    p.add_argument("--fraction", type=float, default=1.0, help="scale every count (a quick check: 0.01)")
    return p


def fresh_run_dir(out: Path, name: str) -> Path:
    """The folder of the grid run ``name`` beside ``out``, emptied: a finished run left there by an earlier
    invocation would only be read back by ``winclip run``, and its peak would not be the grid's."""
    run_dir = out.parent / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root, out = args.root.resolve(), args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = write_standin(root, args.size, args.fraction)
    report: dict[str, Any] = {"standin": spec, "model": args.model, "shots": args.shots, "seeds": args.seeds,
                              "machine": {"cpus": os.cpu_count()}}

    log = out.parent / "listing.log"
    listing = peak_of([sys.executable, "-c", _PLAN, str(root)], log=log)
    if listing["exit_status"] != 0:
        print(log.read_text(), file=sys.stderr)
        return 1
    baseline = peak_of([sys.executable, "-c", _IMPORTS])  # the same imports, nothing listed
    report["listing"] = {**json.loads(log.read_text().strip().splitlines()[-1]), **listing,
                         "imports_only_peak_rss_mib": baseline["peak_rss_mib"]}
    print(f"listing + plan_units of all {len(REALIAD_CATEGORIES)} objects: {report['listing']}", flush=True)

    cache = args.cache_dir or str(out.parent / "cache")
    runs: list[dict[str, Any]] = []
    for cats in [[c] for c in GRID_COUNTS] + [list(GRID_COUNTS)]:
        name = "+".join(cats)
        run_dir = fresh_run_dir(out, name)
        argv_run = [sys.executable, "-m", "winclip_lib.cli", "run", "--realiad", str(root), "--categories", *cats,
                    "--model", args.model, "--pretrained", "none", "--precision", args.precision, "--device", "cpu",
                    "--shots", *map(str, args.shots), "--seeds", *map(str, args.seeds), "--cache-dir", cache,
                    "--out", str(run_dir), "--no-progress"]
        result = peak_of(argv_run, log=out.parent / f"run-{name}.log")
        n_test = sum(spec["grid"][c][1] + spec["grid"][c][2] for c in cats)
        runs.append({"categories": cats, "test_images": n_test, **result})
        print(f"winclip run {name}: {n_test} test images, {result}", flush=True)
    report["runs"] = runs
    report["feature_bytes_per_image"] = {m: feature_bytes_per_image(m) for m in dict.fromkeys(
        (args.model, "ViT-B-16-plus-240"))}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all(r["exit_status"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
