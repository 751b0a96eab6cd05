"""WinCLIP+ few-shot association (§3.4, eqs. 2-4).

k normal reference images give three memories, every position of every reference pooled:
small-window embeddings R_2, mid-window embeddings R_3 and patch tokens R_p. A query feature f scores its distance to
the nearest reference feature (eq. 2)::

    d(f, R) = min_{r in R} (1 - cos(f, r)) / 2

Window distances are carried to patches by harmonic aggregation (eq. 1); patch distances already are per patch. The
visual map is the mean of the three maps (eq. 3); the final map is the mean of the zero-shot and visual maps, and the
image score is (s0 + max of the visual map) / 2 (eq. 4).

Variants (option names of :class:`~winclip_lib.core.options.WinCLIPOptions`): ``memories`` keeps the window
memories, the patch memory or both; ``visual_aggregation="mean"`` averages window distances arithmetically;
``fusion`` is ``"mean"`` ((Z + V) / 2), ``"sum"`` (Z + V, the AnomalyCLIP authors' code — the same ranking),
``"harmonic"`` (1 / (1/Z + 1/V), caoyunkang/WinClip) or ``"visual"`` (V alone: no language term, score max V);
``fewshot_image_score`` is ``"mean"`` ((s + max V) / 2, s the zero-shot image score) or ``"map_max"`` (the maximum
of the final map).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from winclip_lib.core.choices import unknown_choice
from winclip_lib.core.features import Features
from winclip_lib.core.scoring import aggregate


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


def unit_features(features: Features) -> Features:
    """The features few-shot scoring compares (windows and patch tokens) made unit-norm once, exactly as
    :func:`nearest_distance` and :meth:`VisualMemory.from_features` would normalise them (row by row) — so queries
    scored against many memories, or references drawn into many memories (:class:`ReferenceMaxima`), are
    normalised once. The image embedding and the extras are kept as they are."""
    def unit(t: torch.Tensor) -> torch.Tensor:
        return F.normalize(t.float().reshape(-1, t.shape[-1]), dim=-1).reshape(t.shape)

    return Features(features.image, {k: unit(w) for k, w in features.windows.items()}, unit(features.patches),
                    features.grid, features.stride, dict(features.meta), dict(features.extra))


def _distance(best_cos: torch.Tensor) -> torch.Tensor:
    """Eq. 2 from the best cosine: (1 - cos) / 2, in [0, 1]."""
    return ((1.0 - best_cos) / 2.0).clamp_(0.0, 1.0)


def _best_cosine(q: torch.Tensor, memory: torch.Tensor, chunk: int) -> torch.Tensor:
    """(N,) max over the rows of ``memory`` (M, C) of q (N, C) @ memory.T, as chunked matrix products."""
    return torch.cat([(q[i : i + chunk] @ memory.T).amax(dim=1) for i in range(0, q.shape[0], chunk)])


def nearest_distance(queries: torch.Tensor, memory: torch.Tensor, chunk: int = 4096, normalized: bool = False
                     ) -> torch.Tensor:
    """Eq. 2: min over the memory of (1 - cos) / 2, as chunked matrix products.

    Args:
        queries: (..., C) query features (any norm; unit-norm already when ``normalized``).
        memory: (M, C) unit-norm reference features.

    Returns:
        (...) distances in [0, 1].
    """
    lead = queries.shape[:-1]
    q = queries.float().reshape(-1, queries.shape[-1])
    q = (q if normalized else F.normalize(q, dim=-1)).to(memory.device)
    return _distance(_best_cosine(q, memory, chunk)).reshape(lead)


MEMORIES = ("windows", "patches")
FUSIONS = ("mean", "sum", "harmonic", "visual")
FEWSHOT_IMAGE_SCORES = ("mean", "map_max")


def _check_memories(memories: tuple[str, ...]) -> None:
    unknown = set(memories) - set(MEMORIES)
    if not memories or unknown:
        raise ValueError(f"memories must name one or more of {', '.join(MEMORIES)}, got {list(memories)}")


def _visual_maps(window_distances: dict[int, torch.Tensor], patch_distances: torch.Tensor | None, grid: int,
                 stride: int, visual_aggregation: str) -> dict[str, torch.Tensor | dict[int, torch.Tensor]]:
    """Eqs. 1 and 3: window distances {k: (B, n_k)} carried to patches, the patch distances (B, G*G) as a map, and
    their mean."""
    scale_maps = {k: aggregate(d, grid, k, stride, visual_aggregation) for k, d in sorted(window_distances.items())}
    patch_map = None if patch_distances is None else patch_distances.reshape(-1, grid, grid)
    parts = [*scale_maps.values(), *([] if patch_map is None else [patch_map])]
    visual = torch.stack(parts).mean(dim=0)
    return {"scale_maps": scale_maps, "patch_map": patch_map, "map": visual}


def few_shot_maps(features: Features, memory: VisualMemory, memories: tuple[str, ...] = MEMORIES,
                  visual_aggregation: str = "harmonic", normalized: bool = False
                  ) -> dict[str, torch.Tensor | dict[int, torch.Tensor]]:
    """Visual maps of a query batch against the reference memory.

    Args:
        memories: which memories take part: "windows" (one per scale) and/or "patches".
        visual_aggregation: window distances to patches, "harmonic" (eq. 1) or "mean".
        normalized: the windows and patches of ``features`` are unit-norm already (:func:`unit_features`).

    Returns:
        {"scale_maps": {k: (B, G, G)}, "patch_map": (B, G, G) or None, "map": (B, G, G) the mean of the maps
        taking part (eq. 3)}.
    """
    _check_memories(memories)
    windows: dict[int, torch.Tensor] = {}
    if "windows" in memories:
        missing = set(features.windows) - set(memory.windows)
        if missing:
            raise ValueError(f"memory has no windows of scale(s) {sorted(missing)}; refit with the same scales")
        windows = {k: nearest_distance(w, memory.windows[k], normalized=normalized)
                   for k, w in features.windows.items()}
    patches = (nearest_distance(features.patches, memory.patches, normalized=normalized)
               if "patches" in memories else None)
    return _visual_maps(windows, patches, features.grid, features.stride, visual_aggregation)


@dataclass
class ReferenceMaxima:
    """For R candidate references and a batch of B queries: per reference r, the best cosine of every query window
    (each scale) and patch over r's own features — (R, B, n_k) and (R, B, G*G).

    The nearest feature of a memory made of any subset of the references is the best of their bests (a maximum of
    maxima: nothing is rounded), so one pass over the candidates serves every draw of references — WinCLIP+ with
    every k and seed of a grid — with the distances of eq. 2 :func:`few_shot_maps` would compute from their memory.
    (Each reference's products are the chunked matrix products of :func:`nearest_distance`, against that
    reference's rows — one product against every candidate's rows at once measured 2.6 times slower on the CPU, its
    maximum then read from memory instead of cache; tested equal, bit for bit, to the products against a whole
    memory.)
    """

    windows: dict[int, torch.Tensor]
    patches: torch.Tensor | None
    grid: int
    stride: int

    @staticmethod
    def compute(queries: Features, references: Features, memories: tuple[str, ...] = MEMORIES,
                chunk: int = 4096) -> ReferenceMaxima:
        """From unit-norm queries and unit-norm references (:func:`unit_features`)."""
        _check_memories(memories)
        if len(references) == 0:
            raise ValueError("few-shot memory needs at least one reference image (got 0)")

        def per_reference(q: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
            flat = q.float().reshape(-1, q.shape[-1]).to(refs.device)
            best = torch.stack([_best_cosine(flat, r.float(), chunk) for r in refs])
            return best.reshape(len(refs), *q.shape[:-1])

        windows = {}
        if "windows" in memories:
            missing = set(queries.windows) - set(references.windows)
            if missing:
                raise ValueError(f"the references have no windows of scale(s) {sorted(missing)}")
            windows = {k: per_reference(w, references.windows[k]) for k, w in queries.windows.items()}
        patches = per_reference(queries.patches, references.patches) if "patches" in memories else None
        return ReferenceMaxima(windows, patches, queries.grid, queries.stride)

    @staticmethod
    def cat(parts: Sequence[ReferenceMaxima]) -> ReferenceMaxima:
        """The maxima of several query batches against the same candidates as one batch, in order."""
        if not parts:
            raise ValueError("ReferenceMaxima.cat needs at least one part")
        first = parts[0]
        if any(set(p.windows) != set(first.windows) or (p.patches is None) != (first.patches is None)
               or p.patches is not None and p.patches.shape[0] != first.patches.shape[0] for p in parts):
            raise ValueError("the parts were compared with other references or memories")
        return ReferenceMaxima({k: torch.cat([p.windows[k] for p in parts], dim=1) for k in first.windows},
                               None if first.patches is None else torch.cat([p.patches for p in parts], dim=1),
                               first.grid, first.stride)

    @property
    def device(self) -> torch.device:
        return (self.patches if self.patches is not None else next(iter(self.windows.values()))).device

    def few_shot_maps(self, references: torch.Tensor, visual_aggregation: str = "harmonic"
                      ) -> dict[str, torch.Tensor | dict[int, torch.Tensor]]:
        """:func:`few_shot_maps` of the memory of the references at the positions ``references`` (a LongTensor)."""
        return self.few_shot_maps_of([references], visual_aggregation)

    def few_shot_maps_of(self, draws: Sequence[torch.Tensor], visual_aggregation: str = "harmonic"
                         ) -> dict[str, torch.Tensor | dict[int, torch.Tensor]]:
        """:meth:`few_shot_maps` of several draws at once (S LongTensors of positions): the maps of draw s are rows
        s B .. (s + 1) B - 1 of each output (B queries), the same numbers as one draw at a time (every step acts on
        each row alone)."""
        windows = {k: torch.cat([_distance(m[d].amax(dim=0)) for d in draws]) for k, m in self.windows.items()}
        patches = None if self.patches is None else torch.cat([_distance(self.patches[d].amax(dim=0)) for d in draws])
        return _visual_maps(windows, patches, self.grid, self.stride, visual_aggregation)


def fuse(zero_shot_map: torch.Tensor, image_score: torch.Tensor, visual_map: torch.Tensor, fusion: str = "mean",
         fewshot_image_score: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 3-4: final map (Z + V) / 2 and image score (s0 + max V) / 2, or a named variant (module docstring).

    Args:
        zero_shot_map, visual_map: (B, G, G). image_score: (B,) the zero-shot image score (s0 by default).
    """
    if fusion == "mean":
        final_map = (zero_shot_map + visual_map) / 2.0
    elif fusion == "sum":
        final_map = zero_shot_map + visual_map
    elif fusion == "harmonic":
        final_map = 1.0 / (1.0 / zero_shot_map + 1.0 / visual_map)
    elif fusion == "visual":
        final_map = visual_map
    else:
        raise unknown_choice("fusion", fusion, FUSIONS)
    max_visual = visual_map.flatten(1).amax(dim=1)
    if fewshot_image_score == "map_max":
        score = final_map.flatten(1).amax(dim=1)
    elif fewshot_image_score == "mean":
        score = max_visual if fusion == "visual" else (image_score + max_visual) / 2.0
    else:
        raise unknown_choice("few-shot image score", fewshot_image_score, FEWSHOT_IMAGE_SCORES)
    return final_map, score
