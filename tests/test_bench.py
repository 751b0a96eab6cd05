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


def _counted_flops(fn) -> int:
    """FLOPs of the matmuls, linear layers and convolutions ``fn`` dispatches (torch's FlopCounterMode), with
    formulas added for oneDNN's fused linear (the encoder's CPU GEMM) and the fused attention of open_clip's blocks."""
    from torch.utils.flop_counter import FlopCounterMode

    def linear(x, *args, out_shape=None, **kwargs):  # (M, K) x (N, K)^T; binary: (x, other, w, b, attr)
        w = args[0] if isinstance(args[2], str) else args[1]
        return 2 * x[0] * x[1] * w[0]

    def mha(q, k, v, embed_dim, heads, w_qkv, b_qkv, w_out, *args, out_shape=None, **kwargs):  # (B, L, E) self
        b, length, e = q
        return 2 * b * length * e * w_qkv[0] + 2 * 2 * b * length * length * e + 2 * b * length * e * w_out[0]

    vit_blocks.onednn_linear_available()  # its one-off probe runs two tiny GEMMs: not inside the count
    mapping = {torch.ops.aten._native_multi_head_attention: mha}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        mapping[torch.ops.mkldnn._linear_pointwise] = linear
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("onednn", ["1", "0"])
def test_encoder_flops_equal_the_ops_the_encoders_run(tiny, images, monkeypatch, onednn):
    """The analytic FLOP count of the bench equals a count of the ops our encoder and the baseline dispatch on the
    tiny model (whole image + every window, block-1 q/k/v reuse and the class-token-only last block for ours)."""
    monkeypatch.setenv(vit_blocks.ONEDNN_ENV, onednn)
    x = images[:1]
    config = {"width": 64, "layers": 2, "mlp_width": 256, "grid": 15, "patch_size": 16, "embed_dim": 32}
    ours, baseline = bench.encoder_flops(**config), bench.encoder_flops(**config, reuse_first_qkv=False,
                                                                        cls_only_last=False)
    assert bench.model_flops(tiny) == ours and bench.model_flops(tiny, fast=False) == baseline
    assert _counted_flops(lambda: encode_images(tiny, x)) == ours
    assert _counted_flops(lambda: bench.baseline_encode(tiny, x)) == baseline


def test_encoder_flops_by_hand_and_for_vit_b16_plus():
    """One block, one 1 x 1 window scale on a 2 x 2 grid, W = 2, MLP 4, D = 1 — counted by hand; and ViT-B/16+:
    the shortcuts save the ~7% the encoder's docs claim."""
    # image, 5 tokens: qkv 2*5*2*6 + attention 2*2*5*5*2 + out 2*5*2*2 + MLP 2*2*5*2*4 = 520; each of the 4 windows
    # (2 tokens; q/k/v reused, class-token only): attention 2*2*1*2*2 + out 2*1*2*2 + MLP 2*2*1*2*4 = 56;
    # patch embedding 2*4*3*2 = 48; projections of 5 class tokens 2*5*2*1 = 20
    assert bench.encoder_flops(2, 1, 4, 2, 1, 1, scales=(1,)) == 520 + 4 * 56 + 48 + 20
    # without the shortcuts each window is a 2-token image: 2*2*2*6 + 2*2*2*2*2 + 2*2*2*2 + 2*2*2*2*4 = 160
    assert bench.encoder_flops(2, 1, 4, 2, 1, 1, scales=(1,), reuse_first_qkv=False, cls_only_last=False) == (
        520 + 4 * 160 + 48 + 20)
    ours = bench.encoder_flops(896, 12, 3584, 15, 16, 640)
    baseline = bench.encoder_flops(896, 12, 3584, 15, 16, 640, reuse_first_qkv=False, cls_only_last=False)
    assert 620e9 < ours < 630e9 and 0.06 < 1 - ours / baseline < 0.09


def test_gemm_ceiling_measures_the_encoders_op():
    r = bench.gemm_ceiling(64, 256, ["fp32", "bf16"], torch.device("cpu"), tokens=128, repeats=2)
    assert [(g["m"], g["k"], g["n"]) for g in r["shapes"]] == [(128, 64, 192), (128, 64, 256), (128, 256, 64)]
    expected_op = "mkldnn._linear_pointwise" if vit_blocks.onednn_linear_available() else "F.linear"
    assert r["op"]["fp32"] == expected_op
    for p in ("fp32", "bf16"):
        assert r["peak_gflops"][p] == max(g["gflops"][p] for g in r["shapes"]) > 0
    assert r["bf16_over_fp32"] == pytest.approx(r["peak_gflops"]["bf16"] / r["peak_gflops"]["fp32"])


def test_cpu_isa_reads_the_flags(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    real_path = bench.Path
    monkeypatch.setattr(bench, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
    assert bench.cpu_isa() == {"avx512f": True, "avx512_bf16": True, "avx512_fp16": False, "amx_tile": True,
                               "amx_bf16": False}
    monkeypatch.setattr(bench, "Path", lambda p: tmp_path / "missing")
    assert bench.cpu_isa() is None


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
    assert "ceiling of the bf16 speed-up from GEMMs alone" in table and "bf16 vs our fp32:" in table


def test_ceiling_and_achieved_gflops(tiny_run):
    result, _ = tiny_run
    c = result["ceiling"]
    assert c["cpu"]["threads"] == result["meta"]["threads"]
    assert c["flops_per_image"] == {"ours": bench.encoder_flops(64, 2, 256, 15, 16, 32),
                                    "baseline": bench.encoder_flops(64, 2, 256, 15, 16, 32, reuse_first_qkv=False,
                                                                    cls_only_last=False)}
    assert set(c["gemm"]["peak_gflops"]) == {"fp32", "bf16"} and c["gemm"]["bf16_over_fp32"] > 0
    for r in result["rows"]:
        flops = c["flops_per_image"]["baseline" if r["kind"] == "baseline" else "ours"]
        assert r["encode_gflops"] == pytest.approx(flops / r["encode_s_per_image"] / 1e9)
        peak = c["gemm"]["peak_gflops"]["fp32" if r["kind"] == "baseline" else r["kind"]]
        assert r["fraction_of_gemm_peak"] == pytest.approx(r["encode_gflops"] / peak)
