"""The WinCLIP API: predict / fit end to end on the tiny model, preprocessing, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from winclip_lib import WinCLIP, preprocess
from winclip_lib.core.fewshot import few_shot_maps, fuse, unit_features
from winclip_lib.core.model import Queries
from winclip_lib.core.scoring import upsample, zero_shot_maps


def _rgb(seed: int, size: int = 300) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size + 20, 3), dtype=np.uint8)


def test_zero_shot_predict_is_s0_and_the_upsampled_zero_shot_map(tiny, images):
    model = WinCLIP(tiny, "bottle")
    pred = model.predict(images)
    assert pred.score.shape == (2,) and pred.map.shape == (2, 240, 240)
    feats = model.encode(images)
    zs = zero_shot_maps(feats, model.text, 0.07)
    torch.testing.assert_close(pred.score, zs["image_score"])
    torch.testing.assert_close(pred.map, upsample(zs["map"], 240))
    assert pred.visual_map is None and set(pred.scale_maps) == {2, 3}
    assert ((pred.map > 0) & (pred.map < 1)).all()


def test_few_shot_predict_fuses_text_and_visual(tiny, images):
    g = torch.Generator().manual_seed(9)
    refs = torch.randn(4, 3, 240, 240, generator=g)
    model = WinCLIP(tiny, "bottle").fit(refs)
    assert model.memory.n_refs == 4
    pred = model.predict(images)
    feats = model.encode(images)
    zs = zero_shot_maps(feats, model.text, 0.07)
    vis = few_shot_maps(feats, model.memory)
    final, score = fuse(zs["map"], zs["image_score"], vis["map"])
    torch.testing.assert_close(pred.score, score)
    torch.testing.assert_close(pred.map, upsample(final, 240))
    torch.testing.assert_close(pred.visual_map, upsample(vis["map"], 240))
    # an image among the references has a zero visual map, so its score is s0 / 2
    self_pred = model.predict(refs[:1])
    assert self_pred.visual_map.abs().max() < 1e-5
    torch.testing.assert_close(self_pred.score, self_pred.image_score / 2, atol=1e-6, rtol=0)
    model.reset()
    assert model.predict(images).visual_map is None


def test_predict_is_deterministic_and_batch_independent(tiny, images):
    model = WinCLIP(tiny, "bottle", batch_size=1)
    a, b = model.predict(images), WinCLIP(tiny, "bottle", batch_size=2).predict(images)
    torch.testing.assert_close(a.map, b.map, rtol=1e-5, atol=1e-6)
    assert torch.equal(a.score, model.predict(images).score)


def test_text_embeddings_can_be_supplied(tiny, images):
    t = torch.nn.functional.normalize(torch.randn(2, tiny.embed_dim), dim=-1)
    pred = WinCLIP(tiny, text=t).predict(images)
    swapped = WinCLIP(tiny, text=t.flip(0)).predict(images)
    torch.testing.assert_close(pred.score, 1 - swapped.score, rtol=1e-5, atol=1e-6)
    extra = WinCLIP(tiny, "bottle", extra_anomalous=("{} with scratch",)).text
    assert (extra - WinCLIP(tiny, "bottle").text).abs().max() > 1e-5
    with pytest.raises(ValueError, match=r"\(2, 32\)"):
        WinCLIP(tiny, text=torch.randn(3, tiny.embed_dim))


def test_images_from_paths_pil_and_arrays_agree(tiny, tmp_path):
    arr = _rgb(0)
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    x_arr = preprocess(arr)
    assert x_arr.shape == (1, 3, 240, 240)
    torch.testing.assert_close(preprocess(Image.fromarray(arr)), x_arr)
    torch.testing.assert_close(preprocess([str(path)]), x_arr)
    gray = arr[:, :, 0]
    x_gray = preprocess(gray)
    torch.testing.assert_close(x_gray[:, 0] * 0.26862954 + 0.48145466, x_gray[:, 1] * 0.26130258 + 0.4578275)
    crop = preprocess(arr, mode="crop")
    assert crop.shape == (1, 3, 240, 240) and not torch.equal(crop, x_arr)
    # CLIP normalisation: a white image maps to (1 - mean) / std
    white = preprocess(np.full((10, 10, 3), 255, np.uint8))
    torch.testing.assert_close(white[0, :, 0, 0], torch.tensor([1.9303, 2.0749, 2.1459]), atol=1e-3, rtol=0)
    pred = WinCLIP(tiny, "bottle").predict([arr, _rgb(1)])
    assert pred.map.shape == (2, 240, 240)


def test_bad_input_is_a_clear_error(tiny):
    model = WinCLIP(tiny, "bottle")
    with pytest.raises(ValueError, match="no images"):
        model.predict([])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        preprocess(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(B, 3, 240, 240\)"):
        model.predict(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="at least one"):
        model.fit([])
    with pytest.raises(ValueError, match="empty batch"):
        model.fit(torch.zeros(0, 3, 240, 240))
    with pytest.raises(TypeError, match="cannot read an image"):
        preprocess([123])


def test_options_are_one_dataclass_and_unknown_names_are_errors(tiny):
    from winclip_lib.core.options import WinCLIPOptions
    from winclip_lib.experiments.config import RunConfig

    model = WinCLIP(tiny, "bottle", temperature=0.01, scales=(3,))
    assert model.options == WinCLIPOptions(temperature=0.01, scales=(3,))
    with pytest.raises(ValueError, match="unknown setting.*temprature"):
        WinCLIP(tiny, "bottle", temprature=0.01)
    with pytest.raises(ValueError, match="unknown template set 'foo'"):
        WinCLIP(tiny, "bottle", template_set="foo")
    cfg = RunConfig(temperature=0.05, patch_tokens="raw", seeds=(3,))
    from_cfg = WinCLIP.from_config(tiny, cfg, "bottle")
    assert from_cfg.options.temperature == 0.05 and from_cfg.options.patch_tokens == "raw"
    assert from_cfg.options == WinCLIPOptions.from_config(cfg)


def test_prepared_queries_score_every_setting_as_predict_does(tiny):
    """prepare() once, then zero-shot and every draw of references by position: the very scores and maps of
    predict_features after fit (what the grid relies on to score a unit's settings from one preparation)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, tiny.image_size, tiny.image_size, generator=g)
    model = WinCLIP(tiny, "screw")
    feats = model.encode(x)
    test, refs = feats[:2], feats[2:]
    prepared = model.prepare(test, references=unit_features(refs))
    model.reset()
    zero, want = model.predict_features(prepared, details=False), model.predict_features(test)
    assert torch.equal(zero.score, want.score) and torch.equal(zero.map, want.map) and zero.zero_shot_map is None
    for draw in ([0], [2, 1], [0, 1, 2]):
        idx = torch.tensor(draw)
        got = model.predict_features(prepared, details=False, references=idx)
        model.fit(refs[idx])
        want = model.predict_features(test)
        model.reset()
        assert torch.equal(got.score, want.score) and torch.equal(got.map, want.map), draw
    with pytest.raises(ValueError, match="prepared with the candidate references"):
        model.predict_features(model.prepare(test), references=torch.tensor([0]))
    other = WinCLIP(tiny, "bottle")
    with pytest.raises(ValueError, match="other text embeddings"):
        other.predict_features(prepared)


@pytest.mark.parametrize("options", [{}, {"smoothing_sigma": 2.0, "fusion": "harmonic"},
                                     {"fewshot_image_score": "map_max", "visual_aggregation": "mean"}])
def test_draws_scored_together_are_bit_identical_to_one_at_a_time(tiny, options):
    """predict_draws (what the grid calls: every setting of a group at once, zero-shot among them) gives for each
    draw the very score and map of predict_features with that draw alone."""
    g = torch.Generator().manual_seed(1)
    feats = WinCLIP(tiny, "screw").encode(torch.randn(7, 3, tiny.image_size, tiny.image_size, generator=g))
    model = WinCLIP(tiny, "screw", output_size=64, **options)
    prepared = model.prepare(feats[:3], references=unit_features(feats[3:]))
    draws = [torch.tensor([0]), None, torch.tensor([3, 1]), torch.tensor([2, 0, 1, 3]), torch.tensor([1, 1])]
    scores, maps = model.predict_draws(prepared, draws)
    assert scores.shape == (5, 3) and maps.shape == (5, 3, 64, 64)
    for s, draw in enumerate(draws):
        want = model.predict_features(prepared, details=False, references=draw)
        assert torch.equal(scores[s], want.score) and torch.equal(maps[s], want.map), s
    assert not torch.equal(maps[0], maps[2])
    memory = torch.empty(0)  # the maps written into memory the caller keeps: the same numbers
    again, into = model.predict_draws(prepared, draws, out=memory)
    assert torch.equal(again, scores) and torch.equal(into, maps)
    assert memory.numel() >= maps.numel()
    if not options.get("smoothing_sigma"):  # smoothed maps are new tensors
        assert into.untyped_storage().data_ptr() == memory.data_ptr()
    with pytest.raises(ValueError, match="no draw"):
        model.predict_draws(prepared, [])
    with pytest.raises(ValueError, match="prepared with the candidate references"):
        model.predict_draws(model.prepare(feats[:3]), [torch.tensor([0])])


@pytest.mark.parametrize("options", [{}, {"smoothing_sigma": 2.0, "zero_shot_map": "normal_complement"},
                                     {"dense_features": "patch_tokens", "memories": ("patches",)}])
def test_queries_prepared_in_pieces_and_joined_score_as_each_piece_alone(tiny, options):
    """The grid prepares a unit's test images in pieces (the zero-shot products round according to the rows they
    hold) and scores them joined (Queries.cat): every draw's scores and maps are those of each piece scored alone,
    bit for bit, and the joined maxima are those of the whole batch compared at once."""
    g = torch.Generator().manual_seed(2)
    feats = WinCLIP(tiny, "screw").encode(torch.randn(10, 3, tiny.image_size, tiny.image_size, generator=g))
    model = WinCLIP(tiny, "screw", output_size=48, **options)
    refs = unit_features(feats[7:])
    pieces = [model.prepare(feats[a:b], references=refs) for a, b in ((0, 3), (3, 4), (4, 7))]
    joined = Queries.cat(pieces)
    assert len(joined) == 7 and Queries.cat(pieces[:1]) is pieces[0]
    whole = model.prepare(feats[:7], references=refs)
    for k in whole.maxima.windows:
        assert torch.equal(joined.maxima.windows[k], whole.maxima.windows[k])
    assert torch.equal(joined.maxima.patches, whole.maxima.patches)
    draws = [None, torch.tensor([1]), torch.tensor([2, 0])]
    scores, maps = model.predict_draws(joined, draws)
    alone = [model.predict_draws(p, draws) for p in pieces]
    assert torch.equal(scores, torch.cat([s for s, _ in alone], dim=1))
    assert torch.equal(maps, torch.cat([m for _, m in alone], dim=1))
    with pytest.raises(ValueError, match="prepared differently"):
        Queries.cat([pieces[0], WinCLIP(tiny, "bottle").prepare(feats[:2], references=refs)])
    with pytest.raises(ValueError, match="prepared differently"):
        Queries.cat([pieces[0], model.prepare(feats[:2])])
