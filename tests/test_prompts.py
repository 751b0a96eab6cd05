"""Compositional Prompt Ensemble: the paper's lists, the ensemble embedding, the cache."""

from __future__ import annotations

import pytest
import torch

from winclip_lib.prompts import (
    ANOMALOUS_STATES,
    NORMAL_STATES,
    TEMPLATE_SETS,
    TEMPLATES,
    TextEmbeddingCache,
    build_prompts,
    encode_text,
    text_embeddings,
)


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
