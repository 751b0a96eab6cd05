"""The loader: work done ahead starts only while cores are spare on the CPU, at once on a GPU, closing never waits
for cores that will not come, and each decoded image lands, normalised, in its place in its batch."""

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np
import pytest
import torch

from winclip_lib.core.geometry import Geometry
from winclip_lib.experiments.image_loader import ImageLoader

REPO = Path(__file__).resolve().parents[2]


def _loader(device: str = "cpu") -> ImageLoader:
    return ImageLoader(Geometry(24), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device(device), workers=2)


def test_ahead_jobs_wait_for_spare_cores_on_the_cpu():
    loader = _loader()
    started = threading.Event()
    try:
        job = loader.ahead_job("decode", lambda: started.set() or 7)
        assert not started.wait(0.3) and not job.done()  # the main thread holds the cores
        with loader.spare_cores():
            assert job.result(timeout=10) == 7
        # waiting for a job through result() leaves the cores spare: no deadlock on a job that waits for them
        assert loader.result(loader.ahead_job("decode", lambda: 11)) == 11
    finally:
        loader.close()


def test_close_cancels_ahead_jobs_still_waiting_for_cores():
    loader = _loader()
    ran = []
    first = loader.ahead_job("decode", lambda: ran.append(1))
    second = loader.ahead_job("decode", lambda: ran.append(2))
    time.sleep(0.2)  # the first has begun: it waits for spare cores
    t0 = time.perf_counter()
    loader.close()
    assert time.perf_counter() - t0 < 5 and ran == []
    with pytest.raises(CancelledError):
        first.result(timeout=1)
    assert second.cancelled()
    # usable again after closing, and still gated
    again = loader.ahead_job("decode", lambda: 3)
    with loader.spare_cores():
        assert again.result(timeout=10) == 3
    loader.close()


def test_on_a_gpu_ahead_jobs_start_at_once():
    loader = _loader("meta")  # any non-CPU device: nothing is copied here
    try:
        assert loader.ahead_job("decode", lambda: 5).result(timeout=10) == 5
    finally:
        loader.close()


def test_work_left_waiting_for_cores_does_not_keep_the_process_alive(tmp_path):
    """A process that queued work ahead on the CPU and ended without closing the loader exits at once: the work
    waits in the loader's queue, not on a thread the interpreter would join at exit."""
    script = tmp_path / "left.py"
    script.write_text(
        "import torch\n"
        "from winclip_lib.core.geometry import Geometry\n"
        "from winclip_lib.experiments.image_loader import ImageLoader\n"
        "loader = ImageLoader(Geometry(24), (0.5,) * 3, (0.25,) * 3, torch.device('cpu'), workers=2)\n"
        "done = loader.ahead_job('decode', lambda: 1)\n"
        "with loader.spare_cores():\n"
        "    assert done.result(timeout=10) == 1\n"
        "left = loader.ahead_job('decode', lambda: 2)\n"
        "print('queued', left.running() or left.done())\n")
    out = subprocess.run([sys.executable, str(script)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "queued False"


def _photos(tmp_path: Path, n: int) -> list[Path]:
    """n distinct PNG photos of 40 x 30 pixels (gray, colour and colour with alpha among them)."""
    from PIL import Image

    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        mode = ("RGB", "L", "RGBA")[i % 3]
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        pixels = rng.integers(0, 256, (30, 40, channels), dtype=np.uint8)
        p = tmp_path / f"photo{i}.png"
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(p)
        paths.append(p)
    return paths


def test_batches_hold_each_image_normalised_in_its_place(tmp_path):
    """Decoder threads put each image, normalised, in its place in the batch: the batches equal preprocess() of the
    same files bit for bit, decodes started earlier (with an image, or None: "decode it here") included, and a file
    that cannot be read raises when its batch is reached."""
    from concurrent.futures import Future

    from winclip_lib.core.imageio import ImageError
    from winclip_lib.core.preprocess import preprocess

    paths = _photos(tmp_path, 7)
    mean, std = (0.48, 0.45, 0.40), (0.27, 0.26, 0.28)
    loader = ImageLoader(Geometry(24), mean, std, torch.device("cpu"), workers=2)
    early_image, early_none = Future(), Future()
    early_image.set_result(loader.image(paths[2]))
    early_none.set_result(None)
    try:
        got = list(loader.batches(paths, 3, ready={paths[2]: early_image, paths[5]: early_none}))
        assert [s for s, _ in got] == [0, 3, 6] and [len(x) for _, x in got] == [3, 3, 1]
        assert torch.equal(torch.cat([x for _, x in got]), preprocess(paths, 24, mean=mean, std=std))
        assert torch.equal(loader.batch([loader.image(p) for p in paths[:2]]), preprocess(paths[:2], 24, mean=mean,
                                                                                        std=std))
        broken = tmp_path / "broken.png"
        broken.write_bytes(paths[0].read_bytes()[:200])
        batches = loader.batches([*paths[:3], broken], 3)
        assert torch.equal(next(batches)[1], preprocess(paths[:3], 24, mean=mean, std=std))
        with pytest.raises(ImageError, match="broken.png"):
            next(batches)
    finally:
        loader.close()
