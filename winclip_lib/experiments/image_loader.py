"""Images decoded ahead of the encoder, in parallel: :class:`ImageLoader`.

A pool of threads decodes files (:func:`~winclip_lib.core.imageio.load_rgb`: PNGs are decoded without the GIL) and
applies the model's geometry (:class:`~winclip_lib.core.geometry.Geometry`: PIL's resampling also runs without the
GIL), then puts the image in its place in the batch — normalised on the CPU (:func:`~winclip_lib.core.preprocess.
normalize_into`: the numbers of :func:`~winclip_lib.core.preprocess.preprocess`, bit for bit), as bytes in pinned
memory on a GPU, where the batch is normalised after a copy that does not block. The main thread only waits for each
batch (on 2 cores, stacking and normalising every batch there was 0.4 s of a 10.6 s grid). The
same threads serve the other per-file work of a run (content hashes, cache reads) through :meth:`ImageLoader.map`.

**When decoding overlaps encoding.** Batches are decoded :data:`PREFETCH` ahead of the one being encoded, on a GPU
and on the CPU alike. (On the CPU this pays only because idle OpenMP threads sleep — ``OMP_WAIT_POLICY=PASSIVE``, set
by :mod:`winclip_lib` unless the user chose: with spinning OpenMP threads, any busy thread beside the encoder stalled
each of its parallel steps, measured on 2 cores as an encoder 3 to 10 times slower. OpenCV's own threads are turned
off while the pool decodes, one image per thread.) Work for later (:meth:`ImageLoader.ahead_job`: the next unit's
images) runs on a second, small pool; on the CPU its jobs start only while the main thread leaves cores idle
(:meth:`ImageLoader.spare_cores`, e.g. around the metrics) or waits for one of them; on a GPU they start at once.

Time is charged to the run's :class:`~winclip_lib.experiments.stages.StageTimes`: the workers' time to the stage of
their work (busy seconds), the main thread's waiting for a batch to ``decode`` (wall seconds).
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import torch

from winclip_lib.core.cpus import usable_cpus
from winclip_lib.core.geometry import Geometry
from winclip_lib.core.imageio import load_rgb
from winclip_lib.core.preprocess import normalize, normalize_into
from winclip_lib.experiments.stages import StageTimes

__all__ = ["ImageLoader", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")
#: Batches decoded ahead of the one being encoded.
PREFETCH = 2


def default_workers() -> int:
    """Decoder threads: one per CPU this process may run on (at most 32)."""
    return max(1, min(32, usable_cpus()))


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
        cpu = self.device.type == "cpu"
        self.ahead = PREFETCH
        self.background_workers = 1 if cpu else max(1, self.workers // 2)
        self._pool: ThreadPoolExecutor | None = None
        self._background: ThreadPoolExecutor | None = None
        # Work done ahead waits here, not on a thread, until cores are spare (so that nothing blocks the process's
        # exit): [future, job] in order; a job is handed to the background pool while _hold > 0 and fewer than
        # background_workers of them run.
        self._queue: collections.deque[tuple[Future[Any], Callable[[], Any]]] = collections.deque()
        self._running = 0
        self._hold = 0 if cpu else 1  # spare_cores / waits in progress (always one on a GPU)
        self._lock = threading.Lock()

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            if self.workers > 1:
                cv2.setNumThreads(1)  # the pool decodes one image per thread: OpenCV's own threads only oversubscribe
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

    def ahead_job(self, stage: str, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``fn(*args)`` on the pool of work done ahead (the module docstring) once cores are spare, its time
        charged to ``stage`` (busy). Jobs start in the order given; wait for one with :meth:`result`; cancelling
        one that has not started drops it."""
        future: Future[R] = Future()
        with self._lock:
            self._queue.append((future, self._job(stage, fn, *args)))
            self._start_ahead()
        return future

    def _start_ahead(self) -> None:
        """Hand queued ahead jobs to the background pool while cores are spare and its threads free (lock held)."""
        while self._hold > 0 and self._queue and self._running < self.background_workers:
            future, job = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # cancelled before it began
            if self._background is None:
                self._background = ThreadPoolExecutor(self.background_workers, thread_name_prefix="winclip-ahead")
            try:
                self._background.submit(self._run_ahead, future, job)
            except RuntimeError as exc:  # the interpreter is exiting: nothing new starts
                future.set_exception(exc)
                return
            self._running += 1

    def _run_ahead(self, future: Future[Any], job: Callable[[], Any]) -> None:
        try:
            result = job()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the job, as a pool does
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            with self._lock:
                self._running -= 1
                self._start_ahead()

    @contextlib.contextmanager
    def spare_cores(self) -> Iterator[None]:
        """While inside, :meth:`ahead_job` work may start (the main thread leaves cores idle)."""
        with self._lock:
            self._hold += 1
            self._start_ahead()
        try:
            yield
        finally:
            with self._lock:
                self._hold -= 1

    def result(self, future: Future[R]) -> R:
        """The result of a job, cores left spare while waiting for it (an :meth:`ahead_job` may wait for them; a job
        already done leaves nothing to wait for, and no cores spare)."""
        if future.done():
            return future.result()
        with self.spare_cores():
            return future.result()

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
        return self.geometry.image(load_rgb(path))

    def _buffer(self, n: int) -> torch.Tensor:
        """A batch of n images to fill: (n, 3, S, S) float32 on the CPU; (n, S, S, 3) uint8 in pinned memory on CUDA
        (normalised on the GPU)."""
        side = self.geometry.size
        if self.device.type == "cuda":
            return torch.empty((n, side, side, 3), dtype=torch.uint8, pin_memory=True)
        return torch.empty((n, 3, side, side), dtype=torch.float32)

    def _place(self, buffer: torch.Tensor, j: int, image: np.ndarray) -> None:
        """Image j of a batch: normalised into its place on the CPU, its bytes copied there on CUDA."""
        if self.device.type == "cuda":
            np.copyto(buffer[j].numpy(), image)
        else:
            normalize_into(image, buffer[j].numpy(), self.mean, self.std)

    def _decode_into(self, path: Path, buffer: torch.Tensor, j: int) -> None:
        self._place(buffer, j, self.image(path))

    def _finish(self, buffer: torch.Tensor) -> torch.Tensor:
        """The filled batch as the encoder takes it, on :attr:`device`."""
        if self.device.type == "cuda":
            return normalize(buffer.to(self.device, non_blocking=True), self.mean, self.std)
        return buffer

    def batch(self, arrays: list[np.ndarray]) -> torch.Tensor:
        """(b, 3, S, S) CLIP-normalised float32 of decoded inputs (S, S, 3) uint8, on :attr:`device` (on CUDA the bytes
        are copied without blocking from pinned memory and normalised there)."""
        buffer = self._buffer(len(arrays))
        for j, image in enumerate(arrays):
            self._place(buffer, j, image)
        return self._finish(buffer)

    def batches(self, paths: Sequence[Path], batch_size: int, ready: dict[Path, Future] | None = None
                ) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, batch of ``paths[start : start + batch_size]``), in order, decoded :attr:`ahead` batches ahead of
        the one yielded (the module docstring); each decoder thread puts its image in its place in the batch
        (normalised on the CPU), so the main thread only waits. ``ready``: decodes already started
        (:meth:`ahead_job`, a result of None meaning "not decoded"), used instead of decoding again. A file that
        cannot be read raises :class:`~winclip_lib.core.imageio.ImageError` when its batch is reached."""
        ready = ready if ready is not None else {}
        starts = list(range(0, len(paths), batch_size))
        # per batch: its buffer and, per image, (path, job, whether the job is a decode started earlier — whose
        # image is still to be put in its place)
        in_flight: list[tuple[torch.Tensor, list[tuple[Path, Future, bool]]]] = []

        def start(s: int) -> tuple[torch.Tensor, list[tuple[Path, Future, bool]]]:
            chunk = paths[s : s + batch_size]
            buffer = self._buffer(len(chunk))
            jobs = []
            for j, p in enumerate(chunk):
                early = ready.pop(Path(p), None)
                if early is not None and early.cancel():
                    early = None  # not begun: decoded now, with every thread
                if early is not None:
                    jobs.append((p, early, True))
                else:
                    jobs.append((p, self.submit("decode", self._decode_into, p, buffer, j), False))
            return buffer, jobs

        try:
            for i, s in enumerate(starts):
                while len(in_flight) <= self.ahead and i + len(in_flight) < len(starts):
                    in_flight.append(start(starts[i + len(in_flight)]))
                with self.times.stage("decode"):
                    buffer, jobs = in_flight.pop(0)
                    for j, (p, job, early) in enumerate(jobs):
                        image = self.result(job)
                        if early:
                            self._place(buffer, j, image if image is not None else self.image(p))
                    x = self._finish(buffer)
                yield s, x
        finally:
            for _, jobs in in_flight:
                for _, job, _ in jobs:
                    job.cancel()

    def close(self) -> None:
        """Stop the threads (a later call starts them again). Jobs not begun are cancelled, those of the work done
        ahead still waiting for spare cores among them; jobs under way are finished."""
        with self._lock:
            queued, self._queue = list(self._queue), collections.deque()
        for future, _ in queued:
            future.cancel()
        pools = [p for p in (self._pool, self._background) if p is not None]
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
        try:
            for pool in pools:
                pool.shutdown(wait=True)
        finally:
            self._pool = self._background = None
