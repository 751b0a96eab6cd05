"""Window-masked encoding: geometry, equivalence with a one-window-at-a-time reference, the patch-token variants,
the multi-crop views and tiles, the real shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from winclip_lib.core.encoder import PATCH_TOKENS, crop_boxes, encode_images, tile_boxes, window_indices, window_masks
from winclip_lib.core.precision import cpu_precisions


def reference_window_embedding(visual, x: torch.Tensor, patch_idx: list[int]) -> torch.Tensor:
    """One window of one image through open_clip's own visual modules: conv1, class and positional embeddings,
    ln_pre, visual.transformer (open_clip 3 takes batch-first input), _pool, proj. Written independently of the
    encoder on purpose."""
    t = visual.conv1(x[None])  # (1, W, G, G)
    t = t.reshape(1, t.shape[1], -1).permute(0, 2, 1)  # (1, G*G, W)
    cls = visual.class_embedding.reshape(1, 1, -1)
    pos = visual.positional_embedding
    seq = torch.cat([cls + pos[0], t[:, patch_idx] + pos[[p + 1 for p in patch_idx]]], dim=1)
    seq = visual.ln_pre(seq)
    out = visual.transformer(seq)
    pooled, _ = visual._pool(out)  # open_clip's own pooling, called directly: an independent reference
    return (pooled @ visual.proj)[0]


def test_window_indices_geometry():
    idx = window_indices(15, 2)
    assert idx.shape == (196, 4)
    assert idx[0].tolist() == [0, 1, 15, 16]
    assert idx[1].tolist() == [1, 2, 16, 17]  # row-major by top-left patch
    assert idx[14].tolist() == [15, 16, 30, 31]
    assert idx[-1].tolist() == [208, 209, 223, 224]
    idx3 = window_indices(15, 3)
    assert idx3.shape == (169, 9)
    assert idx3[0].tolist() == [0, 1, 2, 15, 16, 17, 30, 31, 32]
    assert window_indices(15, 3, stride=2).shape == (49, 9)
    with pytest.raises(ValueError, match="between 1 and the grid size"):
        window_indices(15, 16)


def test_window_masks_match_indices():
    masks = window_masks(15, 3)
    assert masks.shape == (169, 15, 15)
    assert masks.sum(dim=(1, 2)).eq(9).all()
    assert masks[0, :3, :3].all() and not masks[0, 3:, :].any()
    # every patch of the interior is covered by 9 windows of scale 3, a corner by 1
    cover = masks.sum(0)
    assert cover[0, 0] == 1 and cover[7, 7] == 9 and cover[0, 7] == 3


def test_windows_equal_one_window_at_a_time_reference(tiny, images):
    feats = encode_images(tiny, images, scales=(2, 3))
    visual = tiny.visual
    for k in (2, 3):
        idx = window_indices(15, k)
        for b in range(2):
            for w in (0, 1, 17, idx.shape[0] // 2, idx.shape[0] - 1):
                ref = reference_window_embedding(visual, images[b], idx[w].tolist())
                torch.testing.assert_close(feats.windows[k][b, w], ref, rtol=1e-5, atol=1e-5)


def test_different_windows_give_different_embeddings(tiny, images):
    feats = encode_images(tiny, images, (2, 3))
    for k, w in feats.windows.items():
        flat = w[0]
        # pairwise distances between all windows of one image: none may be (near) zero
        d = torch.cdist(flat, flat) + torch.eye(flat.shape[0]) * 1e9
        assert d.min() > 1e-3, f"scale {k}: two windows share an embedding"
        # and no window equals the whole-image embedding
        assert (flat - feats.image[0]).norm(dim=-1).min() > 1e-3


def test_image_embedding_equals_encode_image(tiny, images):
    feats = encode_images(tiny, images, (2,))
    torch.testing.assert_close(feats.image, tiny.model.encode_image(images), rtol=1e-5, atol=1e-5)


def test_patch_token_variants_come_from_one_pass(tiny, images):
    """The four variants equal open_clip's own modules run step by step: the last block's output with and without
    ln_post, and the second-to-last block's output without and with it."""
    visual = tiny.visual
    feats = encode_images(tiny, images, (2,), patch_tokens=PATCH_TOKENS)
    assert feats.patches.shape == (2, 225, tiny.width) and feats.patch_tokens == "ln_post"
    t = visual.conv1(images).flatten(2).transpose(1, 2)
    seq = visual.ln_pre(torch.cat([visual.class_embedding.expand(2, 1, -1), t], 1) + visual.positional_embedding)
    blocks = list(visual.transformer.resblocks)
    before_last = seq
    for block in blocks[:-1]:
        before_last = block(before_last)
    last = blocks[-1](before_last)
    expected = {"ln_post": visual.ln_post(last)[:, 1:], "raw": last[:, 1:], "penultimate": before_last[:, 1:],
                "penultimate_ln_post": visual.ln_post(before_last)[:, 1:]}
    got = {"ln_post": feats.patches, **{n.split(".", 1)[1]: v for n, v in feats.extra.items()}}
    assert set(got) == set(PATCH_TOKENS)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-5, msg=name)
    assert (got["raw"] - got["penultimate"]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="patch_tokens"):
        encode_images(tiny, images, (2,), patch_tokens=("layer7",))


def test_crops_and_tiles_are_full_passes_of_resized_regions(tiny, images):
    """Each multi-crop view and each tile is the whole-image embedding of that region resized to the input size."""
    feats = encode_images(tiny, images[:1], (2,), crops=True, tile_scales=(3,))
    boxes = crop_boxes(240)
    assert feats.extra["crops"].shape == (1, 5, tiny.embed_dim) and boxes[0] == (30, 30, 180)
    tiles = tile_boxes(15, 16, 3)
    assert feats.extra["tiles.3"].shape == (1, 169, tiny.embed_dim) and tiles[1] == (0, 16, 48)

    def whole(top: int, left: int, side: int) -> torch.Tensor:
        view = F.interpolate(images[:1, :, top : top + side, left : left + side], size=(240, 240), mode="bicubic",
                             align_corners=False)
        return tiny.model.encode_image(view)[0]

    for i in (0, 4):
        torch.testing.assert_close(feats.extra["crops"][0, i], whole(*boxes[i]), rtol=1e-4, atol=1e-4)
    for w in (0, 100, 168):
        torch.testing.assert_close(feats.extra["tiles.3"][0, w], whole(*tiles[w]), rtol=1e-4, atol=1e-4)


def test_chunking_does_not_change_results(tiny, images):
    a = encode_images(tiny, images, (2, 3), max_tokens=65536)
    b = encode_images(tiny, images, (2, 3), max_tokens=37)  # a few windows per call
    for k in a.windows:
        torch.testing.assert_close(a.windows[k], b.windows[k], rtol=1e-5, atol=1e-6)


def test_encoding_is_deterministic(tiny, images):
    a, b = encode_images(tiny, images, (3,)), encode_images(tiny, images, (3,))
    assert torch.equal(a.windows[3], b.windows[3]) and torch.equal(a.patches, b.patches)


def test_bad_input_shapes(tiny):
    with pytest.raises(ValueError, match=r"\(B, 3, 240, 240\)"):
        encode_images(tiny, torch.zeros(1, 1, 240, 240), (2,))
    with pytest.raises(ValueError, match=r"\(B, 3, 240, 240\)"):
        encode_images(tiny, torch.zeros(1, 3, 224, 224), (2,))
    with pytest.raises(ValueError, match="empty batch"):
        encode_images(tiny, torch.zeros(0, 3, 240, 240), (2,))


@pytest.mark.slow
def test_real_architecture_shapes_and_equivalence(vitb, images):
    """ViT-B-16-plus-240 (random weights): D = 640, W = 896, 196 + 169 windows; reference equality."""
    x = images[:1]
    feats = encode_images(vitb, x, (2, 3))
    assert feats.image.shape == (1, 640)
    assert feats.windows[2].shape == (1, 196, 640) and feats.windows[3].shape == (1, 169, 640)
    assert feats.patches.shape == (1, 225, 896)
    torch.testing.assert_close(feats.image, vitb.model.encode_image(x), rtol=1e-4, atol=1e-4)
    idx = window_indices(15, 3)
    for w in (0, 84, 168):
        ref = reference_window_embedding(vitb.visual, x[0], idx[w].tolist())
        torch.testing.assert_close(feats.windows[3][0, w], ref, rtol=1e-4, atol=1e-4)
    d = torch.cdist(feats.windows[2][0], feats.windows[2][0]) + torch.eye(196) * 1e9
    assert d.min() > 1e-3


@pytest.mark.slow
def test_real_architecture_bf16_stays_close_to_fp32(vitb, images):
    """The bf16 encoder of ViT-B-16-plus-240 (random weights): every window and the image within cosine 0.99 of fp32.

    Where oneDNN has no bf16 kernels for this CPU (AVX2 only, e.g. an AMD Zen 1 EPYC), torch falls back to its
    reference bf16 GEMM: this one image then took 306 s of the suite, and "auto" never picks bf16 there (its oneDNN
    offers fp32 only). So it runs where oneDNN has bf16 kernels, and on CUDA (tests/core/test_gpu.py)."""
    if "bf16" not in cpu_precisions():
        pytest.skip("oneDNN runs no bf16 on this CPU (torch's reference bf16 GEMM: minutes for one image)")
    import copy

    from winclip_lib.core.backbone import wrap_model

    x = images[:1]
    feats = encode_images(vitb, x, (2, 3))
    bf16 = wrap_model(copy.deepcopy(vitb.model), vitb.model_name, vitb.weights_id, precision="bf16", device="cpu")
    f16 = encode_images(bf16, x, (2, 3))
    for k in (2, 3):
        cos = torch.nn.functional.cosine_similarity(f16.windows[k], feats.windows[k], dim=-1)
        assert cos.min() > 0.99, f"bf16 windows of scale {k} drift from fp32 (min cos {cos.min():.4f})"
    assert torch.nn.functional.cosine_similarity(f16.image, feats.image).min() > 0.99
