"""The on-disk feature cache: encode once, exact reuse, key coverage, entries extended with what a request lacks,
stale / corrupt entries recomputed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from winclip_lib import WinCLIP
from winclip_lib.core.backbone import TINY_MODEL, load_backbone
from winclip_lib.core.encoder import encode_images
from winclip_lib.core.features import Features
from winclip_lib.core.preprocess import preprocess
from winclip_lib.datasets.scan import load_split
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.feature_cache import (
    ENCODER_VERSION,
    EncoderSpec,
    FeatureCache,
    FeatureRequest,
    features_checksum,
)


@pytest.fixture
def paths(synth, tmp_path) -> list[Path]:
    """6 images of a private copy of the shared synthetic set (tests may rewrite them)."""
    root = shutil.copytree(synth, tmp_path / "syn")
    return [s.image_path for split in ("train", "test") for s in load_split("mvtec", root, "disc", split)][:6]


def _cache(tmp_path: Path, backbone, **kw) -> FeatureCache:
    return FeatureCache(tmp_path / "cache", backbone, progress=False, **kw)


def _assert_same(a: Features, b: Features, atol: float = 0.0) -> None:
    named_a, named_b = a.named(), b.named()
    assert set(named_a) == set(named_b)
    for name in named_a:
        torch.testing.assert_close(named_a[name], named_b[name], atol=atol, rtol=0, msg=name)


def _entries(cache: FeatureCache) -> list[Path]:
    return sorted(cache.dir.glob("*/*.pt"))


def test_encodes_each_image_once_then_serves_it_from_disk(tiny, paths, tmp_path):
    cache = _cache(tmp_path, tiny, batch_size=4)
    first = cache.features(paths + paths[:2])  # duplicates are encoded once
    assert cache.encode_count == len(paths) and cache.hit_count == 0
    assert cache.counts()["max_encodes_per_image"] == 1
    assert len(first) == len(paths) + 2 and first.scales == (2, 3)
    assert first.image.shape == (8, tiny.embed_dim) and first.patches.shape == (8, 225, tiny.width)
    assert len(_entries(cache)) == len(paths) and (cache.dir / "spec.json").is_file()
    assert not list(cache.dir.rglob("*.tmp"))  # atomic writes leave no temporary files

    again = _cache(tmp_path, tiny)  # a new process / object: everything from disk
    second = again.features(paths + paths[:2])
    assert again.encode_count == 0 and again.hit_count == len(paths) and again.invalid_count == 0
    _assert_same(first, second)


def test_cached_features_equal_direct_encoding(tiny, paths, tmp_path):
    cache = _cache(tmp_path, tiny, batch_size=2)
    cached = cache.features(paths)
    direct = WinCLIP(tiny, "disc", batch_size=2).encode(paths)
    _assert_same(cached, direct, atol=1e-6)


def test_key_covers_precision_geometry_stride_and_weights(tiny, paths, tmp_path):
    base = _cache(tmp_path, tiny)
    base.features(paths[:2])
    variants = [
        _cache(tmp_path, load_backbone(TINY_MODEL, None, precision="bf16", device="cpu")),
        _cache(tmp_path, tiny, resize_mode="crop"),
        _cache(tmp_path, tiny, stride=2),
        _cache(tmp_path, load_backbone(TINY_MODEL, None, seed=1, precision="fp32", device="cpu")),
    ]
    keys = {base.spec.key} | {v.spec.key for v in variants}
    assert len(keys) == 1 + len(variants)
    for v in variants:
        v.features(paths[:2])
        assert v.encode_count == 2 and v.hit_count == 0
    assert base.spec.encoder_version == ENCODER_VERSION
    assert EncoderSpec.from_backbone(tiny).key == base.spec.key  # deterministic
    crop = variants[1].features(paths[:1])
    direct = encode_images(tiny, preprocess(paths[:1], 240, "crop"), (2, 3))
    _assert_same(crop, direct, atol=1e-6)  # the crop geometry is what was encoded


def test_one_encoding_serves_smaller_requests_and_is_extended_for_larger_ones(tiny, paths, tmp_path):
    """A request the entry covers is served from it; one it does not cover computes only what is missing, and the
    tensors already stored never change."""
    small = FeatureRequest((2,), ("ln_post",))
    large = FeatureRequest((1, 2, 3), ("ln_post", "raw", "penultimate"), crops=True)
    cache = _cache(tmp_path, tiny, request=small)
    first = cache.features(paths[:3])
    assert cache.encode_count == 3 and first.scales == (2,)
    stored = torch.load(cache.entry_path(paths[0]), weights_only=True)["tensors"]

    grown = _cache(tmp_path, tiny, request=large)
    feats = grown.features(paths[:3])
    assert grown.counts()["extended"] == 3 and grown.encode_count == 3 and grown.hit_count == 0
    assert feats.scales == (1, 2, 3) and set(feats.extra) == {"patches.raw", "patches.penultimate", "crops"}
    after = torch.load(cache.entry_path(paths[0]), weights_only=True)["tensors"]
    for name, t in stored.items():
        assert torch.equal(after[name], t), f"{name} was recomputed"
    direct = encode_images(tiny, preprocess(paths[:3]), (1, 2, 3), patch_tokens=large.patch_tokens, crops=True)
    _assert_same(feats, direct, atol=1e-5)

    again = _cache(tmp_path, tiny, request=small)  # the small request is now a pure hit, a selection of the large
    sub = again.features(paths[:3])
    assert again.encode_count == 0 and again.hit_count == 3
    _assert_same(sub, first)
    selected = feats.select(scales=(2,), patch_tokens="raw")
    assert selected.patch_tokens == "raw" and torch.equal(selected.patches, feats.extra["patches.raw"])
    assert "patches.ln_post" in selected.extra and selected.scales == (2,)


def test_changed_file_content_is_a_miss_identical_content_shares_an_entry(tiny, paths, tmp_path):
    cache = _cache(tmp_path, tiny)
    cache.features(paths)
    arr = np.asarray(Image.open(paths[0]).convert("RGB"))
    Image.fromarray(255 - arr).save(paths[0])
    copy = paths[1].parent / "copy_of_1.png"
    shutil.copyfile(paths[1], copy)

    again = _cache(tmp_path, tiny)
    feats = again.features(paths + [copy])
    assert again.encode_count == 1 and again.hit_count == len(paths) - 1  # only the rewritten image
    _assert_same(feats[1], feats[len(paths)])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_image", "bit_flip", "wrong_shape"])
def test_corrupt_or_stale_entry_is_detected_deleted_and_recomputed(tiny, paths, tmp_path, damage):
    cache = _cache(tmp_path, tiny)
    reference = cache.features(paths)
    target = cache.entry_path(paths[0])
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "garbage":
        target.write_bytes(b"not a torch file")
    elif damage == "other_image":  # a valid entry, but of another image: the key echo catches it
        shutil.copyfile(cache.entry_path(paths[1]), target)
    else:
        entry = torch.load(target, weights_only=True)
        if damage == "bit_flip":  # same shapes, checksum no longer matches
            entry["tensors"]["image"][0, 0] += 1.0
        else:  # shapes of a different model, checksum recomputed so only the shape check can catch it
            entry["tensors"]["patches.ln_post"] = entry["tensors"]["patches.ln_post"][:, :100]
            entry["checksum"] = features_checksum(entry["tensors"])
        torch.save(entry, target)

    again = _cache(tmp_path, tiny)
    feats = again.features(paths)
    assert again.invalid_count == 1 and again.encode_count == 1 and again.hit_count == len(paths) - 1
    _assert_same(feats, reference, atol=1e-6)
    assert torch.load(target, weights_only=True)["checksum"] == features_checksum(feats[0].named())  # rewritten
    third = _cache(tmp_path, tiny)
    third.features(paths)
    assert third.invalid_count == 0 and third.encode_count == 0


def test_from_config_takes_the_request_and_geometry_of_the_settings(tiny, tmp_path):
    cfg = RunConfig(cache_dir=str(tmp_path / "c"), scales=(3,), patch_tokens="penultimate", resize_mode="crop",
                    batch_size=3)
    cache = FeatureCache.from_config(cfg, tiny, progress=False)
    assert cache.request == FeatureRequest((3,), ("penultimate",)) and cache.spec.resize_mode == "crop"
    assert cache.batch_size == 3 and cache.root == tmp_path / "c"


def test_bad_arguments(tiny, tmp_path):
    with pytest.raises(ValueError, match="resize_mode"):
        _cache(tmp_path, tiny, resize_mode="squash")
    with pytest.raises(ValueError, match="batch_size"):
        _cache(tmp_path, tiny, batch_size=0)
    with pytest.raises(ValueError, match="nothing to encode"):
        _cache(tmp_path, tiny).features([])
