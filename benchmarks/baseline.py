"""The straightforward baseline: each image whole, then every window alone, one open_clip transformer call each.

It is what a first reproduction of WinCLIP looks like: open_clip's own ``visual.transformer`` (which handles its own
batch-first / sequence-first layout), its own pooling and projection
(:func:`winclip_lib.core.openclip_adapter.pool`), no batching of windows and none of our encoder's shortcuts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from benchmarks.timing import sync
from winclip_lib.core.backbone import Backbone
from winclip_lib.core.encoder import window_indices
from winclip_lib.core.features import Features
from winclip_lib.core.openclip_adapter import pool
from winclip_lib.core.options import WinCLIPOptions

__all__ = ["baseline_encode"]


def _input_tokens(visual, x: torch.Tensor) -> torch.Tensor:
    """(1, 3, S, S) -> (1, 1+G*G, W): class and patch tokens with positions, after ``ln_pre``."""
    t = visual.conv1(x.to(visual.conv1.weight.dtype))
    t = t.reshape(1, t.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.reshape(1, 1, -1).to(t.dtype)
    return visual.ln_pre(torch.cat([cls, t], dim=1) + visual.positional_embedding.to(t.dtype))


def _embed(visual, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence through open_clip's ``visual.transformer``, then its pooling and projection: (pooled (1, D),
    the non-class tokens)."""
    return pool(visual, visual.transformer(seq))


def _chosen_windows(n: int, windows_per_scale: int | None) -> list[int]:
    """All n window numbers, or ``windows_per_scale`` of them evenly spaced (first and last included)."""
    if windows_per_scale is None or windows_per_scale >= n:
        return list(range(n))
    return torch.linspace(0, n - 1, windows_per_scale).round().long().tolist()


@torch.inference_mode()
def baseline_encode(
    backbone: Backbone,
    x: torch.Tensor,
    scales: Sequence[int] = WinCLIPOptions().scales,
    windows_per_scale: int | None = None,
) -> tuple[Features | None, float]:
    """Encode a batch the straightforward way, one transformer call per image and per window.

    Args:
        x: (B, 3, S, S) normalised images.
        scales: window sizes in patches (stride 1).
        windows_per_scale: None runs every window; N runs N evenly spaced windows per scale and extrapolates.

    Returns:
        (Features of the batch — None when only a subset of windows ran —, seconds per image: measured, or the
        whole-image time plus n_k times the mean time of a window of scale k).
    """
    visual, grid, dev = backbone.visual, backbone.grid_size, backbone.device
    images, patches, windows = [], [], {k: [] for k in scales}
    per_image = []
    partial = False
    for b in range(x.shape[0]):
        sync(dev)
        t0 = time.perf_counter()
        tokens = _input_tokens(visual, x[b : b + 1].to(dev))
        pooled, toks = _embed(visual, tokens)
        images.append(pooled)
        patches.append(toks)
        sync(dev)
        seconds = time.perf_counter() - t0
        for k in scales:
            idx = window_indices(grid, k).tolist()
            chosen = _chosen_windows(len(idx), windows_per_scale)
            partial = partial or len(chosen) < len(idx)
            sync(dev)
            t0 = time.perf_counter()
            for w in chosen:
                seq = tokens[:, [0] + [p + 1 for p in idx[w]]]
                windows[k].append(_embed(visual, seq)[0])
            sync(dev)
            seconds += (time.perf_counter() - t0) * len(idx) / len(chosen)
        per_image.append(seconds)
    mean_seconds = sum(per_image) / len(per_image)
    if partial:
        return None, mean_seconds
    n = x.shape[0]
    feats = Features(
        torch.cat(images).float(),
        {k: torch.cat(v).reshape(n, -1, v[0].shape[-1]).float() for k, v in windows.items()},
        torch.cat(patches).float(),
        grid,
        1,
        {"patch_tokens": "ln_post", "encoder": "baseline"},
    )
    return feats, mean_seconds
