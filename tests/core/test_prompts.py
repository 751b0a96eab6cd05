"""Compositional Prompt Ensemble: the paper's lists, the ensemble embedding, the cache."""

from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from winclip_lib.core import vit_blocks
from winclip_lib.core.openclip_adapter import is_causal as _is_causal
from winclip_lib.core.openclip_adapter import text_pooled_positions as pooled_positions
from winclip_lib.core.prompts import (
    ANOMALOUS_STATES,
    NORMAL_STATES,
    TEMPLATE_SETS,
    TEMPLATES,
    TextEmbeddingCache,
    build_prompts,
    text_embeddings,
)
from winclip_lib.core.text_tower import encode_text, encode_text_tokens


def test_paper_lists():
    assert len(NORMAL_STATES) == 7 and len(ANOMALOUS_STATES) == 4 and len(TEMPLATES) == 22
    assert len(set(TEMPLATES)) == 22
    assert NORMAL_STATES[0] == "{}" and "{} without damage" in NORMAL_STATES
    assert ANOMALOUS_STATES == ("damaged {}", "{} with flaw", "{} with defect", "{} with damage")
    assert TEMPLATES[0] == "a cropped photo of the {}." and TEMPLATES[-1] == "a photo of a {} for anomaly detection."


def test_template_variants():
    anomalib = TEMPLATE_SETS["anomalib"]
    assert len(anomalib) == 21 and len(set(anomalib)) == 20
    assert anomalib.count("a jpeg corrupted photo of the {}.") == 2
    assert "a cropped photo of a {}." not in anomalib
    assert all(not t.endswith(".") for t in TEMPLATE_SETS["no_period"])


def test_build_prompts():
    p = build_prompts("metal nut")
    assert len(p["normal"]) == 154 and len(p["anomalous"]) == 88
    assert p["normal"][0] == "a cropped photo of the metal nut."
    assert p["normal"][22] == "a cropped photo of the flawless metal nut."
    assert p["anomalous"][-1] == "a photo of a metal nut with damage for anomaly detection."
    extra = build_prompts("screw", extra_anomalous=("{} with scratch",))
    assert len(extra["anomalous"]) == 110 and "a photo of the screw with scratch." in extra["anomalous"]
    with pytest.raises(ValueError, match="unknown template set"):
        build_prompts("x", "nope")
    with pytest.raises(ValueError, match="non-empty"):
        build_prompts("  ")


def test_text_embeddings_are_normalised_means(tiny):
    cache = TextEmbeddingCache()
    t = text_embeddings(tiny, "bottle", cache=cache)
    assert t.shape == (2, tiny.embed_dim)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(2))
    prompts = build_prompts("bottle")
    normal = torch.nn.functional.normalize(encode_text(tiny, prompts["normal"]).mean(0), dim=-1)
    torch.testing.assert_close(t[0], normal, rtol=1e-5, atol=1e-6)
    each = text_embeddings(tiny, "bottle", normalize_each=True, cache=cache)
    assert (each - t).abs().max() > 1e-4  # the option changes the ensemble
    assert cache.encodes == 2


def test_text_cache_encodes_a_class_once(tiny):
    cache = TextEmbeddingCache()
    a = text_embeddings(tiny, "cable", cache=cache)
    b = text_embeddings(tiny, "cable", cache=cache)
    assert a is b and cache.encodes == 1
    text_embeddings(tiny, "screw", cache=cache)
    text_embeddings(tiny, "cable", "anomalib", cache=cache)
    assert cache.encodes == 3 and len(cache) == 3


def test_text_cache_waits_for_a_class_another_thread_is_encoding(tiny):
    """Asked from two threads at once, a class is encoded once and both get it; an encoding that fails is raised in
    every thread that waited for it and leaves nothing behind."""
    cache, started, release, calls = TextEmbeddingCache(), threading.Event(), threading.Event(), []

    def slow() -> torch.Tensor:
        calls.append(1)
        started.set()
        release.wait(10)
        return torch.ones(2, 3)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_compute, ("k",), slow)
        started.wait(10)
        second = pool.submit(cache.get_or_compute, ("k",), slow)
        time.sleep(0.2)  # the second call finds the first under way (after it, it would find the result: once too)
        release.set()
        assert first.result() is second.result() and len(calls) == 1 and cache.encodes == 1

    def broken() -> torch.Tensor:
        started.set()
        release.wait(10)
        raise RuntimeError("no text tower")

    started.clear()
    release.clear()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_compute, ("bad",), broken)
        started.wait(10)
        second = pool.submit(cache.get_or_compute, ("bad",), broken)
        time.sleep(0.2)
        release.set()
        for f in (first, second):
            with pytest.raises(RuntimeError, match="no text tower"):
                f.result()
    assert cache.get(("bad",)) is None and cache.encodes == 1
    assert text_embeddings(tiny, "cable", cache=cache) is text_embeddings(tiny, "cable", cache=cache)


@pytest.mark.parametrize("onednn", ["1", "0"])
def test_cut_text_tower_equals_open_clip_encode_text(tiny, monkeypatch, onednn):
    """Cutting the causal text tower after the last end-of-text token changes no output (oneDNN path and default)."""
    monkeypatch.setenv(vit_blocks.ONEDNN_ENV, onednn)
    prompts = build_prompts("metal nut")
    tokens = tiny.tokenizer(prompts["normal"][:40] + prompts["anomalous"][:40] + ["a"])
    pos = pooled_positions(tiny.model, tokens)
    assert pos is not None and int(pos.max()) + 1 < tokens.shape[1] // 3  # the cut really happens
    assert torch.equal(pos, tokens.argmax(dim=-1))
    with torch.inference_mode():
        expected = tiny.model.encode_text(tokens)
        got = encode_text_tokens(tiny.model, tokens)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got[0] - got[41]).abs().max() > 1e-3  # distinct prompts stay distinct


def test_text_tower_without_causal_mask_or_with_eos_pooling(tiny):
    tokens = tiny.tokenizer(["a photo of a bottle.", "damaged bottle"])
    eot = int(tokens[0].max())
    eos_model = copy.deepcopy(tiny.model)
    eos_model.text_pool_type, eos_model.text_eos_id = "eos", eot
    assert torch.equal(pooled_positions(eos_model, tokens), tokens.argmax(dim=-1))
    open_model = copy.deepcopy(tiny.model)
    open_model.attn_mask = None  # a bidirectional text tower: every token matters, no cut
    assert pooled_positions(open_model, tokens) is None
    last_model = copy.deepcopy(tiny.model)
    last_model.text_pool_type = "last"
    assert pooled_positions(last_model, tokens) is None
    with torch.inference_mode():
        for model in (eos_model, open_model, last_model):
            torch.testing.assert_close(encode_text_tokens(model, tokens), model.encode_text(tokens),
                                       rtol=1e-5, atol=1e-5)


def test_is_causal():
    causal = torch.full((4, 4), float("-inf")).triu(1)
    assert _is_causal(causal) and _is_causal(causal.bfloat16())
    assert not _is_causal(None) and not _is_causal(torch.zeros(4, 4))
    assert not _is_causal(causal.T) and not _is_causal(causal[:3])
    leaky = causal.clone()
    leaky[2, 0] = -1.0
    assert not _is_causal(leaky)


@pytest.mark.slow
def test_cut_text_tower_real_architecture(vitb):
    """ViT-B-16-plus-240's text tower (width 640, 77-token context): the cut equals open_clip's encode_text."""
    prompts = build_prompts("screw")
    chosen = prompts["normal"][::20] + prompts["anomalous"][::20]
    tokens = vitb.tokenizer(chosen)
    with torch.inference_mode():
        expected = vitb.model.encode_text(tokens)
    torch.testing.assert_close(encode_text(vitb, chosen), expected, rtol=1e-5, atol=2e-5)


def test_the_reduced_ensembles_of_the_cpe_ablation(tiny):
    assert build_prompts("screw", ensemble_kind="two_class") == {"normal": ["normal screw"],
                                                                 "anomalous": ["anomalous screw"]}
    states = build_prompts("screw", ensemble_kind="states")
    assert states["normal"][:2] == ["screw", "flawless screw"] and len(states["anomalous"]) == 4
    one = text_embeddings(tiny, "screw", ensemble_kind="one_class")
    torch.testing.assert_close(one[1], -one[0])  # p falls as the embedding nears "normal screw"
    two = text_embeddings(tiny, "screw", ensemble_kind="two_class")
    torch.testing.assert_close(two[0], one[0])
    with pytest.raises(ValueError, match="unknown prompt ensemble"):
        build_prompts("screw", ensemble_kind="three_class")
