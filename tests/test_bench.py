"""The speed benchmark computes the same thing in every row: no timed assertions, only agreement and the output."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from open_clip.transformer import QuickGELU, ResidualAttentionBlock

from winclip_lib import vit_blocks
from winclip_lib.backbone import TINY_MODEL
from winclip_lib.encoder import encode_images, window_indices
from winclip_lib.vit_blocks import block_qkv, fast_block

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_speed.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("winclip_bench_speed", _BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def test_baseline_one_window_at_a_time_equals_batched_encoder(tiny, images):
    """The benchmark's baseline (open_clip's own transformer, one window per call) and our batched fast path agree
    in fp32 at tight tolerance: the speed rows compare the same computation."""
    ours = encode_images(tiny, images)
    base, seconds = bench.baseline_encode(tiny, images)
    assert seconds > 0
    torch.testing.assert_close(base.image, ours.image, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(base.patches, ours.patches, rtol=1e-5, atol=1e-5)
    for k in (2, 3):
        assert base.windows[k].shape == ours.windows[k].shape == (2, window_indices(15, k).shape[0], tiny.embed_dim)
        torch.testing.assert_close(base.windows[k], ours.windows[k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("onednn", ["1", "0"])
def test_fast_block_equals_open_clip_block(tiny, monkeypatch, onednn):
    """The encoder's block (oneDNN GEMMs with fused GELU / residual adds, or PyTorch's default ones) computes what
    open_clip's own block does, with precomputed q/k/v and for the class token alone too."""
    monkeypatch.setenv(vit_blocks.ONEDNN_ENV, onednn)
    x = torch.randn(7, 10, tiny.width, generator=torch.Generator().manual_seed(3))
    assert vit_blocks._use_onednn(x) == (onednn == "1" and vit_blocks.onednn_linear_available())
    with torch.inference_mode():
        for block in tiny.visual.transformer.resblocks:
            assert vit_blocks.fast_block_supported(block)
            ref = block(x)
            torch.testing.assert_close(fast_block(block, x), ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast_block(block, x, qkv=block_qkv(block, x)), ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast_block(block, x, cls_only=True), ref[:, :1], rtol=1e-5, atol=1e-5)
            qkv = block_qkv(block, x)
            torch.testing.assert_close(fast_block(block, x, qkv=qkv, cls_only=True), ref[:, :1], rtol=1e-5, atol=1e-5)


def _block_like(block, **kwargs) -> ResidualAttentionBlock:
    width = block.ln_1.normalized_shape[0]
    other = ResidualAttentionBlock(width, block.attn.num_heads, **kwargs).eval()
    missing = other.load_state_dict(block.state_dict(), strict=False).missing_keys
    assert all(k.startswith(("ls_1", "ls_2")) for k in missing)
    return other


@pytest.mark.parametrize("kwargs", [{"batch_first": False}, {"ls_init_value": 0.5}, {"act_layer": QuickGELU}])
def test_fast_block_on_other_block_kinds(tiny, kwargs):
    """A sequence-first block gets batch-first input handled explicitly; layer-scaled or QuickGELU blocks skip the
    fused kernels and use their own modules — every kind equals the block's own forward."""
    block = _block_like(tiny.visual.transformer.resblocks[0], **kwargs)
    x = torch.randn(5, 5, tiny.width, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        seq_first = kwargs.get("batch_first", True) is False
        ref = block(x.transpose(0, 1)).transpose(0, 1) if seq_first else block(x)
        assert vit_blocks.fast_block_supported(block)
        assert vit_blocks._plain_mlp(block) is not ("ls_init_value" in kwargs or "act_layer" in kwargs)
        torch.testing.assert_close(fast_block(block, x), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast_block(block, x, cls_only=True), ref[:, :1], rtol=1e-5, atol=1e-5)


def test_baseline_on_a_subset_of_windows_extrapolates(tiny, images):
    feats, seconds = bench.baseline_encode(tiny, images[:1], windows_per_scale=3)
    assert feats is None and seconds > 0


def test_compiled_blocks_context_restores_the_encoder():
    from winclip_lib import encoder

    original = encoder._window_chunk, encoder._image_chunk
    with bench.compiled_blocks(False):
        assert (encoder._window_chunk, encoder._image_chunk) == original
    assert (encoder._window_chunk, encoder._image_chunk) == original


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "speed.json"
    result = bench.main(["--model", TINY_MODEL, "--quick", "--images", "2", "--k", "2", "--aupro-images", "10",
                         "--out", str(out)])
    return result, out


def test_every_row_computes_the_fp32_maps_within_its_tolerance(tiny_run):
    result, _ = tiny_run
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"baseline fp32 (1 window/call)", "ours fp32", "ours fp32 (default GEMM)", "ours bf16"}
    assert rows["baseline fp32 (1 window/call)"]["measured"] == "all"  # full baseline: its maps are compared
    for name, r in rows.items():
        for key in ("zs_max_abs_map_diff", "zs_max_abs_score_diff", "fs_max_abs_map_diff", "fs_max_abs_score_diff"):
            assert r[key] is not None and r[key] <= r["tolerance"], f"{name}: {key} = {r[key]} > {r['tolerance']}"
        assert r["within_tolerance"] is True
    assert rows["baseline fp32 (1 window/call)"]["tolerance"] <= 1e-4
    assert rows["ours fp32"]["zs_max_abs_map_diff"] == 0.0


def test_json_has_rows_ratios_stages_and_memory(tiny_run):
    result, out = tiny_run
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(result))  # what was returned is what was written
    assert on_disk["meta"]["model"] == TINY_MODEL and on_disk["meta"]["device"] == "cpu"
    for r in on_disk["rows"]:
        for what in ("encode", "zero_shot", "few_shot"):
            assert r[f"{what}_s_per_image"] > 0
            assert r[f"{what}_images_per_s"] == pytest.approx(1.0 / r[f"{what}_s_per_image"])
            assert r[f"{what}_speedup_vs_baseline"] > 0 and r[f"{what}_speedup_vs_fp32"] > 0
        assert r["fit_s"] > 0 and r["peak_rss_gb"] > 0
    fp32 = next(r for r in on_disk["rows"] if r["name"] == "ours fp32")
    assert fp32["zero_shot_speedup_vs_fp32"] == pytest.approx(1.0)
    base = next(r for r in on_disk["rows"] if r["name"].startswith("baseline"))
    assert base["zero_shot_speedup_vs_baseline"] == pytest.approx(1.0)
    assert set(on_disk["stages"]["text"]) == {"fp32", "bf16"}
    assert all(t["cold_s"] > 0 and t["cached_s"] > 0 for t in on_disk["stages"]["text"].values())
    aupro = on_disk["stages"]["aupro"]
    assert "skipped" in aupro or (aupro["n_images"] == 10 and aupro["seconds"] > 0)


def test_table_prints_every_row(tiny_run, capsys):
    result, _ = tiny_run
    table = bench.format_table(result)
    for r in result["rows"]:
        assert r["name"] in table
    assert "×base" in table and "×fp32" in table and "text ensemble" in table
