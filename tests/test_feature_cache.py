"""The on-disk feature cache: encode once, exact reuse, key coverage, stale / corrupt entries recomputed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from winclip_lib import WinCLIP
from winclip_lib.backbone import TINY_MODEL, load_backbone
from winclip_lib.datasets import load_split
from winclip_lib.encoder import Features
from winclip_lib.feature_cache import ENCODER_VERSION, EncoderSpec, FeatureCache, features_checksum
from winclip_lib.synthetic import make_synthetic


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data") / "syn", categories=("disc",), n_train=3, n_test_good=1,
                          n_test_bad=2, size=64)


@pytest.fixture
def paths(synth, tmp_path) -> list[Path]:
    """The 6 images of a private copy of the synthetic set (tests may rewrite them)."""
    root = shutil.copytree(synth, tmp_path / "syn")
    return [s.image_path for split in ("train", "test") for s in load_split("mvtec", root, "disc", split)]


def _cache(tmp_path: Path, backbone, **kw) -> FeatureCache:
    return FeatureCache(tmp_path / "cache", backbone, progress=False, **kw)


def _assert_same(a: Features, b: Features, atol: float = 0.0) -> None:
    torch.testing.assert_close(a.image, b.image, atol=atol, rtol=0)
    torch.testing.assert_close(a.patches, b.patches, atol=atol, rtol=0)
    assert a.scales == b.scales
    for k in a.scales:
        torch.testing.assert_close(a.windows[k], b.windows[k], atol=atol, rtol=0)


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


def test_key_covers_precision_patch_ln_post_scales_and_weights(tiny, paths, tmp_path):
    base = _cache(tmp_path, tiny)
    base.features(paths[:2])
    variants = [
        _cache(tmp_path, load_backbone(TINY_MODEL, None, precision="bf16", device="cpu")),
        _cache(tmp_path, tiny, patch_ln_post=False),
        _cache(tmp_path, tiny, scales=(2,)),
        _cache(tmp_path, tiny, resize_mode="crop"),
        _cache(tmp_path, load_backbone(TINY_MODEL, None, seed=1, device="cpu")),
    ]
    keys = {base.spec.key} | {v.spec.key for v in variants}
    assert len(keys) == 1 + len(variants)
    for v in variants:
        v.features(paths[:2])
        assert v.encode_count == 2 and v.hit_count == 0
    assert base.spec.encoder_version == ENCODER_VERSION
    assert EncoderSpec.from_backbone(tiny).key == base.spec.key  # deterministic
    no_ln = variants[1].features(paths[:1])
    assert no_ln.meta["patch_ln_post"] is False


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
            entry["features"]["image"][0, 0] += 1.0
        else:  # shapes of a different model, checksum recomputed so only the shape check can catch it
            entry["features"]["patches"] = entry["features"]["patches"][:, :100]
            entry["checksum"] = features_checksum(Features.from_state_dict(entry["features"]))
        torch.save(entry, target)

    again = _cache(tmp_path, tiny)
    feats = again.features(paths)
    assert again.invalid_count == 1 and again.encode_count == 1 and again.hit_count == len(paths) - 1
    _assert_same(feats, reference, atol=1e-6)
    assert torch.load(target, weights_only=True)["checksum"] == features_checksum(feats[0])  # rewritten
    third = _cache(tmp_path, tiny)
    third.features(paths)
    assert third.invalid_count == 0 and third.encode_count == 0


def test_bad_arguments(tiny, tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        _cache(tmp_path, tiny, image_size=224)
    with pytest.raises(ValueError, match="batch_size"):
        _cache(tmp_path, tiny, batch_size=0)
    with pytest.raises(ValueError, match="nothing to encode"):
        _cache(tmp_path, tiny).features([])
