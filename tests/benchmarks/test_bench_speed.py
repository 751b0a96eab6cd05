"""The speed benchmark (benchmarks/): every row computes the same thing, the FLOP model counts the ops the encoders
run, the hardware and precision-"auto" sections report what was measured. No timed assertions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import bench_speed as bench
from winclip_lib.core import encoder as encoder_module
from winclip_lib.core import vit_blocks
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.core.encoder import encode_images, window_indices
from winclip_lib.core.precision import PRECISIONS, SPEEDUP_THRESHOLD, cpu_model_and_flags, cpu_precisions

REPO = Path(__file__).resolve().parents[2]
PAPER_SCALES = (2, 3)
TINY = {"width": 64, "layers": 2, "mlp_width": 256, "grid": 15, "patch_size": 16, "embed_dim": 32}


flops, hardware, baseline, autop = bench.flops, bench.hardware, bench.baseline, bench.auto_precision

# What oneDNN 3.x prints with ONEDNN_VERBOSE=1 before its first primitive (captured from a run of this benchmark).
ONEDNN_V3_VERBOSE = """\
onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71049cd69a3df32adcccb623b12cd7baa22)
onednn_verbose,v1,info,cpu,runtime:OpenMP,nthr:2
onednn_verbose,v1,info,cpu,isa:Intel AVX10.1 and Intel AMX with bfloat16 and 8-bit integer support
onednn_verbose,v1,info,gpu,runtime:none
onednn_verbose,v1,info,graph,backend,0:dnnl_backend
onednn_verbose,v1,primitive,exec,cpu,inner_product,brg_matmul:avx512_core,forward_inference,mb4ic8oc3,0.0158691
"""
# The same header as oneDNN 2.x (DNNL_VERBOSE=1) prints it.
DNNL_V2_VERBOSE = """\
dnnl_verbose,info,oneDNN v2.7.3 (commit 7710ce1e2f5d4cff0ea5a4d0e5e82d93a5a9d0a1)
dnnl_verbose,info,cpu,runtime:OpenMP,nthr:8
dnnl_verbose,info,cpu,isa:Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions
dnnl_verbose,info,gpu,runtime:none
"""


# --------------------------------------------------------------------------------------------------------------------
# the baseline
# --------------------------------------------------------------------------------------------------------------------
def test_baseline_one_window_at_a_time_equals_batched_encoder(tiny, images):
    """The benchmark's baseline (open_clip's own transformer, one window per call) and our batched fast path agree
    in fp32 at tight tolerance: the speed rows compare the same computation."""
    ours = encode_images(tiny, images, PAPER_SCALES)
    base, seconds = baseline.baseline_encode(tiny, images, PAPER_SCALES)
    assert seconds > 0
    torch.testing.assert_close(base.image, ours.image, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(base.patches, ours.patches, rtol=1e-5, atol=1e-5)
    for k in PAPER_SCALES:
        assert base.windows[k].shape == ours.windows[k].shape == (2, window_indices(15, k).shape[0], tiny.embed_dim)
        torch.testing.assert_close(base.windows[k], ours.windows[k], rtol=1e-5, atol=1e-5)


def test_baseline_on_a_subset_of_windows_extrapolates(tiny, images):
    """N evenly spaced windows (first and last included) are run and no features are returned; N at least the
    number of windows runs them all."""
    assert baseline._chosen_windows(196, 3) == [0, 98, 195]
    assert baseline._chosen_windows(9, 9) == baseline._chosen_windows(9, None) == list(range(9))
    feats, seconds = baseline.baseline_encode(tiny, images[:1], (13,), windows_per_scale=3)
    assert feats is None and seconds > 0
    feats, _ = baseline.baseline_encode(tiny, images[:1], (13,), windows_per_scale=9)
    assert feats is not None and feats.windows[13].shape == (1, 9, tiny.embed_dim)


# --------------------------------------------------------------------------------------------------------------------
# the FLOP model
# --------------------------------------------------------------------------------------------------------------------
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
def test_encoder_flops_equal_the_ops_our_encoder_runs(tiny, images, monkeypatch, onednn):
    """The analytic count equals a count of the ops our encoder dispatches on the tiny model at the paper's scales
    (whole image + every window, block-1 q/k/v reuse and the class-token-only last block), on oneDNN's GEMMs and on
    PyTorch's default ones."""
    monkeypatch.setenv(vit_blocks.ONEDNN_ENV, onednn)
    ours = flops.encoder_flops(**TINY, scales=PAPER_SCALES)
    assert flops.model_flops(tiny) == ours
    assert _counted_flops(lambda: encode_images(tiny, images[:1], PAPER_SCALES)) == ours


def test_encoder_flops_equal_the_ops_the_baseline_runs(tiny, images):
    """The analytic count without shortcuts equals a count of the ops the baseline dispatches: one image and two
    large window scales (9 + 4 windows, each through every block) keep the count quick."""
    scales = (13, 14)
    expected = flops.encoder_flops(**TINY, scales=scales, reuse_first_qkv=False, cls_only_last=False)
    assert flops.model_flops(tiny, fast=False, scales=scales) == expected
    assert _counted_flops(lambda: baseline.baseline_encode(tiny, images[:1], scales)) == expected
    assert flops.model_flops(tiny, fast=False) == flops.encoder_flops(**TINY, reuse_first_qkv=False,
                                                                      cls_only_last=False)


def test_encoder_flops_by_hand_and_for_vit_b16_plus():
    """One block, one 1 x 1 window scale on a 2 x 2 grid, W = 2, MLP 4, D = 1 — counted by hand; and ViT-B/16+:
    the shortcuts save the ~7% the encoder's docs claim."""
    # image, 5 tokens: qkv 2*5*2*6 + attention 2*2*5*5*2 + out 2*5*2*2 + MLP 2*2*5*2*4 = 520; each of the 4 windows
    # (2 tokens; q/k/v reused, class-token only): attention 2*2*1*2*2 + out 2*1*2*2 + MLP 2*2*1*2*4 = 56;
    # patch embedding 2*4*3*2 = 48; projections of 5 class tokens 2*5*2*1 = 20
    assert flops.encoder_flops(2, 1, 4, 2, 1, 1, scales=(1,)) == 520 + 4 * 56 + 48 + 20
    # without the shortcuts each window is a 2-token image: 2*2*2*6 + 2*2*2*2*2 + 2*2*2*2 + 2*2*2*2*4 = 160
    assert flops.encoder_flops(2, 1, 4, 2, 1, 1, scales=(1,), reuse_first_qkv=False, cls_only_last=False) == (
        520 + 4 * 160 + 48 + 20)
    # stride 2 on the 2 x 2 grid: still one 2 x 2 window of scale 2 ((2 - 2) // 2 + 1 = 1)
    assert flops.encoder_flops(2, 1, 4, 2, 1, 1, scales=(2,), stride=2) == flops.encoder_flops(2, 1, 4, 2, 1, 1,
                                                                                                  scales=(2,))
    assert flops.PAPER_SCALES == PAPER_SCALES
    ours = flops.encoder_flops(896, 12, 3584, 15, 16, 640)
    base = flops.encoder_flops(896, 12, 3584, 15, 16, 640, reuse_first_qkv=False, cls_only_last=False)
    assert 620e9 < ours < 630e9 and 0.06 < 1 - ours / base < 0.09


# --------------------------------------------------------------------------------------------------------------------
# the hardware
# --------------------------------------------------------------------------------------------------------------------
def test_gemm_ceiling_measures_the_encoders_op_in_every_cpu_precision():
    """fp32, bf16 and fp16 are measured where the CPU runs them (cpu_precisions), each through the encoder's own
    op; the ratios to fp32 are those of the peaks."""
    r = hardware.gemm_ceiling(64, 256, list(PRECISIONS), torch.device("cpu"), tokens=64, repeats=1)
    assert [(g["m"], g["k"], g["n"]) for g in r["shapes"]] == [(64, 64, 192), (64, 64, 256), (64, 256, 64)]
    runs = cpu_precisions()
    assert list(r["peak_gflops"]) == runs and r["skipped"] == [p for p in PRECISIONS if p not in runs]
    assert ("fp16" in r["peak_gflops"]) == ("fp16" in runs)
    onednn = "mkldnn._linear_pointwise" if vit_blocks.onednn_linear_available() else "F.linear"
    assert r["op"]["fp32"] == onednn
    if "fp16" in runs:
        assert r["op"]["fp16"] == ("mkldnn._linear_pointwise" if vit_blocks.uses_onednn(torch.ones(1, dtype=torch.half))
                                   else "F.linear")
    for p in runs:
        assert r["peak_gflops"][p] == max(g["gflops"][p] for g in r["shapes"]) > 0
        assert r["over_fp32"][p] == pytest.approx(r["peak_gflops"][p] / r["peak_gflops"]["fp32"])
    assert r["bf16_over_fp32"] == r["over_fp32"].get("bf16")


def test_gemm_ceiling_skips_what_the_cpu_cannot_run(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_precisions", lambda: ["fp32"])
    assert hardware.runnable_precisions(["fp32", "bf16", "fp16"], torch.device("cpu")) == ["fp32"]
    assert hardware.runnable_precisions(["fp32", "fp16"], torch.device("cuda")) == ["fp32", "fp16"]
    r = hardware.gemm_ceiling(32, 64, ["fp32", "bf16", "fp16"], torch.device("cpu"), tokens=16, repeats=1)
    assert list(r["peak_gflops"]) == ["fp32"] and r["skipped"] == ["bf16", "fp16"]
    assert r["bf16_over_fp32"] is None and r["over_fp32"] == {"fp32": 1.0}


def test_cpu_isa_reads_the_flags(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    real_path = hardware.Path
    monkeypatch.setattr(hardware, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
    assert hardware.cpu_isa() == {"avx512f": True, "avx512_bf16": True, "avx512_fp16": False, "amx_tile": True,
                                  "amx_bf16": False}
    assert hardware.cpu_name() == "Some CPU"
    assert hardware.cpu_flags() == ["amx_tile", "avx512_bf16", "avx512f"]
    monkeypatch.setattr(hardware, "Path", lambda p: tmp_path / "missing")
    assert hardware.cpu_isa() is None and hardware.cpu_flags() == []


def test_onednn_isa_parser_reads_the_verbose_header():
    assert hardware.parse_onednn_isa(ONEDNN_V3_VERBOSE) == (
        "Intel AVX10.1 and Intel AMX with bfloat16 and 8-bit integer support")
    assert hardware.parse_onednn_version(ONEDNN_V3_VERBOSE) == "v3.12.0"
    # an ISA description with commas in it is kept whole
    assert hardware.parse_onednn_isa(DNNL_V2_VERBOSE) == (
        "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions")
    assert hardware.parse_onednn_version(DNNL_V2_VERBOSE) == "v2.7.3"
    # no CPU isa line: the GPU runtime line, the primitive line and other output are not an ISA
    no_isa = "\n".join(line for line in ONEDNN_V3_VERBOSE.splitlines() if "isa:" not in line)
    assert hardware.parse_onednn_isa(no_isa) is None
    assert hardware.parse_onednn_isa("isa:Intel AVX2\nsomething else") is None
    assert hardware.parse_onednn_isa("") is None and hardware.parse_onednn_version("") is None


def test_onednn_isa_runs_a_verbose_process(monkeypatch):
    """The probe process gets ONEDNN_VERBOSE=1 and its output is parsed; a failing process gives None."""
    seen = {}

    def fake_run(cmd, env, **kwargs):
        seen["env"], seen["cmd"] = env, cmd
        return subprocess.CompletedProcess(cmd, 0, stdout=ONEDNN_V3_VERBOSE, stderr="")

    monkeypatch.setattr(hardware.subprocess, "run", fake_run)
    assert hardware.onednn_isa() == {"isa": "Intel AVX10.1 and Intel AMX with bfloat16 and 8-bit integer support",
                                     "version": "v3.12.0"}
    assert seen["env"]["ONEDNN_VERBOSE"] == "1" and seen["cmd"][0] == sys.executable

    def failing(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, 1)

    monkeypatch.setattr(hardware.subprocess, "run", failing)
    assert hardware.onednn_isa() is None
    monkeypatch.setattr(hardware.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ImportError"))
    assert hardware.onednn_isa() is None


# --------------------------------------------------------------------------------------------------------------------
# encoder variants of the rows
# --------------------------------------------------------------------------------------------------------------------
def test_compiled_blocks_routes_the_encoder_through_the_compiled_functions(tiny, images):
    """Within compiled_blocks the encoder calls what compile_fn returned for its window and image chunks (so
    --compile times what it says), and the originals are back afterwards, also after an error."""
    original = {name: getattr(encoder_module, name) for name in bench.COMPILED_FUNCTIONS}
    calls = dict.fromkeys(bench.COMPILED_FUNCTIONS, 0)

    def spy(fn):
        def wrapped(*args, **kwargs):
            calls[fn.__name__] += 1
            return fn(*args, **kwargs)
        return wrapped

    with bench.compiled_blocks(True, compile_fn=spy):
        assert all(getattr(encoder_module, n) is not f for n, f in original.items())
        encode_images(tiny, images[:1], (14,))
    assert calls == {"_window_chunk": 1, "_image_chunk": 1}
    assert {n: getattr(encoder_module, n) for n in original} == original
    with pytest.raises(RuntimeError, match="inside"), bench.compiled_blocks(True, compile_fn=spy):
        raise RuntimeError("inside")
    assert {n: getattr(encoder_module, n) for n in original} == original


def test_a_compiled_row_is_compared_with_its_eager_row(tiny, images):
    """A "+ compile" row records the largest difference of its maps and scores from the eager row of its precision
    (so a compiled encoder is kept only when it is exact): here dynamo's graph run eagerly, which already moves the
    maps by about an ulp on this CPU."""
    kw = {"batch_size": 2, "max_tokens": bench.CPU_DEFAULTS["max_tokens"], "repeats": 1, "warmup": 0}
    eager = bench.run_ours(tiny, images, images[:1], **kw)
    with bench.compiled_blocks(True, lambda fn: torch.compile(fn, backend="eager")):
        compiled = bench.run_ours(tiny, images, images[:1], **kw)
    moved = {**compiled, "_fs": {**compiled["_fs"], "map": compiled["_fs"]["map"] + 2.5e-3}}
    rows = [{**eager, "name": "ours fp32", "kind": "fp32"}, {**compiled, "name": "ours fp32 + compile", "kind": "fp32"},
            {**moved, "name": "ours fp32 + compile (reduce-overhead)", "kind": "fp32"}]
    bench._finish_rows(rows)
    expected = max(float((compiled[m][k] - eager[m][k]).abs().max()) for m in ("_zs", "_fs") for k in ("map", "score"))
    assert expected < 1e-5
    assert rows[0]["max_abs_diff_vs_eager"] is None
    assert rows[1]["max_abs_diff_vs_eager"] == expected
    assert rows[2]["max_abs_diff_vs_eager"] == pytest.approx(2.5e-3, abs=2e-5)


def test_compile_modes(tmp_path):
    """--compile-mode takes torch.compile's modes only; under CUDA graphs each call's outputs are copies (a replay
    would overwrite the previous call's), equal to the eager outputs."""
    with pytest.raises(ValueError, match="unknown compile mode 'fast'"):
        bench.compile_function("fast")

    def f(x):
        return x * 2, {"plus": x + 1}

    graphed = bench.compile_function("reduce-overhead")(f)
    x = torch.arange(6.0).reshape(2, 3)
    first, second = graphed(x), graphed(x)
    assert torch.equal(first[0], x * 2) and torch.equal(first[1]["plus"], x + 1)
    assert first[0].data_ptr() != second[0].data_ptr()
    assert bench.parse_args(["--compile", "--compile-mode", "reduce-overhead"]).compile_mode == "reduce-overhead"


def test_default_gemm_turns_onednn_off_and_restores_the_setting(monkeypatch):
    monkeypatch.setenv(vit_blocks.ONEDNN_ENV, "1")
    x = torch.ones(2, 4)
    before = vit_blocks.uses_onednn(x)
    with bench.default_gemm(True):
        assert vit_blocks.uses_onednn(x) is False
    assert vit_blocks.uses_onednn(x) == before and bench.os.environ[vit_blocks.ONEDNN_ENV] == "1"
    monkeypatch.delenv(vit_blocks.ONEDNN_ENV)
    with bench.default_gemm(True):
        assert bench.os.environ[vit_blocks.ONEDNN_ENV] == "0"
    assert vit_blocks.ONEDNN_ENV not in bench.os.environ


def test_unknown_precision_is_refused():
    with pytest.raises(SystemExit, match="unknown auto"):
        bench.main(["--model", TINY_MODEL, "--precisions", "fp32,auto"])


# --------------------------------------------------------------------------------------------------------------------
# precision "auto" (from small dicts: no timing)
# --------------------------------------------------------------------------------------------------------------------
def _auto(picked="fp32", encode=None, source="probe"):
    rows = [{"name": "ours fp32", "encode_speedup_vs_fp32": 1.0}]
    rows += [{"name": f"ours {p}", "encode_speedup_vs_fp32": r} for p, r in (encode or {}).items()]
    rows += [{"name": "ours fp32 (default GEMM)", "encode_speedup_vs_fp32": 0.5}]
    ceiling = {"cpu": {"onednn_isa": "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions",
                       "onednn_version": "v3.5.0"},
               "gemm": {"tokens": 2048, "peak_gflops": {"fp32": 200.0, "bf16": 130.0},
                        "over_fp32": {"fp32": 1.0, "bf16": 0.65}}}
    choice = {"precision": picked, "source": source, "ratios": {"fp32": 1.0, "bf16": 0.62},
              "gflops": {"fp32": 180.0, "bf16": 111.6}, "seconds": 0.41, "machine": "m"}
    return autop.summarize_auto(rows, ceiling, choice, "cpu")


def test_auto_section_says_plainly_when_bf16_is_slower(monkeypatch):
    monkeypatch.delenv("WINCLIP_PRECISION", raising=False)
    auto = _auto("fp32", {"bf16": 0.6})
    assert auto["picked"] == "fp32" and auto["auto_row"] == "ours fp32" and auto["auto_encode_speedup_vs_fp32"] == 1.0
    assert auto["encode_speedup_vs_fp32"] == {"fp32": 1.0, "bf16": 0.6}
    assert auto["probe_ratios"] == {"fp32": 1.0, "bf16": 0.62} and auto["probe_seconds"] == 0.41
    assert auto["verdicts"] == ["bf16 is SLOWER than fp32 on this CPU (0.60x encode): auto keeps fp32"]
    text = "\n".join(autop.format_auto(json.loads(json.dumps(auto))))
    assert 'precision "auto"' in text
    assert "oneDNN v3.5.0 detects: Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions" in text
    assert "fp32 200 GFLOP/s, bf16 130 GFLOP/s (0.65x fp32)" in text
    assert "took 0.41 s" in text and "bf16 0.62x -> auto picks fp32" in text
    assert "auto = fp32: encode 1.00x our fp32 row (ours fp32)" in text
    assert "bf16 is SLOWER than fp32 on this CPU (0.60x encode): auto keeps fp32" in text


def test_auto_section_with_a_faster_pick_and_without_its_row():
    auto = _auto("bf16", {"bf16": 2.5, "fp16": 0.9})
    assert auto["auto_row"] == "ours bf16" and auto["auto_encode_speedup_vs_fp32"] == 2.5
    assert auto["verdicts"] == ["bf16 is 2.50x as fast as fp32 on this CPU (encode): auto picks bf16",
                                "fp16 is SLOWER than fp32 on this CPU (0.90x encode): auto picks bf16"]
    text = "\n".join(autop.format_auto(auto))
    assert "auto = bf16: encode 2.50x our fp32 row (ours bf16)" in text
    # the pick encoded slower than fp32: said so
    assert "auto's pick bf16 encoded SLOWER than fp32 in this run (0.80x)" in "\n".join(
        _auto("bf16", {"bf16": 0.8})["verdicts"])
    # no bf16 row: the ratio falls back to the GEMM peak, and the table says there is no row to compare
    auto = _auto("bf16")
    assert auto["auto_row"] is None and auto["auto_encode_speedup_vs_fp32"] is None
    assert auto["verdicts"] == ["bf16 is SLOWER than fp32 on this CPU (0.65x GEMM peak): auto picks bf16"]
    assert "auto = bf16: no row of that precision in this run" in "\n".join(autop.format_auto(auto))


def test_auto_section_names_what_the_cpu_does_not_run():
    rows = [{"name": "ours fp32", "encode_speedup_vs_fp32": 1.0}]
    ceiling = {"cpu": {}, "gemm": {"tokens": 2048, "peak_gflops": {"fp32": 90.0}, "over_fp32": {"fp32": 1.0},
                                   "skipped": ["bf16", "fp16"]}}
    choice = {"precision": "fp32", "source": "probe", "ratios": {"fp32": 1.0}, "gflops": {"fp32": 90.0},
              "seconds": 0.2, "machine": "m"}
    auto = autop.summarize_auto(rows, ceiling, choice, "cpu")
    assert auto["not_run"] == ["bf16", "fp16"]
    assert auto["verdicts"] == ["bf16 does not run on this CPU: auto keeps fp32",
                                "fp16 does not run on this CPU: auto keeps fp32"]


def test_auto_section_on_cuda():
    """On CUDA auto is resolve_precision's rule (no probe, no oneDNN line); the verdicts name the GPU."""
    rows = [{"name": "ours fp32", "encode_speedup_vs_fp32": 1.0}, {"name": "ours bf16", "encode_speedup_vs_fp32": 4.0}]
    ceiling = {"cpu": {"onednn_isa": None}, "gemm": {"tokens": 16384, "peak_gflops": {"fp32": 50e3, "bf16": 400e3},
                                                     "over_fp32": {"fp32": 1.0, "bf16": 8.0}}}
    choice = {"precision": "bf16", "source": "cuda", "ratios": {}, "gflops": {}, "seconds": 0.0, "machine": ""}
    auto = autop.summarize_auto(rows, ceiling, choice, "cuda")
    assert auto["auto_encode_speedup_vs_fp32"] == 4.0
    assert auto["verdicts"] == ["bf16 is 4.00x as fast as fp32 on this GPU (encode): auto picks bf16"]
    text = "\n".join(autop.format_auto(auto))
    assert "auto on this GPU: bf16 (cuda)" in text and "oneDNN" not in text and "probe_cpu" not in text


# --------------------------------------------------------------------------------------------------------------------
# the tiny end-to-end run
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "speed.json"
    result = bench.main(["--model", TINY_MODEL, "--quick", "--images", "2", "--k", "1", "--aupro-images", "4",
                         "--out", str(out)])
    return result, out


def test_every_row_computes_the_fp32_maps_within_its_tolerance(tiny_run):
    result, _ = tiny_run
    rows = {r["name"]: r for r in result["rows"]}
    ours = {f"ours {p}" for p in cpu_precisions()}
    assert set(rows) == {"baseline fp32 (1 window/call)", "ours fp32 (default GEMM)", *ours}
    # the rows are those of the precisions this CPU runs; the others are named as not run, not silently dropped
    assert result["meta"]["precisions"] == cpu_precisions()
    assert result["meta"]["precisions_not_run"] == [p for p in PRECISIONS if p not in cpu_precisions()]
    assert rows["baseline fp32 (1 window/call)"]["measured"] == "all"  # full baseline: its maps are compared
    for name, r in rows.items():
        for key in ("zs_max_abs_map_diff", "zs_max_abs_score_diff", "fs_max_abs_map_diff", "fs_max_abs_score_diff"):
            assert r[key] is not None and r[key] <= r["tolerance"], f"{name}: {key} = {r[key]} > {r['tolerance']}"
        assert r["within_tolerance"] is True
        assert r["tolerance"] == (1e-4 if r["kind"] in ("baseline", "fp32") else 0.02)
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
    assert set(on_disk["stages"]["text"]) == set(cpu_precisions())
    assert all(t["cold_s"] > 0 and t["cached_s"] > 0 for t in on_disk["stages"]["text"].values())
    aupro = on_disk["stages"]["aupro"]
    assert "skipped" not in aupro, aupro
    assert aupro["n_images"] == 4 and aupro["seconds"] > 0 and 0 <= aupro["aupro"] <= 1


def test_ceiling_and_achieved_gflops(tiny_run):
    result, _ = tiny_run
    c = result["ceiling"]
    assert c["cpu"]["threads"] == result["meta"]["threads"] and c["cpu"]["precisions"] == cpu_precisions()
    if torch.backends.mkldnn.is_available():  # the real oneDNN verbose output parsed
        assert isinstance(c["cpu"]["onednn_isa"], str) and c["cpu"]["onednn_isa"]
        assert c["cpu"]["onednn_version"].startswith("v")
    assert c["flops_per_image"] == {"ours": flops.encoder_flops(**TINY),
                                    "baseline": flops.encoder_flops(**TINY, reuse_first_qkv=False,
                                                                    cls_only_last=False)}
    assert list(c["gemm"]["peak_gflops"]) == cpu_precisions()
    for r in result["rows"]:
        f = c["flops_per_image"]["baseline" if r["kind"] == "baseline" else "ours"]
        assert r["encode_gflops"] == pytest.approx(f / r["encode_s_per_image"] / 1e9)
        peak = c["gemm"]["peak_gflops"]["fp32" if r["kind"] == "baseline" else r["kind"]]
        assert r["fraction_of_gemm_peak"] == pytest.approx(r["encode_gflops"] / peak)


def test_auto_section_of_the_run(tiny_run):
    result, _ = tiny_run
    auto, rows = result["auto"], {r["name"]: r for r in result["rows"]}
    assert auto["source"] == "probe" and auto["picked"] in cpu_precisions() and auto["probe_seconds"] > 0
    assert set(auto["probe_ratios"]) == set(cpu_precisions()) and auto["probe_ratios"]["fp32"] == 1.0
    assert auto["onednn_isa"] == result["ceiling"]["cpu"]["onednn_isa"]
    assert auto["gemm_peak_gflops"] == result["ceiling"]["gemm"]["peak_gflops"]
    assert auto["auto_row"] == f"ours {auto['picked']}"
    assert auto["auto_encode_speedup_vs_fp32"] == pytest.approx(
        rows["ours fp32"]["encode_s_per_image"] / rows[auto["auto_row"]]["encode_s_per_image"])
    runs = cpu_precisions()
    for p in (p for p in runs if p != "fp32"):  # one sentence per low precision (and maybe a warning)
        assert sum(v.startswith(f"{p} is ") for v in auto["verdicts"]) == 1, auto["verdicts"]
    assert auto["not_run"] == [p for p in PRECISIONS if p not in runs]
    tail = "auto keeps fp32" if auto["picked"] == "fp32" else f"auto picks {auto['picked']}"
    for p in auto["not_run"]:  # what this CPU does not run is said so, and nothing is measured for it
        assert f"{p} does not run on this CPU: {tail}" in auto["verdicts"] and p not in auto["probe_ratios"]


def test_table_prints_every_row_and_section(tiny_run):
    result, _ = tiny_run
    table = bench.format_table(result)
    for r in result["rows"]:
        assert r["name"] in table
    assert "×base" in table and "×fp32" in table and "text ensemble" in table
    runs = cpu_precisions()
    # a low precision this CPU runs is compared with fp32; one it does not run is named as not run
    assert ("ceiling of each speed-up over fp32 from GEMMs alone" in table) == (runs != ["fp32"])
    for p in (p for p in PRECISIONS if p != "fp32"):
        assert (f"{p} vs our fp32:" in table) == (p in runs)
    not_run = [p for p in PRECISIONS if p not in runs]
    assert (f"not run on this CPU: {', '.join(not_run)}" in table) == bool(not_run)
    auto = result["auto"]
    assert 'precision "auto"' in table and f"-> auto picks {auto['picked']}" in table
    assert f"auto = {auto['picked']}: encode {auto['auto_encode_speedup_vs_fp32']:.2f}x our fp32 row" in table
    assert all(v in table for v in auto["verdicts"])
    assert ("fp16 GFLOP/s" in table and "fp16/fp32" in table) == ("fp16" in runs)


# --------------------------------------------------------------------------------------------------------------------
# the project's other CPUs: oneDNN capped to a lower instruction set
# --------------------------------------------------------------------------------------------------------------------
#: The CPU flags of oneDNN's AVX512_CORE level (AVX-512 F, BW, VL, DQ).
AVX512_CORE_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
# Run in a fresh process (oneDNN reads its cap once): the tiny benchmark, then what the library decides and what
# oneDNN itself builds, asked directly.
UNDER_CAP = """
import json, sys
import torch
from benchmarks import bench_speed as bench
from winclip_lib.core import vit_blocks
from winclip_lib.core.precision import PRECISIONS, cpu_precisions

def onednn_builds(dtype):
    x, w, b = torch.ones(4, 8, dtype=dtype), torch.ones(3, 8, dtype=dtype), torch.zeros(3, dtype=dtype)
    try:
        return bool(torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "").eq(8).all())
    except RuntimeError:  # oneDNN has no kernel for it under this ISA
        return False

result = bench.main(["--model", sys.argv[1], "--images", "1", "--k", "1", "--baseline-images", "0",
                     "--aupro-images", "0", "--no-default-gemm", "--out", sys.argv[2]])
print(json.dumps({"cpu_precisions": cpu_precisions(), "table": bench.format_table(result),
                  "onednn_builds": {p: onednn_builds(d) for p, d in PRECISIONS.items()},
                  "use_onednn": {p: vit_blocks.uses_onednn(torch.ones(1, dtype=d)) for p, d in PRECISIONS.items()}}))
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not vit_blocks.onednn_linear_available(),
                    reason="oneDNN's ISA caps are x86's")
@pytest.mark.parametrize("cap", ["AVX2", "AVX512_CORE"])
def test_under_an_isa_cap_every_decision_is_what_the_capped_cpu_runs(tmp_path, cap):
    """The project's CPUs differ in what oneDNN runs: AVX2 only (fp32), AVX-512 without bf16 instructions (bf16
    emulated, slower), AVX512_BF16 or AMX (bf16 native), AVX512_FP16 (fp16 too). ``ONEDNN_MAX_CPU_ISA`` emulates the
    first two on this CPU (a cap lowers the ISA, never raises it). Under the cap, in a fresh process, the library's
    precisions, the encoder's GEMM choice, the benchmark's rows, hardware section and "auto" must be what the capped
    CPU runs — derived from the cap and /proc/cpuinfo, and asked of oneDNN directly — and auto keeps fp32 where low
    precision is only emulated."""
    runs = ["fp32", "bf16"] if cap == "AVX512_CORE" and AVX512_CORE_FLAGS <= set(cpu_model_and_flags()[1].split()) \
        else ["fp32"]
    not_run = [p for p in PRECISIONS if p not in runs]
    env = {k: v for k, v in os.environ.items() if k != "DNNL_MAX_CPU_ISA"} | {"ONEDNN_MAX_CPU_ISA": cap}
    out = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, "-c", UNDER_CAP, TINY_MODEL, str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen, result = json.loads(done.stdout.splitlines()[-1]), json.loads(out.read_text())
    # oneDNN itself, the library, and the encoder's GEMM choice
    assert [p for p, ok in seen["onednn_builds"].items() if ok] == runs
    assert seen["cpu_precisions"] == runs
    assert seen["use_onednn"] == {"fp32": True, "bf16": "bf16" in runs, "fp16": False}
    # the benchmark: its rows, its hardware section and its "auto" section
    meta, cpu, gemm, auto = result["meta"], result["ceiling"]["cpu"], result["ceiling"]["gemm"], result["auto"]
    assert meta["precisions"] == cpu["precisions"] == list(gemm["peak_gflops"]) == runs
    assert meta["precisions_not_run"] == gemm["skipped"] == auto["not_run"] == not_run
    assert [r["name"] for r in result["rows"]] == [f"ours {p}" for p in runs]
    assert all(r["within_tolerance"] for r in result["rows"])
    assert cpu["onednn_isa_cap"] == cap and f"(capped: ONEDNN_MAX_CPU_ISA={cap})" in seen["table"]
    assert ("AVX-512" in cpu["onednn_isa"]) == ("bf16" in runs) and "bfloat16" not in cpu["onednn_isa"]
    assert auto["source"] == "probe" and list(auto["probe_ratios"]) == runs
    assert auto["picked"] == "fp32" and all(r < SPEEDUP_THRESHOLD for r in auto["probe_ratios"].values()), auto
    assert [v for v in auto["verdicts"] if "does not run" in v] == [
        f"{p} does not run on this CPU: auto keeps fp32" for p in not_run]
