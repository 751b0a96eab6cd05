"""Zero-shot WinCLIP scoring (§3.2-3.3): text-based anomaly probabilities, harmonic aggregation, the zero-shot map.

For an embedding f and the class's text embeddings t = [t_normal, t_anomalous]::

    p(f) = exp(cos(f, t_a) / T) / (exp(cos(f, t_n) / T) + exp(cos(f, t_a) / T))        T: the temperature (0.07)

The image score is s0 = p(f_image). Window scores are carried to patches by harmonic averaging (eq. 1)::

    M_k[p] = |W_p| / sum_{w in W_p} 1 / s_w        W_p: the k x k windows that cover patch p

and the zero-shot map is the harmonic mean of s0 (broadcast over the grid) and the per-scale maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from winclip_lib.core.encoder import window_indices
from winclip_lib.core.features import Features


def anomaly_probability(features: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probability of the anomalous state.

    Args:
        features: (..., D) image or window embeddings (any norm).
        text: (2, D) rows [normal, anomalous] (any norm).

    Returns:
        (...) probabilities in (0, 1).
    """
    if text.ndim != 2 or text.shape[0] != 2:
        raise ValueError(f"text embeddings must be (2, D) rows [normal, anomalous], got {tuple(text.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    cos = F.normalize(features.float(), dim=-1) @ F.normalize(text.float().to(features.device), dim=-1).T
    return torch.softmax(cos / temperature, dim=-1)[..., 1]


def harmonic_aggregate(window_scores: torch.Tensor, grid: int, k: int, stride: int = 1) -> torch.Tensor:
    """Eq. 1: each patch gets the harmonic mean of the scores of the windows covering it.

    Args:
        window_scores: (B, n_k) one score per window, windows row-major by top-left patch.
        grid: G, patches per side. k, stride: window scale and stride.

    Returns:
        (B, G, G). A patch covered by no window (possible only with stride > 1) gets NaN.
    """
    idx = window_indices(grid, k, stride).to(window_scores.device)  # (n_k, k*k)
    b, n_k = window_scores.shape
    if n_k != idx.shape[0]:
        raise ValueError(f"expected {idx.shape[0]} windows of scale {k} on a {grid}x{grid} grid, got {n_k}")
    inv = (1.0 / window_scores.double())[:, :, None].expand(b, n_k, k * k).reshape(b, -1)
    total = torch.zeros(b, grid * grid, dtype=torch.float64, device=window_scores.device)
    total.index_add_(1, idx.reshape(-1), inv)
    count = torch.bincount(idx.reshape(-1), minlength=grid * grid).to(total)
    out = torch.where(count > 0, count / total, torch.full_like(total, math.nan))
    return out.reshape(b, grid, grid).to(window_scores.dtype)


def harmonic_mean(maps: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise harmonic mean of equally shaped tensors (a zero anywhere gives zero)."""
    return len(maps) / sum(1.0 / m.double() for m in maps).to(maps[0].dtype)


def zero_shot_maps(features: Features, text: torch.Tensor, temperature: float
                   ) -> dict[str, torch.Tensor | dict[int, torch.Tensor]]:
    """Zero-shot WinCLIP on encoded features.

    Returns:
        {"image_score": s0 (B,), "scale_maps": {k: (B, G, G)}, "map": (B, G, G) harmonic mean of s0 and every
        per-scale map}.
    """
    s0 = anomaly_probability(features.image, text, temperature)
    scale_maps = {
        k: harmonic_aggregate(anomaly_probability(w, text, temperature), features.grid, k, features.stride)
        for k, w in sorted(features.windows.items())
    }
    g = features.grid
    terms = [s0[:, None, None].expand(-1, g, g), *scale_maps.values()]
    return {"image_score": s0, "scale_maps": scale_maps, "map": harmonic_mean(terms)}


def upsample(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(B, G, G) -> (B, H, W) bilinear (align_corners=False), as the patch grid covers the image."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Optional Gaussian smoothing of (B, H, W) maps; sigma in pixels, 0 = off."""
    if sigma <= 0:
        return maps
    ks = 2 * math.ceil(4 * sigma) + 1
    return gaussian_blur(maps[:, None], [ks, ks], [sigma, sigma])[:, 0]
