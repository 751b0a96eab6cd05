"""WinCLIP+: eq. 2 against brute force, memories, the visual map and the fusion formulas (eqs. 3-4)."""

from __future__ import annotations

import pytest
import torch

from winclip_lib.core.encoder import window_masks
from winclip_lib.core.features import Features
from winclip_lib.core.fewshot import (
    FUSIONS,
    ReferenceMaxima,
    VisualMemory,
    few_shot_maps,
    fuse,
    nearest_distance,
    unit_features,
)
from winclip_lib.core.scoring import harmonic_aggregate


def _features(n: int, seed: int) -> Features:
    g = torch.Generator().manual_seed(seed)
    return Features(
        image=torch.randn(n, 8, generator=g),
        windows={2: torch.randn(n, 196, 8, generator=g), 3: torch.randn(n, 169, 8, generator=g)},
        patches=torch.randn(n, 225, 12, generator=g),
        grid=15,
    )


def test_nearest_distance_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    q, mem = torch.randn(2, 30, 6, generator=g), torch.randn(50, 6, generator=g)
    memn = torch.nn.functional.normalize(mem, dim=-1)
    got = nearest_distance(q, memn, chunk=7)
    for b in range(2):
        for i in range(30):
            d = min((1 - torch.dot(q[b, i], mem[j]) / (q[b, i].norm() * mem[j].norm())).item() / 2 for j in range(50))
            assert got[b, i].item() == pytest.approx(d, abs=1e-6)
    assert nearest_distance(memn[:3], memn).abs().max() < 1e-6  # a reference matches itself


def test_memory_pools_every_position_of_every_reference():
    refs = _features(3, 1)
    mem = VisualMemory.from_features(refs)
    assert mem.windows[2].shape == (3 * 196, 8) and mem.windows[3].shape == (3 * 169, 8)
    assert mem.patches.shape == (3 * 225, 12) and mem.n_refs == 3
    torch.testing.assert_close(mem.patches.norm(dim=-1), torch.ones(675))
    with pytest.raises(ValueError, match="at least one reference"):
        VisualMemory.from_features(refs[0:0])


def test_visual_maps_and_fusion():
    refs, query = _features(2, 1), _features(2, 2)
    mem = VisualMemory.from_features(refs)
    out = few_shot_maps(query, mem)
    d2 = nearest_distance(query.windows[2], mem.windows[2])
    torch.testing.assert_close(out["scale_maps"][2], harmonic_aggregate(d2, 15, 2))
    torch.testing.assert_close(out["patch_map"], nearest_distance(query.patches, mem.patches).reshape(2, 15, 15))
    expected_visual = (out["scale_maps"][2] + out["scale_maps"][3] + out["patch_map"]) / 3
    torch.testing.assert_close(out["map"], expected_visual)

    z, s0 = torch.rand(2, 15, 15), torch.rand(2)
    final, score = fuse(z, s0, out["map"])
    torch.testing.assert_close(final, (z + out["map"]) / 2)
    torch.testing.assert_close(score, (s0 + out["map"].flatten(1).max(dim=1).values) / 2)


def test_a_reference_scored_against_itself_has_a_zero_visual_map():
    refs = _features(2, 5)
    out = few_shot_maps(refs, VisualMemory.from_features(refs))
    assert out["map"].abs().max() < 1e-6


def test_scale_mismatch_is_a_clear_error():
    refs = _features(1, 1)
    mem = VisualMemory({2: refs.windows[2][0]}, refs.patches[0], 1)
    with pytest.raises(ValueError, match="scale"):
        few_shot_maps(_features(1, 2), mem)


def test_memories_aggregation_fusions_and_scores_by_name():
    """Each named WinCLIP+ variant against its formula: the memories that take part, arithmetic window
    aggregation, the four fusions and the two image scores."""
    query, refs = _features(2, 3), _features(3, 4)
    memory = VisualMemory.from_features(refs)
    full = few_shot_maps(query, memory)
    windows_only = few_shot_maps(query, memory, memories=("windows",))
    patches_only = few_shot_maps(query, memory, memories=("patches",))
    torch.testing.assert_close(windows_only["map"], (full["scale_maps"][2] + full["scale_maps"][3]) / 2)
    assert windows_only["patch_map"] is None and patches_only["scale_maps"] == {}
    torch.testing.assert_close(patches_only["map"], full["patch_map"])
    mean_agg = few_shot_maps(query, memory, visual_aggregation="mean")
    d2 = nearest_distance(query.windows[2], memory.windows[2])
    masks = window_masks(15, 2)
    brute = torch.stack([d2[:, masks[:, i, j]].mean(1) for i in range(15) for j in range(15)], 1).reshape(2, 15, 15)
    torch.testing.assert_close(mean_agg["scale_maps"][2], brute)
    with pytest.raises(ValueError, match="memories"):
        few_shot_maps(query, memory, memories=("image",))

    g = torch.Generator().manual_seed(9)
    z, v, s = torch.rand(2, 15, 15, generator=g), torch.rand(2, 15, 15, generator=g), torch.rand(2, generator=g)
    vmax = v.flatten(1).max(1).values
    expected_maps = {"mean": (z + v) / 2, "sum": z + v, "harmonic": 1 / (1 / z + 1 / v), "visual": v}
    assert set(expected_maps) == set(FUSIONS)
    for fusion, expected in expected_maps.items():
        final, score = fuse(z, s, v, fusion)
        torch.testing.assert_close(final, expected, msg=fusion)
        torch.testing.assert_close(score, vmax if fusion == "visual" else (s + vmax) / 2, msg=fusion)
        _, top = fuse(z, s, v, fusion, "map_max")
        torch.testing.assert_close(top, expected.flatten(1).max(1).values, msg=fusion)
    # Z + V ranks every pixel and image as (Z + V) / 2 does: the AnomalyCLIP authors' sum changes no metric
    assert torch.equal(fuse(z, s, v, "sum")[0].flatten().argsort(), fuse(z, s, v, "mean")[0].flatten().argsort())


@pytest.mark.parametrize("memories", [("windows", "patches"), ("windows",), ("patches",)])
def test_reference_maxima_serve_every_draw_bit_for_bit(memories):
    """The best of each reference's bests is the nearest feature of their memory: every draw of the candidates
    gives exactly the maps of a memory fitted on it (the grid scores every k and seed this way)."""
    queries, refs = _features(3, 10), _features(6, 11)
    maxima = ReferenceMaxima.compute(unit_features(queries), unit_features(refs), memories)
    for draw in ([0], [4, 1], [5, 2, 3, 0], [1, 1]):
        idx = torch.tensor(draw)
        want = few_shot_maps(queries, VisualMemory.from_features(refs[idx]), memories)
        got = maxima.few_shot_maps(idx)
        assert torch.equal(got["map"], want["map"]), draw
        assert set(got["scale_maps"]) == set(want["scale_maps"])
        for k in want["scale_maps"]:
            assert torch.equal(got["scale_maps"][k], want["scale_maps"][k])
        assert (got["patch_map"] is None) == (want["patch_map"] is None)
