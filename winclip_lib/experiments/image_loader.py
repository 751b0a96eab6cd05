"""Images decoded ahead of the encoder, in parallel: :class:`ImageLoader`.

A pool of threads decodes files (:func:`~winclip_lib.core.imageio.load_image`: OpenCV releases the GIL on PNGs) and
applies the model's geometry (:class:`~winclip_lib.core.geometry.Geometry`: PIL's resampling also runs without the
GIL), a few batches ahead of the encoder; the main thread only stacks and normalises each batch — exactly as
:func:`~winclip_lib.core.preprocess.preprocess` does, so the input is bit-identical — and, on a GPU, copies it from
pinned memory without blocking. The same pool serves the other per-file work of a run (content hashes, cache
reads, masks) through :meth:`ImageLoader.map` and :meth:`ImageLoader.submit`.

Time is charged to the run's :class:`~winclip_lib.experiments.stages.StageTimes`: the workers' time to the stage of
their work (busy seconds), the main thread's waiting for a batch to ``decode`` (wall seconds).
"""

from __future__ import annotations

import os
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
        self._pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="winclip-decode")
        return self._pool

    def submit(self, stage: str, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``fn(*args)`` on the pool, its time charged to ``stage`` (busy)."""
        def job() -> R:
            with self.times.busy(stage):
                return fn(*args)
        return self.pool.submit(job)

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

    def batches(self, paths: Sequence[Path], batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, batch of ``paths[start : start + batch_size]``), in order, decoded :data:`PREFETCH` batches ahead
        of the one yielded. A file that cannot be read raises :class:`~winclip_lib.core.imageio.ImageError` when its
        batch is reached."""
        starts = list(range(0, len(paths), batch_size))
        in_flight: list[list[Future[np.ndarray]]] = []
        try:
            for i, start in enumerate(starts):
                while len(in_flight) <= PREFETCH and i + len(in_flight) < len(starts):
                    s = starts[i + len(in_flight)]
                    in_flight.append([self.submit("decode", self.image, p) for p in paths[s : s + batch_size]])
                with self.times.stage("decode"):
                    x = self.batch([f.result() for f in in_flight.pop(0)])
                yield start, x
        finally:
            for futures in in_flight:
                for f in futures:
                    f.cancel()

    def close(self) -> None:
        """Stop the threads (a later call starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
