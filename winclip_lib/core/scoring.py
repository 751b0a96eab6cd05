"""Zero-shot WinCLIP scoring (§3.2-3.3): text-based anomaly probabilities, window aggregation, the zero-shot map and
the zero-shot image score — the paper's choices by default, the public reproductions' and the ablations' by name.

For an embedding f and the class's text embeddings t = [t_normal, t_anomalous]::

    p(f) = exp(cos(f, t_a) / T) / (exp(cos(f, t_n) / T) + exp(cos(f, t_a) / T))        T: the temperature (0.07)

The image score is s0 = p(f_image). Window scores are carried to patches by harmonic averaging (eq. 1)::

    M_k[p] = |W_p| / sum_{w in W_p} 1 / s_w        W_p: the k x k windows that cover patch p

and the zero-shot map is the harmonic mean of s0 (broadcast over the grid) and the per-scale maps.

Variants (:func:`zero_shot_maps`, :func:`zero_shot_image_score`; the option names are those of
:class:`~winclip_lib.core.options.WinCLIPOptions`):

- ``window_aggregation="mean"``: M_k[p] = mean_{w in W_p} s_w (the ablation "without harmonic averaging");
- ``image_term=False``: the zero-shot map is the harmonic mean of the per-scale maps only;
- ``zero_shot_map="normal_complement"``: Z[p] = 1 - 1 / mean_k A_k[p], A_k[p] = mean_{w in W_p} 1 / (1 - s_w) —
  one minus a harmonic mean of the *normal* probabilities, with no image term (caoyunkang/WinClip);
- ``dense_features="tiles"``: the per-scale maps from the tiles (each window region cropped, resized to the input
  size and encoded whole — the paper's image-tiling baseline) instead of the masked windows;
  ``dense_features="patch_tokens"``: one map of p(proj(patch token)) per patch (the raw-patch-token baseline).
- the image score: ``s0``; ``s0_map_max`` = (s0 + max Z) / 2; ``s0_windows_mean`` / ``s0_windows_max`` = the
  mean of s0 and, per scale, the mean / max of the window scores; ``multicrop`` = the mean of s0 and p of the five
  multi-crop views (:func:`~winclip_lib.core.encoder.crop_boxes`); ``map_max`` = max Z.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from winclip_lib.core.choices import check_choice, unknown_choice
from winclip_lib.core.encoder import window_indices
from winclip_lib.core.features import Features

WINDOW_AGGREGATIONS = ("harmonic", "mean")
ZERO_SHOT_MAPS = ("harmonic", "normal_complement")
DENSE_FEATURES = ("windows", "tiles", "patch_tokens")
IMAGE_SCORES = ("s0", "s0_map_max", "s0_windows_mean", "s0_windows_max", "multicrop", "map_max")


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


def mean_aggregate(window_scores: torch.Tensor, grid: int, k: int, stride: int = 1) -> torch.Tensor:
    """Eq. 1 with the arithmetic mean: each patch gets the mean score of the windows covering it. (B, n_k) ->
    (B, G, G); NaN where no window covers a patch."""
    idx = window_indices(grid, k, stride).to(window_scores.device)
    b, n_k = window_scores.shape
    if n_k != idx.shape[0]:
        raise ValueError(f"expected {idx.shape[0]} windows of scale {k} on a {grid}x{grid} grid, got {n_k}")
    vals = window_scores.double()[:, :, None].expand(b, n_k, k * k).reshape(b, -1)
    total = torch.zeros(b, grid * grid, dtype=torch.float64, device=window_scores.device)
    total.index_add_(1, idx.reshape(-1), vals)
    count = torch.bincount(idx.reshape(-1), minlength=grid * grid).to(total)
    out = torch.where(count > 0, total / count, torch.full_like(total, math.nan))
    return out.reshape(b, grid, grid).to(window_scores.dtype)


def aggregate(window_scores: torch.Tensor, grid: int, k: int, stride: int = 1, how: str = "harmonic"
              ) -> torch.Tensor:
    """Window scores (B, n_k) to patches (B, G, G): ``how`` is "harmonic" (eq. 1) or "mean"."""
    if how == "harmonic":
        return harmonic_aggregate(window_scores, grid, k, stride)
    if how == "mean":
        return mean_aggregate(window_scores, grid, k, stride)
    raise unknown_choice("window aggregation", how, WINDOW_AGGREGATIONS)


def harmonic_mean(maps: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise harmonic mean of equally shaped tensors (a zero anywhere gives zero)."""
    return len(maps) / sum(1.0 / m.double() for m in maps).to(maps[0].dtype)


def _dense(features: Features, dense_features: str) -> dict[int, torch.Tensor]:
    """The per-scale embeddings the zero-shot map is built from: windows or tiles, {k: (B, n_k, D)}."""
    if dense_features == "windows":
        return dict(sorted(features.windows.items()))
    if dense_features == "tiles":
        missing = [k for k in features.windows if f"tiles.{k}" not in features.extra]
        if missing:
            raise ValueError(f"dense_features='tiles' needs the tiles of scale(s) {missing}: encode with tile_scales")
        return {k: features.extra[f"tiles.{k}"] for k in sorted(features.windows)}
    raise unknown_choice("dense features", dense_features, DENSE_FEATURES)


def projected_patch_tokens(features: Features, projection: torch.Tensor | None) -> torch.Tensor:
    """The patch tokens after ``ln_post`` mapped into the joint space, (B, G*G, D) — the raw-patch-token baseline."""
    tokens = features.patches if features.patch_tokens == "ln_post" else features.extra.get("patches.ln_post")
    if tokens is None:
        raise ValueError("dense_features='patch_tokens' needs the ln_post patch tokens: encode with them")
    return tokens if projection is None else tokens.float() @ projection.float().to(tokens.device)


def zero_shot_maps(features: Features, text: torch.Tensor, temperature: float, *, window_aggregation: str = "harmonic",
                   image_term: bool = True, zero_shot_map: str = "harmonic", dense_features: str = "windows",
                   projection: torch.Tensor | None = None) -> dict[str, torch.Tensor | dict[int, torch.Tensor]]:
    """Zero-shot WinCLIP on encoded features (the paper's eq. 1 and zero-shot map by default; the variants of the
    module docstring by name).

    Args:
        projection: (W, D) the ViT's output projection, for ``dense_features="patch_tokens"``.

    Returns:
        {"image_score": s0 (B,), "window_scores": {k: (B, n_k)}, "scale_maps": {k: (B, G, G)}, "map": (B, G, G)}.
    """
    check_choice("zero-shot map", zero_shot_map, ZERO_SHOT_MAPS)
    s0 = anomaly_probability(features.image, text, temperature)
    g = features.grid
    if dense_features == "patch_tokens":
        patch = anomaly_probability(projected_patch_tokens(features, projection), text, temperature).reshape(-1, g, g)
        terms = [s0[:, None, None].expand(-1, g, g), patch] if image_term else [patch]
        return {"image_score": s0, "window_scores": {}, "scale_maps": {1: patch}, "map": harmonic_mean(terms)}
    window_scores = {k: anomaly_probability(w, text, temperature) for k, w in _dense(features, dense_features).items()}
    if zero_shot_map == "normal_complement":
        reciprocal = {k: aggregate(1.0 / (1.0 - s), g, k, features.stride, "mean") for k, s in window_scores.items()}
        scale_maps = {k: 1.0 - 1.0 / r for k, r in reciprocal.items()}  # one minus the harmonic mean of p_normal
        z = 1.0 - 1.0 / torch.stack(list(reciprocal.values())).mean(dim=0)
        return {"image_score": s0, "window_scores": window_scores, "scale_maps": scale_maps, "map": z}
    scale_maps = {k: aggregate(s, g, k, features.stride, window_aggregation) for k, s in window_scores.items()}
    terms = [s0[:, None, None].expand(-1, g, g)] if image_term else []
    terms += list(scale_maps.values())
    return {"image_score": s0, "window_scores": window_scores, "scale_maps": scale_maps, "map": harmonic_mean(terms)}


def zero_shot_image_score(zero_shot: dict, features: Features, text: torch.Tensor, temperature: float,
                          image_score: str = "s0") -> torch.Tensor:
    """The zero-shot image score (B,) of :func:`zero_shot_maps`' output, by name (see the module docstring)."""
    s0, windows = zero_shot["image_score"], zero_shot["window_scores"]
    if image_score == "s0":
        return s0
    if image_score == "map_max":
        return zero_shot["map"].flatten(1).amax(dim=1)
    if image_score == "s0_map_max":
        return (s0 + zero_shot["map"].flatten(1).amax(dim=1)) / 2.0
    if image_score in ("s0_windows_mean", "s0_windows_max"):
        pick = (lambda s: s.mean(dim=1)) if image_score.endswith("mean") else (lambda s: s.amax(dim=1))
        parts = [s0, *(pick(s) for _, s in sorted(windows.items()))]
        return torch.stack(parts).mean(dim=0)
    if image_score == "multicrop":
        if "crops" not in features.extra:
            raise ValueError("image_score='multicrop' needs the multi-crop views: encode with crops=True")
        views = anomaly_probability(features.extra["crops"], text, temperature)  # (B, 5)
        return torch.cat([s0[:, None], views], dim=1).mean(dim=1)
    raise unknown_choice("image score", image_score, IMAGE_SCORES)


def upsample(maps: torch.Tensor, size: int | tuple[int, int], out: torch.Tensor | None = None) -> torch.Tensor:
    """(B, G, G) -> (B, H, W) bilinear (align_corners=False), as the patch grid covers the image.

    ``out``: a 1-D float32 tensor on the maps' device (``torch.empty(0)`` at first) whose memory takes the result,
    returned as a view of it; given memory for fewer values, it is given new memory that holds them and at least
    twice what it had (its memory only grows). The numbers are :func:`torch.nn.functional.interpolate`'s, bit for
    bit (the same kernel); reusing one tensor across calls spares the fresh pages a new result costs (on the 2-core
    EPYC, 220 maps of 240 x 240: 21.5 ms into new memory, 9.0 ms into memory already touched)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if out is None:
        return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    n = maps.shape[0] * size[0] * size[1]
    if out.numel() < n:  # set_, not resize_: a storage once seen by numpy cannot be resized
        out.set_(torch.empty(max(n, 2 * out.numel()), dtype=torch.float32, device=maps.device))
    target = out[:n].view(maps.shape[0], 1, *size)
    return torch.ops.aten.upsample_bilinear2d.out(maps[:, None].float(), size, False, None, None, out=target)[:, 0]


def smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Optional Gaussian smoothing of (B, H, W) maps; sigma in pixels, 0 = off."""
    if sigma <= 0:
        return maps
    ks = 2 * math.ceil(4 * sigma) + 1
    return gaussian_blur(maps[:, None], [ks, ks], [sigma, sigma])[:, 0]
