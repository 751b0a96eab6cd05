"""Backbone loading: random weights, checkpoints, the HF cache, the offline error, precision."""

from __future__ import annotations

import copy
import pickle
import time

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from winclip_lib.core.backbone import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    TINY_MODEL,
    BackgroundTokenizer,
    WeightsUnavailableError,
    find_cached_weights,
    load_backbone,
    resolve_device,
    wrap_model,
)
from winclip_lib.core.encoder import encode_images


def test_tiny_config_is_registered_and_of_the_same_family(tiny):
    assert TINY_MODEL in open_clip.list_models()
    assert tiny.image_size == 240 and tiny.patch_size == 16 and tiny.grid_size == 15
    assert tiny.width <= 64 and len(tiny.visual.transformer.resblocks) <= 2
    assert tiny.is_random and tiny.weights_id == "random:0"
    assert "RANDOM WEIGHTS" in tiny.describe()


def test_random_weights_are_seeded(tiny):
    again = load_backbone(TINY_MODEL, None, seed=0, precision="fp32")
    other = load_backbone(TINY_MODEL, None, seed=1, precision="fp32")
    p0, p1, p2 = (next(b.visual.parameters()) for b in (tiny, again, other))
    assert torch.equal(p0, p1) and not torch.equal(p0, p2)


def test_offline_without_cached_weights_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as err:
        load_backbone(DEFAULT_MODEL, DEFAULT_PRETRAINED, cache_dir=str(tmp_path))
    assert time.perf_counter() - t0 < 10  # no retry loop (typically well under a second)
    msg = str(err.value)
    assert DEFAULT_MODEL in msg and DEFAULT_PRETRAINED in msg and "HF_HUB_OFFLINE" in msg
    assert "load_backbone(pretrained=None)" in msg and 'load_backbone(pretrained="/path/to/file")' in msg
    assert "hf download timm/vit_base_patch16_plus_clip_240.laion400m_e31" in msg
    assert "huggingface-cli" not in msg  # the pinned huggingface_hub ships `hf`, not huggingface-cli


def test_unknown_model_tag_or_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown open_clip model"):
        load_backbone("ViT-Nope", None)
    with pytest.raises(ValueError, match="known tags"):
        load_backbone(DEFAULT_MODEL, "laion9000")
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        load_backbone(TINY_MODEL, str(tmp_path / "missing.bin"))
    with pytest.raises(ValueError, match="precision"):
        load_backbone(TINY_MODEL, None, precision="int8")


def test_devices_this_machine_lacks_are_one_clear_error():
    with pytest.raises(ValueError, match=r"unknown device 'gpu'; available here: auto, cpu"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"no CUDA GPU; available here: auto, cpu$"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            load_backbone(TINY_MODEL, None, device="cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")


def test_hf_cache_lookup_finds_the_real_repo_layout(tmp_path):
    """A file placed where huggingface_hub caches open_clip's ViT-B-16-plus-240 weights is found offline."""
    repo = tmp_path / "models--timm--vit_base_patch16_plus_clip_240.laion400m_e31"
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    assert find_cached_weights(DEFAULT_MODEL, DEFAULT_PRETRAINED, str(tmp_path)) is None
    (snap / "open_clip_pytorch_model.bin").write_bytes(b"x")
    assert find_cached_weights(DEFAULT_MODEL, DEFAULT_PRETRAINED, str(tmp_path)) == snap / "open_clip_pytorch_model.bin"


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_checkpoint_path_loads_weights_only(tiny, tmp_path, fmt):
    seeded = load_backbone(TINY_MODEL, None, seed=7, precision="fp32")
    state = {k: v.clone().contiguous() for k, v in seeded.model.state_dict().items()}
    path = tmp_path / f"tiny.{fmt}"
    if fmt == "bin":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    loaded = load_backbone(TINY_MODEL, str(path), precision="fp32")
    assert loaded.weights_id.startswith("file:") and not loaded.is_random
    x = torch.randn(1, 3, 240, 240, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(encode_images(loaded, x, (2,)).windows[2], encode_images(seeded, x, (2,)).windows[2])


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": object()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_backbone(TINY_MODEL, str(path))


def test_precision_converts_weights_and_wrap_model(tiny):
    m = open_clip.create_model(TINY_MODEL, pretrained=None)
    b = wrap_model(m, TINY_MODEL, "injected", precision="bf16", device="cpu")
    assert next(b.model.parameters()).dtype == torch.bfloat16 and b.dtype == torch.bfloat16
    assert b.weights_id == "injected" and not b.is_random
    assert not any(p.requires_grad for p in b.model.parameters()) and not b.model.training
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_tokenizer_is_built_in_the_background_and_is_open_clips(tiny):
    prompts = ["a photo of a flawless bottle.", "a cropped photo of a damaged screw", ""]
    expected = open_clip.get_tokenizer(tiny.model_name)(prompts)
    assert isinstance(tiny.tokenizer, BackgroundTokenizer)
    assert torch.equal(tiny.tokenizer(prompts), expected)
    assert tiny.tokenizer.context_length == 77  # attributes are the tokenizer's
    copied = copy.deepcopy(tiny.tokenizer)
    assert not isinstance(copied, BackgroundTokenizer) and torch.equal(copied(prompts), expected)
    assert torch.equal(pickle.loads(pickle.dumps(tiny.tokenizer))(prompts), expected)


def test_an_error_building_the_tokenizer_is_raised_by_its_first_use():
    def broken():
        raise OSError("bpe_simple_vocab_16e6.txt.gz: no such file")

    tokenizer = BackgroundTokenizer(broken)
    with pytest.raises(OSError, match="bpe_simple_vocab"):
        tokenizer(["a photo"])
    with pytest.raises(AttributeError):
        tokenizer._missing  # noqa: B018 - private names are not looked up on the tokenizer
