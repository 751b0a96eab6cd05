"""The on-disk feature cache: encode once, exact reuse, key coverage, entries extended with what a request lacks,
stale / corrupt entries recomputed."""

from __future__ import annotations

import shutil
import threading
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
from winclip_lib.experiments.cache_entries import ENTRY_SUFFIX, encode_entry, read_entry
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
    return sorted(cache.dir.glob("*/*.feat"))


def _stored(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an entry file, as stored."""
    got = read_entry(path)
    assert got is not None, f"{path} is not a valid entry"
    return got[1]


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
    stored = _stored(cache.entry_path(paths[0]))

    grown = _cache(tmp_path, tiny, request=large)
    feats = grown.features(paths[:3])
    assert grown.counts()["extended"] == 3 and grown.encode_count == 3 and grown.hit_count == 0
    assert feats.scales == (1, 2, 3) and set(feats.extra) == {"patches.raw", "patches.penultimate", "crops"}
    after = _stored(cache.entry_path(paths[0]))
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
    elif damage == "bit_flip":  # same shapes, checksum no longer matches
        data = bytearray(target.read_bytes())
        data[-5] ^= 0x01
        target.write_bytes(bytes(data))
    else:  # shapes of a different model, checksum recomputed so only the shape check can catch it
        header, stored = read_entry(target)
        stored = {**stored, "patches.ln_post": stored["patches.ln_post"][:, :100]}
        target.write_bytes(encode_entry({k: header[k] for k in ("key", "spec", "image")}, stored))
        assert read_entry(target) is not None

    again = _cache(tmp_path, tiny)
    feats = again.features(paths)
    assert again.invalid_count == 1 and again.encode_count == 1 and again.hit_count == len(paths) - 1
    _assert_same(feats, reference, atol=1e-6)
    assert read_entry(target)[0]["checksum"] == features_checksum(feats[0].named())  # rewritten
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


def test_bf16_features_are_stored_in_bf16_exactly_and_take_half_the_disk(paths, tmp_path):
    bf16 = load_backbone(TINY_MODEL, None, seed=0, precision="bf16", device="cpu")
    cache = _cache(tmp_path, bf16)
    encoded = cache.features(paths[:3])
    stored = _stored(cache.entry_path(paths[0]))
    assert {t.dtype for t in stored.values()} == {torch.bfloat16}
    again = _cache(tmp_path, bf16)
    read = again.features(paths[:3])
    assert again.hit_count == 3 and again.encode_count == 0
    _assert_same(read, encoded)  # bf16 -> float32 is exact: the features read back are the ones encoded
    assert read.image.dtype == torch.float32
    fp32 = _cache(tmp_path, load_backbone(TINY_MODEL, None, seed=0, precision="fp32", device="cpu"))
    fp32.features(paths[:1])
    ratio = cache.entry_path(paths[0]).stat().st_size / fp32.entry_path(paths[0]).stat().st_size
    assert 0.45 < ratio < 0.55


def test_entries_of_the_previous_format_are_used_and_rewritten(tiny, paths, tmp_path):
    """A cache written by the previous version (torch.save entries, <id>.pt) is read as it is — the same features,
    nothing encoded — and each entry is rewritten in the current format."""
    cache = _cache(tmp_path, tiny)
    reference = cache.features(paths)
    for p in paths:  # turn every entry into its previous-format twin
        header, stored = read_entry(cache.entry_path(p))
        legacy = {"format": 2, "key": header["key"], "spec": header["spec"], "image": header["image"],
                  "checksum": features_checksum(stored), "tensors": {n: t.clone() for n, t in stored.items()}}
        torch.save(legacy, cache.entry_path(p).with_suffix(".pt"))
        cache.entry_path(p).unlink()
    assert not _entries(cache) and len(list(cache.dir.glob("*/*.pt"))) == len(paths)
    old = _cache(tmp_path, tiny)
    feats = old.features(paths)
    assert old.encode_count == 0 and old.hit_count == len(paths) and old.invalid_count == 0
    _assert_same(feats, reference)
    assert len(_entries(old)) == len(paths) and not list(old.dir.glob("*/*.pt"))  # rewritten
    _assert_same(_cache(tmp_path, tiny).features(paths), reference)
    # a damaged previous-format entry is recomputed, like any other
    header, stored = read_entry(old.entry_path(paths[0]))
    old.entry_path(paths[0]).unlink()
    old.entry_path(paths[0]).with_suffix(".pt").write_bytes(b"not a torch file")
    third = _cache(tmp_path, tiny)
    third.features(paths)
    assert third.invalid_count == 1 and third.encode_count == 1


def test_writes_happen_in_the_background_and_are_seen_before_they_land(tiny, paths, tmp_path):
    cache = _cache(tmp_path, tiny, batch_size=2)
    first = cache.features(paths, wait=False)
    second = cache.features(paths)  # pending or written: never encoded twice
    assert cache.encode_count == len(paths) and cache.hit_count == len(paths)
    _assert_same(first, second)
    cache.flush()
    assert len(_entries(cache)) == len(paths) and not list(cache.dir.rglob("*.tmp"))
    assert cache.times.busy_seconds["cache_write"] > 0


def test_a_failed_write_is_raised(tiny, paths, tmp_path):
    cache = _cache(tmp_path, tiny)
    cache.dir.mkdir(parents=True)
    (cache.dir / "spec.json").write_text("{}")
    for p in paths[:2]:  # a file where the entry's folder should be: the write fails
        cache.entry_path(p).parent.write_text("in the way")
    with pytest.raises(OSError):
        cache.features(paths[:2])


def test_without_a_disk_features_live_for_one_unit(tiny, paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = FeatureCache("none", tiny, progress=False)
    assert cache.dir is None and cache.root is None
    first = cache.features(paths + paths[:2])
    assert cache.encode_count == len(paths) and cache.counts()["max_encodes_per_image"] == 1
    again = cache.features(paths[:3])  # the same unit: from memory
    assert cache.encode_count == len(paths) and cache.hit_count == 3
    _assert_same(again, first[:3])
    cache.end_unit()
    cache.features(paths[:1])
    assert cache.encode_count == len(paths) + 1
    assert not any(tmp_path.rglob("*.feat")) and not (tmp_path / "none").exists()
    with pytest.raises(ValueError, match="no folder"):
        cache.entry_path(paths[0])


def test_stage_times_of_an_encoding(tiny, paths, tmp_path):
    cache = _cache(tmp_path, tiny, batch_size=2)
    cache.features(paths)
    wall, busy = cache.times.wall, cache.times.busy_seconds
    assert wall["encode"] > 0 and busy["decode"] > 0 and wall["cache_read"] > 0
    assert wall["metrics"] == 0 and wall["scoring"] == 0


def test_a_later_hand_over_of_a_key_stays_pending_when_an_earlier_write_of_it_ends():
    """The writer answers for a key what was last handed over until that write has landed: the end of an earlier
    write of the same key (an entry extended while its first version was still being written) does not forget it."""
    from winclip_lib.experiments.cache_entries import EntryWriter
    from winclip_lib.experiments.stages import StageTimes

    writer = EntryWriter(StageTimes())
    first_may_write, second_started, second_may_write = threading.Event(), threading.Event(), threading.Event()

    def second_write() -> None:  # the one writer thread is here only once the first write is wholly done
        second_started.set()
        second_may_write.wait()

    writer.submit("k", "windows 2", first_may_write.wait)
    writer.submit("k", "windows 2 and 3", second_write)  # handed over while the first is being written
    first_may_write.set()
    try:
        assert second_started.wait(10)
        assert writer.pending("k") == "windows 2 and 3"
    finally:
        second_may_write.set()
        writer.close()
    assert writer.pending("k") is None


def test_an_image_changed_after_it_was_decoded_ahead_is_not_cached_under_its_new_content(tiny, paths, tmp_path):
    """Decoded ahead, then rewritten before its features are asked for: the entry would hold the old pixels under
    the new bytes' digest, so the call fails naming the file and nothing is stored."""
    import time

    from winclip_lib.core.digests import FileChangedError, digest_last_read

    src = tmp_path / "a.png"
    shutil.copy(paths[0], src)
    cache = FeatureCache(tmp_path / "cache", tiny, progress=False)
    try:
        cache.prefetch([src])
        with cache.loader.spare_cores():  # the work done ahead runs while cores are spare
            deadline = time.monotonic() + 30
            while digest_last_read(src) is None and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(0.2)  # its decoding finishes
        shutil.copy(paths[1], src)
        with pytest.raises(FileChangedError, match=str(src)):
            cache.features([src])
    finally:
        cache.close()
    assert not [f for f in (tmp_path / "cache").rglob("*") if f.name.endswith(ENTRY_SUFFIX)]
    fresh = FeatureCache(tmp_path / "cache", tiny, progress=False)
    np.testing.assert_array_equal(fresh.features([src]).patches.numpy(),
                                  FeatureCache(None, tiny, progress=False).features([paths[1]]).patches.numpy())
    fresh.close()
