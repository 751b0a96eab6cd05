"""Where a run's time goes: seconds per stage, on the critical path and in the background workers.

The stages (:data:`STAGES`):

- ``decode`` — reading image and mask files and preprocessing them (decoding, resizing, normalising);
- ``encode`` — the ViT on the images (on a GPU, until the features are back on the host);
- ``cache_write`` — entries written to the feature cache; ``cache_read`` — finding entries (the content hash of each
  file) and reading them back;
- ``text`` — the class prompts through the text tower; ``scoring`` — every (k, seed) scored from the features
  (the few-shot memories, the zero-shot and visual maps); ``metrics`` — the seven metrics of every setting;
- ``other`` — the rest of the run's wall time: planning the units, writing the results, Python between stages.

Two measures per stage:

- **wall** (``seconds``): time the main thread spent in the stage or waiting for it — the stage's share of the run's
  wall time. Work that background threads do while the main thread is busy elsewhere is not counted here, which is
  the point of doing it in the background. The wall seconds of all stages, ``other`` included, add up to the run's
  ``total_seconds``.
- **busy** (``busy_seconds``): the time workers spent on the stage, summed over the worker threads (decoder threads
  decoding, the writer thread writing); more than the wall time when several work at once, and work that was
  entirely hidden behind other stages shows up only here.

``images_per_second`` is the images of the run (test images and references, each once per unit) over its total wall
time. A main-thread stage that starts inside another is charged to the inner stage only (the outer one pauses).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["STAGES", "StageTimes", "format_stages"]

#: The stages, in the order they are reported.
STAGES = ("decode", "encode", "cache_write", "cache_read", "text", "scoring", "metrics", "other")
_TIMED = STAGES[:-1]
_LABELS = {"cache_write": "cache write", "cache_read": "cache read"}


class StageTimes:
    """Seconds per stage of one run (see the module docstring); thread-safe.

    ``with times.stage("encode"): ...`` charges the main thread's time to a stage; ``with times.busy("decode"):
    ...`` (or :meth:`add_busy`) charges a worker's time. Only the thread that created the object (or the one given
    as ``main``) charges wall time; :meth:`stage` on any other thread charges busy time instead, so a function can be
    timed the same way wherever it runs.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.wall: dict[str, float] = dict.fromkeys(_TIMED, 0.0)
        self.busy_seconds: dict[str, float] = dict.fromkeys(_TIMED, 0.0)
        self._lock = threading.Lock()
        self._main = threading.get_ident()
        self._stack: list[list[Any]] = []  # [stage, start] of the main thread's open stages, innermost last

    def set_main_thread(self) -> None:
        """Make the calling thread the one whose time is the run's wall time."""
        self._main = threading.get_ident()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Charge the enclosed time to ``name``: wall time on the main thread (pausing an enclosing stage), busy
        time on any other."""
        if name not in self.wall:
            raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(_TIMED)}")
        if threading.get_ident() != self._main:
            with self.busy(name):
                yield
            return
        now = time.perf_counter()
        if self._stack:
            outer = self._stack[-1]
            self.wall[outer[0]] += now - outer[1]
        self._stack.append([name, now])
        try:
            yield
        finally:
            end = time.perf_counter()
            inner = self._stack.pop()
            self.wall[inner[0]] += end - inner[1]
            if self._stack:
                self._stack[-1][1] = end

    @contextlib.contextmanager
    def busy(self, name: str) -> Iterator[None]:
        """Charge the enclosed time of a worker thread to ``name``'s busy seconds."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add_busy(name, time.perf_counter() - t0)

    def add_busy(self, name: str, seconds: float) -> None:
        with self._lock:
            self.busy_seconds[name] += seconds

    def add(self, other: StageTimes) -> None:
        """Add another object's seconds to this one's (e.g. a cache's times into a run's)."""
        with self._lock:
            for name in _TIMED:
                self.wall[name] += other.wall[name]
                self.busy_seconds[name] += other.busy_seconds[name]

    def elapsed(self) -> float:
        """Seconds since this object was made."""
        return time.perf_counter() - self.started

    def as_dict(self, total_seconds: float | None, images: int) -> dict[str, Any]:
        """What ``run.json`` records under ``stages``: ``seconds`` (wall, by stage, ``other`` the rest of
        ``total_seconds``; None: :meth:`elapsed`), ``busy_seconds`` (workers), ``total_seconds``, ``images`` and
        ``images_per_second``."""
        total_seconds = self.elapsed() if total_seconds is None else total_seconds
        wall = {n: round(v, 3) for n, v in self.wall.items()}
        wall["other"] = round(max(0.0, total_seconds - sum(self.wall.values())), 3)
        return {
            "seconds": wall,
            "busy_seconds": {n: round(v, 3) for n, v in self.busy_seconds.items() if v > 0},
            "total_seconds": round(total_seconds, 3),
            "images": int(images),
            "images_per_second": round(images / total_seconds, 2) if total_seconds > 0 else None,
            "meaning": "seconds: wall time of the main thread in each stage (waiting for it included; they add up "
                       "to total_seconds); busy_seconds: time of the background workers, summed over threads",
        }


def format_stages(stages: Mapping[str, Any]) -> str:
    """One line: the total, images per second, the wall seconds of each stage and the busy seconds of the workers
    (``stages`` as recorded by :meth:`StageTimes.as_dict`)."""
    wall = stages["seconds"]
    rate = stages.get("images_per_second")
    parts = [f"{_LABELS.get(n, n)} {wall.get(n, 0.0):.1f}" for n in STAGES]
    line = (f"time: {stages['total_seconds']:.1f} s for {stages['images']} images"
            + (f" ({rate:.1f} img/s)" if rate else "") + " — " + ", ".join(parts) + " s")
    busy = stages.get("busy_seconds") or {}
    if busy:
        line += " (workers busy: " + ", ".join(f"{_LABELS.get(n, n)} {v:.1f}" for n, v in busy.items()) + " s)"
    return line
