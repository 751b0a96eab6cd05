"""Wall-clock timing shared by the benchmark's modules: synchronised on CUDA, best of several runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["sync", "timed"]


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int = 1) -> tuple[Any, float]:
    """(result of the last call, best wall time in seconds over ``repeats`` calls), synchronised on CUDA."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return result, best
