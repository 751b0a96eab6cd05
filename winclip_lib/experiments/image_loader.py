"""Images decoded ahead of the encoder, in parallel: :class:`ImageLoader`.

A pool of threads decodes files (:func:`~winclip_lib.core.imageio.load_image`: OpenCV releases the GIL on PNGs) and
applies the model's geometry (:class:`~winclip_lib.core.geometry.Geometry`: PIL's resampling also runs without the
GIL); the main thread only stacks and normalises each batch — exactly as :func:`~winclip_lib.core.preprocess.
preprocess` does, so the input is bit-identical — and, on a GPU, copies it from pinned memory without blocking. The
same threads serve the other per-file work of a run (content hashes, cache reads) through :meth:`ImageLoader.map`.

**When decoding overlaps encoding.** On a GPU the encoder leaves the CPU free: batches are decoded :data:`PREFETCH`
ahead of the one being encoded. On the CPU the encoder's own threads use every core, and a decoder thread beside
them stalls each of their parallel steps (measured on 2 cores: the encoder 3-10 times slower), so a batch is decoded
— by all the threads at once — while the encoder waits, and nothing overlaps there. What does overlap on the CPU is
:meth:`ImageLoader.background`: a second, small pool of threads at the lowest scheduling priority (nice 19, so they
take only the cycles nothing else wants — e.g. while single-threaded metrics run), which decodes the next unit's
images and the masks ahead of time.

Time is charged to the run's :class:`~winclip_lib.experiments.stages.StageTimes`: the workers' time to the stage of
their work (busy seconds), the main thread's waiting for a batch to ``decode`` (wall seconds).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from winclip_lib.core.geometry import Geometry
from winclip_lib.core.imageio import load_image
from winclip_lib.core.preprocess import normalize
from winclip_lib.experiments.stages import StageTimes

__all__ = ["ImageLoader", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")
#: Batches decoded ahead of the one being encoded.
PREFETCH = 2


def _lowest_priority() -> None:
    """Run the calling (new) thread at nice 19: it gets only the CPU time no other thread wants (Linux; elsewhere a
    no-op)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def default_workers() -> int:
    """Decoder threads: one per CPU this process may run on (at most 32)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(32, cpus))


class ImageLoader:
    """Decode and preprocess image files in a pool of threads (the module docstring).

    Args:
        geometry: the model input's geometry (side and resize mode). mean, std: the backbone's normalisation.
        device: where batches go (pinned memory and non-blocking copies on CUDA).
        workers: threads (default :func:`default_workers`). times: where the seconds are charged.
    """

    def __init__(self, geometry: Geometry, mean: Sequence[float], std: Sequence[float], device: torch.device,
                 workers: int | None = None, times: StageTimes | None = None) -> None:
        self.geometry = geometry
        self.mean, self.std = tuple(mean), tuple(std)
        self.device = torch.device(device)
        self.workers = int(workers or default_workers())
        self.times = times if times is not None else StageTimes()
        self.ahead = 0 if self.device.type == "cpu" else PREFETCH
        self.background_workers = 1 if self.device.type == "cpu" else max(1, self.workers // 2)
        self._pool: ThreadPoolExecutor | None = None
        self._background: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="winclip-decode")
        return self._pool

    def _job(self, stage: str, fn: Callable[..., R], *args: Any) -> Callable[[], R]:
        def job() -> R:
            with self.times.busy(stage):
                return fn(*args)
        return job

    def submit(self, stage: str, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``fn(*args)`` on the pool, its time charged to ``stage`` (busy)."""
        return self.pool.submit(self._job(stage, fn, *args))

    def background(self, stage: str, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``fn(*args)`` on the low-priority pool (the module docstring), its time charged to ``stage``
        (busy). Jobs run in the order given."""
        if self._background is None:
            self._background = ThreadPoolExecutor(self.background_workers, thread_name_prefix="winclip-ahead",
                                                  initializer=_lowest_priority)
        return self._background.submit(self._job(stage, fn, *args))

    def map(self, stage: str, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]`` on the pool; the main thread's wait is charged to ``stage`` (wall), the
        workers' time too (busy). One item (or one worker) runs on the calling thread."""
        items = list(items)
        with self.times.stage(stage):
            if len(items) <= 1 or self.workers == 1:
                return [fn(x) for x in items]
            futures = [self.submit(stage, fn, x) for x in items]
            return [f.result() for f in futures]

    def image(self, path: Path) -> np.ndarray:
        """One file as the model's (S, S, 3) uint8 input (decoded, resized or cropped)."""
        return self.geometry.image(load_image(path))

    def batch(self, arrays: list[np.ndarray]) -> torch.Tensor:
        """(b, 3, S, S) CLIP-normalised float32 of decoded inputs, on :attr:`device` (copied without blocking from
        pinned memory on CUDA)."""
        x = normalize(np.stack(arrays), self.mean, self.std)
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x

    def batches(self, paths: Sequence[Path], batch_size: int, ready: dict[Path, Future] | None = None
                ) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, batch of ``paths[start : start + batch_size]``), in order, decoded :attr:`ahead` batches ahead of
        the one yielded (the module docstring). ``ready``: decodes already started (:meth:`background`, a result of
        None meaning "not decoded"), used instead of decoding again. A file that cannot be read raises
        :class:`~winclip_lib.core.imageio.ImageError` when its batch is reached."""
        ready = ready if ready is not None else {}
        starts = list(range(0, len(paths), batch_size))
        in_flight: list[list[tuple[Path, Future[np.ndarray] | None]]] = []

        def start(s: int) -> list[tuple[Path, Future[np.ndarray] | None]]:
            jobs = []
            for p in paths[s : s + batch_size]:
                early = ready.pop(Path(p), None)
                if early is not None and early.cancel():
                    early = None  # not begun: decoded now, with every thread
                jobs.append((p, early if early is not None else self.submit("decode", self.image, p)))
            return jobs

        try:
            for i, s in enumerate(starts):
                while len(in_flight) <= self.ahead and i + len(in_flight) < len(starts):
                    in_flight.append(start(starts[i + len(in_flight)]))
                with self.times.stage("decode"):
                    arrays = []
                    for p, f in in_flight.pop(0):
                        arr = f.result()
                        arrays.append(arr if arr is not None else self.image(p))
                    x = self.batch(arrays)
                yield s, x
        finally:
            for jobs in in_flight:
                for _, f in jobs:
                    f.cancel()

    def close(self) -> None:
        """Stop the threads (a later call starts them again)."""
        for pool in (self._pool, self._background):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._background = None
