"""Zero-shot scoring: softmax probability, eq. 1 against a brute-force loop, the zero-shot map, and every named
variant against its formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from winclip_lib.core.encoder import window_masks
from winclip_lib.core.features import Features
from winclip_lib.core.scoring import (
    IMAGE_SCORES,
    anomaly_probability,
    harmonic_aggregate,
    harmonic_mean,
    smooth,
    upsample,
    zero_shot_image_score,
    zero_shot_maps,
)


def test_anomaly_probability_is_the_softmax_of_scaled_cosines():
    g = torch.Generator().manual_seed(0)
    f, t = torch.randn(5, 16, generator=g), torch.randn(2, 16, generator=g)
    p = anomaly_probability(f, t, temperature=0.07)
    for i in range(5):
        c = [torch.dot(f[i], t[j]) / (f[i].norm() * t[j].norm()) for j in range(2)]
        e = [torch.exp(cj / 0.07) for cj in c]
        assert p[i].item() == pytest.approx((e[1] / (e[0] + e[1])).item(), rel=1e-5)
    # an embedding equal to the anomalous text is anomalous, equal to the normal one is normal
    assert anomaly_probability(t[1:], t, 0.07).item() > 0.5 > anomaly_probability(t[:1], t, 0.07).item()
    with pytest.raises(ValueError, match=r"\(2, D\)"):
        anomaly_probability(f, torch.randn(3, 16), 0.07)


@pytest.mark.parametrize(("grid", "k", "stride"), [(15, 2, 1), (15, 3, 1), (6, 3, 1), (7, 3, 2)])
def test_harmonic_aggregation_matches_brute_force(grid, k, stride):
    masks = window_masks(grid, k, stride)
    g = torch.Generator().manual_seed(grid + k)
    scores = torch.rand(3, masks.shape[0], generator=g) * 0.98 + 0.01
    got = harmonic_aggregate(scores, grid, k, stride)
    for b in range(3):
        for i in range(grid):
            for j in range(grid):
                cover = [w for w in range(masks.shape[0]) if masks[w, i, j]]
                if not cover:
                    assert torch.isnan(got[b, i, j])
                    continue
                expected = len(cover) / sum(1.0 / scores[b, w].item() for w in cover)
                assert got[b, i, j].item() == pytest.approx(expected, rel=1e-5)


def test_harmonic_aggregation_of_a_constant_is_that_constant():
    s = torch.full((1, 196), 0.3)
    torch.testing.assert_close(harmonic_aggregate(s, 15, 2), torch.full((1, 15, 15), 0.3))
    with pytest.raises(ValueError, match="expected 196 windows"):
        harmonic_aggregate(torch.rand(1, 100), 15, 2)


def test_zero_shot_map_is_harmonic_of_image_score_and_scale_maps():
    g = torch.Generator().manual_seed(3)
    feats = Features(
        image=torch.randn(2, 8, generator=g),
        windows={2: torch.randn(2, 196, 8, generator=g), 3: torch.randn(2, 169, 8, generator=g)},
        patches=torch.randn(2, 225, 12, generator=g),
        grid=15,
    )
    text = torch.randn(2, 8, generator=g)
    out = zero_shot_maps(feats, text, temperature=0.07)
    s0 = anomaly_probability(feats.image, text, 0.07)
    torch.testing.assert_close(out["image_score"], s0)
    m2 = harmonic_aggregate(anomaly_probability(feats.windows[2], text, 0.07), 15, 2)
    m3 = harmonic_aggregate(anomaly_probability(feats.windows[3], text, 0.07), 15, 3)
    torch.testing.assert_close(out["scale_maps"][2], m2)
    expected = 3.0 / (1.0 / s0[:, None, None] + 1.0 / m2 + 1.0 / m3)
    torch.testing.assert_close(out["map"], expected, rtol=1e-5, atol=1e-6)
    # the harmonic mean never exceeds the smallest of its terms' maximum and lies between min and max
    lo = torch.minimum(torch.minimum(m2, m3), s0[:, None, None].expand_as(m2))
    hi = torch.maximum(torch.maximum(m2, m3), s0[:, None, None].expand_as(m2))
    assert (out["map"] >= lo - 1e-6).all() and (out["map"] <= hi + 1e-6).all()


def test_harmonic_mean_with_a_zero_is_zero():
    assert harmonic_mean([torch.tensor([0.0, 0.5]), torch.tensor([0.5, 0.5])]).tolist() == [0.0, 0.5]


def test_upsample_and_smooth():
    m = torch.rand(2, 15, 15)
    up = upsample(m, 240)
    assert up.shape == (2, 240, 240)
    assert up.max() <= m.max() + 1e-6 and up.min() >= m.min() - 1e-6
    torch.testing.assert_close(upsample(torch.full((1, 15, 15), 0.4), 240), torch.full((1, 240, 240), 0.4))
    assert torch.equal(smooth(up, 0.0), up)
    s = smooth(up, 4.0)
    assert s.shape == up.shape and s.std() < up.std()


def test_upsample_into_reused_memory_is_interpolate_bit_for_bit():
    """The grid upsamples every group's maps into one tensor's memory: the numbers are F.interpolate's, the result
    lies in that memory, which grows when a larger result needs it (also once numpy has seen it: a storage numpy
    saw cannot be resized) and is reused, not renewed, for a smaller one."""
    g = torch.Generator().manual_seed(3)
    memory = torch.empty(0)
    pointers = []
    for shape, size in [((3, 15, 15), 240), ((7, 15, 15), 240), ((2, 16, 16), (100, 64)), ((5, 15, 15), 97)]:
        maps = torch.randn(*shape, generator=g) * 3
        out = upsample(maps, size, out=memory)
        hw = (size, size) if isinstance(size, int) else size
        assert torch.equal(out, F.interpolate(maps[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0])
        assert torch.equal(out, upsample(maps, size))
        assert out.untyped_storage().data_ptr() == memory.untyped_storage().data_ptr()
        assert memory.numel() >= out.numel()
        out.numpy()  # what the metrics do on the CPU
        pointers.append(memory.untyped_storage().data_ptr())
    assert pointers[1] != pointers[0]  # grown for 7 maps after 3
    assert pointers[2] == pointers[3] == pointers[1]  # the smaller ones reuse it


# ------------------------------------------------------------------------------------------- the variants


def _loop_aggregate(scores: torch.Tensor, k: int, how: str) -> torch.Tensor:
    """Per patch, the windows covering it by a plain loop over window masks: harmonic or arithmetic mean."""
    masks = window_masks(15, k)
    out = torch.zeros(scores.shape[0], 15, 15, dtype=torch.float64)
    for i in range(15):
        for j in range(15):
            covering = scores[:, masks[:, i, j]].double()
            out[:, i, j] = covering.shape[1] / (1 / covering).sum(1) if how == "harmonic" else covering.mean(1)
    return out


def _variant_features(seed: int = 5) -> tuple[Features, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = Features(
        image=torch.randn(2, 8, generator=g),
        windows={2: torch.randn(2, 196, 8, generator=g), 3: torch.randn(2, 169, 8, generator=g)},
        patches=torch.randn(2, 225, 12, generator=g),
        grid=15,
        extra={"crops": torch.randn(2, 5, 8, generator=g), "tiles.2": torch.randn(2, 196, 8, generator=g),
               "tiles.3": torch.randn(2, 169, 8, generator=g)},
    )
    return feats, torch.randn(2, 8, generator=g)


def test_mean_aggregation_and_the_map_without_the_image_term():
    feats, text = _variant_features()
    p = {k: anomaly_probability(w, text, 0.07) for k, w in feats.windows.items()}
    out = zero_shot_maps(feats, text, 0.07, window_aggregation="mean", image_term=False)
    for k in (2, 3):
        torch.testing.assert_close(out["scale_maps"][k].double(), _loop_aggregate(p[k], k, "mean"))
    expected = 2.0 / (1.0 / out["scale_maps"][2].double() + 1.0 / out["scale_maps"][3].double())
    torch.testing.assert_close(out["map"].double(), expected)


def test_normal_complement_map_is_one_minus_the_harmonic_mean_of_the_normal_probabilities():
    feats, text = _variant_features()
    out = zero_shot_maps(feats, text, 0.01, zero_shot_map="normal_complement")
    normal = {k: 1 - anomaly_probability(w, text, 0.01).double() for k, w in feats.windows.items()}
    reciprocal_means = [_loop_aggregate(1 / normal[k], k, "mean") for k in (2, 3)]  # mean over windows of 1/p_n
    expected = 1 - 1 / ((reciprocal_means[0] + reciprocal_means[1]) / 2)
    torch.testing.assert_close(out["map"].double(), expected, rtol=1e-5, atol=1e-6)


def test_tiles_and_projected_patch_tokens_as_dense_features():
    feats, text = _variant_features()
    tiles = zero_shot_maps(feats, text, 0.07, dense_features="tiles")
    p2 = anomaly_probability(feats.extra["tiles.2"], text, 0.07)
    torch.testing.assert_close(tiles["scale_maps"][2].double(), _loop_aggregate(p2, 2, "harmonic"))
    feats.meta["patch_tokens"] = "ln_post"
    projection = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))
    patch = zero_shot_maps(feats, text, 0.07, dense_features="patch_tokens", projection=projection, image_term=False)
    expected = anomaly_probability(feats.patches @ projection, text, 0.07).reshape(2, 15, 15)
    torch.testing.assert_close(patch["map"], expected)
    with pytest.raises(ValueError, match="tiles of scale"):
        zero_shot_maps(Features(feats.image, feats.windows, feats.patches, 15), text, 0.07, dense_features="tiles")


def test_every_zero_shot_image_score_formula():
    feats, text = _variant_features()
    zs = zero_shot_maps(feats, text, 0.07)
    s0, z = zs["image_score"], zs["map"]
    p = {k: anomaly_probability(w, text, 0.07) for k, w in feats.windows.items()}
    crops = anomaly_probability(feats.extra["crops"], text, 0.07)
    expected = {
        "s0": s0,
        "map_max": z.flatten(1).max(1).values,
        "s0_map_max": (s0 + z.flatten(1).max(1).values) / 2,
        "s0_windows_mean": (s0 + p[2].mean(1) + p[3].mean(1)) / 3,
        "s0_windows_max": (s0 + p[2].max(1).values + p[3].max(1).values) / 3,
        "multicrop": (s0 + crops.sum(1)) / 6,
    }
    assert set(expected) == set(IMAGE_SCORES)
    for name, value in expected.items():
        torch.testing.assert_close(zero_shot_image_score(zs, feats, text, 0.07, name), value, msg=name)
    with pytest.raises(ValueError, match="unknown image score"):
        zero_shot_image_score(zs, feats, text, 0.07, "s1")
