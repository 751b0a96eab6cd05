"""WinCLIP+ few-shot association (§3.4, eqs. 2-4).

k normal reference images give three memories, every position of every reference pooled:
small-window embeddings R_2, mid-window embeddings R_3 and patch tokens R_p. A query feature f scores its distance to
the nearest reference feature (eq. 2)::

    d(f, R) = min_{r in R} (1 - cos(f, r)) / 2

Window distances are carried to patches by harmonic aggregation (eq. 1); patch distances already are per patch. The
visual map is the mean of the three maps (eq. 3); the final map is the mean of the zero-shot and visual maps, and the
image score is (s0 + max of the visual map) / 2 (eq. 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from winclip_lib.core.features import Features
from winclip_lib.core.scoring import harmonic_aggregate


@dataclass
class VisualMemory:
    """Unit-norm reference features: windows {k: (M_k, D)} with M_k = n_refs * n_k, patches (n_refs * G*G, W)."""

    windows: dict[int, torch.Tensor]
    patches: torch.Tensor
    n_refs: int

    @staticmethod
    def from_features(refs: Features) -> VisualMemory:
        if len(refs) == 0:
            raise ValueError("few-shot memory needs at least one reference image (got 0)")
        return VisualMemory(
            {k: F.normalize(w.float().reshape(-1, w.shape[-1]), dim=-1) for k, w in refs.windows.items()},
            F.normalize(refs.patches.float().reshape(-1, refs.patches.shape[-1]), dim=-1),
            len(refs),
        )


def nearest_distance(queries: torch.Tensor, memory: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Eq. 2: min over the memory of (1 - cos) / 2, as chunked matrix products.

    Args:
        queries: (..., C) query features (any norm).
        memory: (M, C) unit-norm reference features.

    Returns:
        (...) distances in [0, 1].
    """
    lead = queries.shape[:-1]
    q = F.normalize(queries.float().reshape(-1, queries.shape[-1]), dim=-1).to(memory.device)
    best = torch.cat([(q[i : i + chunk] @ memory.T).amax(dim=1) for i in range(0, q.shape[0], chunk)])
    return ((1.0 - best) / 2.0).clamp_(0.0, 1.0).reshape(lead)


def few_shot_maps(features: Features, memory: VisualMemory) -> dict[str, torch.Tensor | dict[int, torch.Tensor]]:
    """Visual maps of a query batch against the reference memory.

    Returns:
        {"scale_maps": {k: (B, G, G)}, "patch_map": (B, G, G), "map": (B, G, G) the mean of them all (eq. 3)}.
    """
    g = features.grid
    missing = set(features.windows) - set(memory.windows)
    if missing:
        raise ValueError(f"memory has no windows of scale(s) {sorted(missing)}; refit with the same scales")
    scale_maps = {
        k: harmonic_aggregate(nearest_distance(w, memory.windows[k]), g, k, features.stride)
        for k, w in sorted(features.windows.items())
    }
    patch_map = nearest_distance(features.patches, memory.patches).reshape(-1, g, g)
    visual = torch.stack([*scale_maps.values(), patch_map]).mean(dim=0)
    return {"scale_maps": scale_maps, "patch_map": patch_map, "map": visual}


def fuse(zero_shot_map: torch.Tensor, image_score: torch.Tensor, visual_map: torch.Tensor
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 3-4: final map (Z + V) / 2 and image score (s0 + max V) / 2.

    Args:
        zero_shot_map, visual_map: (B, G, G). image_score: (B,) s0.
    """
    final_map = (zero_shot_map + visual_map) / 2.0
    score = (image_score + visual_map.flatten(1).amax(dim=1)) / 2.0
    return final_map, score
