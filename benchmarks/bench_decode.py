"""Decoding a PNG into the model's input, before and after: OpenCV's decode against zlib-ng + PIL's unfiltering,
side by side.

    python -m benchmarks.bench_decode [--images DIR] [--files 60] [--rounds 3] [--json PATH]

``--images``: a folder of PNGs (searched recursively; default: the test images of ``make bench-grid``'s set at a
tenth of MVTec-AD's size, built if missing). Each row turns every file into the model's 240 x 240 input (read, hash,
decode, resize — what a decoder thread of the grid does), in a fresh interpreter of its own, on one thread and on
one thread per CPU, best of ``--rounds`` passes:

- ``opencv``: OpenCV's decode of the file's bytes, converted to RGB, resized by PIL from the array (the grid's decode
  before zlib-ng);
- ``zlib-ng, array``: :func:`winclip_lib.core.imageio.load_image` (:func:`~winclip_lib.core.png.decode_png`, then
  an array) and the geometry, which makes a PIL image of the array again to resize it;
- ``zlib-ng``: :func:`winclip_lib.core.imageio.load_rgb` and the geometry: PIL's decoded image resized as it is (the
  grid's decode now).

Every row's inputs must be the same bytes (their SHA-256 is compared). Printed: milliseconds per image on one thread,
images per second on all, and each ratio to the ``opencv`` row; then the inflate step alone, zlib against zlib-ng.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROWS = ("opencv", "zlib-ng, array", "zlib-ng")

_WORKER = r"""
import hashlib, json, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import winclip_lib  # its settings for the process first, as the product
import cv2, numpy as np
from winclip_lib.core.cpus import usable_cpus
from winclip_lib.core.digests import read_file
from winclip_lib.core.geometry import Geometry
from winclip_lib.core.imageio import load_image, load_rgb

row, rounds, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
geometry = Geometry(240)

def opencv(path):
    raw = cv2.imdecode(np.frombuffer(read_file(Path(path)), np.uint8), cv2.IMREAD_UNCHANGED)
    return geometry.image(cv2.cvtColor(raw, cv2.COLOR_BGR2RGB))

def array(path):
    return geometry.image(load_image(path))

one = {"opencv": opencv, "zlib-ng, array": array}.get(row, lambda path: geometry.image(load_rgb(path)))

def best(threads):
    pool = ThreadPoolExecutor(threads)
    out, seconds = None, float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = list(pool.map(one, files))
        seconds = min(seconds, time.perf_counter() - t0)
    pool.shutdown()
    return out, seconds

inputs, single = best(1)
_, parallel = best(usable_cpus())
digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in inputs)).hexdigest()
print(json.dumps({"single_s": single, "parallel_s": parallel, "threads": usable_cpus(), "sha256": digest}))
"""


def _default_images() -> Path:
    from benchmarks.grid_data import build_grid_set

    root = REPO / "build" / "bench" / "grid-data-0.1-1024"
    build_grid_set(root, 0.1, 1024, 0)
    return root


def pick_files(images: Path, n: int) -> list[Path]:
    """The first ``n`` PNGs under ``images`` (test images first, in name order), every file distinct."""
    files = sorted(images.rglob("*.png"), key=lambda p: ("/test/" not in p.as_posix(), p.as_posix()))
    files = [p for p in files if "ground_truth" not in p.parts]
    if not files:
        raise SystemExit(f"no PNG files under {images}; pass --images DIR")
    return files[:n]


def run_row(row: str, files: list[Path], rounds: int) -> dict:
    """One row, in a fresh interpreter (see the module docstring)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, "-c", _WORKER, row, str(rounds), *map(str, files)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def inflate_times(files: list[Path], rounds: int) -> dict[str, float]:
    """Seconds to inflate every file's image data (the IDAT chunks' zlib stream), zlib against zlib-ng."""
    from zlib_ng import zlib_ng

    from winclip_lib.core.png import idat_stream

    streams = [(s, len(zlib.decompress(s))) for s in (idat_stream(p.read_bytes()) for p in files) if s is not None]
    out = {}
    for name, fn in (("zlib", lambda s, n: zlib.decompress(s, bufsize=n)),
                     ("zlib-ng", lambda s, n: zlib_ng.decompress(s, bufsize=n))):
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for stream, n in streams:
                fn(stream, n)
            best = min(best, time.perf_counter() - t0)
        out[name] = best
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, default=None, help="a folder of PNGs (default: the bench-grid set)")
    p.add_argument("--files", type=int, default=60, help="how many files")
    p.add_argument("--rounds", type=int, default=3, help="passes per row (the best is kept)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    files = pick_files(args.images or _default_images(), args.files)
    mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"bench_decode: {len(files)} PNG files ({mb:.1f} MB), best of {args.rounds} passes per row")
    rows = {row: run_row(row, files, args.rounds) for row in ROWS}
    if len({r["sha256"] for r in rows.values()}) != 1:
        raise SystemExit("the rows' model inputs differ: " + ", ".join(f"{k}: {r['sha256'][:12]}"
                                                                       for k, r in rows.items()))
    base = rows["opencv"]
    threads = base["threads"]
    print(f"{'':24}{'ms / image, 1 thread':>22}{f'images / s, {threads} threads':>26}{'speed-up (1 | all)':>22}")
    for name, r in rows.items():
        ms = 1e3 * r["single_s"] / len(files)
        ips = len(files) / r["parallel_s"]
        ratio = f"{base['single_s'] / r['single_s']:.2f}x | {base['parallel_s'] / r['parallel_s']:.2f}x"
        print(f"{name:24}{ms:>22.2f}{ips:>26.1f}{ratio:>22}")
    inflate = inflate_times(files, args.rounds)
    print(f"inflate alone, ms / image: zlib {1e3 * inflate['zlib'] / len(files):.2f}, zlib-ng "
          f"{1e3 * inflate['zlib-ng'] / len(files):.2f} ({inflate['zlib'] / inflate['zlib-ng']:.2f}x)")
    print(f"every row's model inputs are the same bytes (sha256 {base['sha256'][:16]})")
    if args.json:
        args.json.write_text(json.dumps({"files": len(files), "megabytes": mb, "rows": rows,
                                         "inflate_seconds": inflate}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
