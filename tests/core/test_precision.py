"""precision="auto": the decision rule, the overrides, the per-machine memory, and that a run records what it used."""

from __future__ import annotations

import json
import platform

import pytest
import torch

from winclip_lib import WinCLIP
from winclip_lib.core import precision as P
from winclip_lib.core.backbone import TINY_MODEL, load_backbone
from winclip_lib.datasets.synthetic import make_synthetic
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.grid import run_grid


@pytest.mark.parametrize(
    ("ratios", "chosen"),
    [
        ({"fp32": 1.0, "bf16": 2.97, "fp16": 0.95}, "bf16"),  # a CPU with AMX or AVX512_BF16 dot products
        ({"fp32": 1.0, "bf16": 0.6, "fp16": 0.9}, "fp32"),  # the Intel VM with AMX hidden: bf16 is slower
        ({"bf16": 1.15}, "fp32"),  # faster, but not clearly: fp32 stays
        ({"bf16": 1.2}, "bf16"),  # exactly the threshold counts
        ({"bf16": 1.5, "fp16": 1.8}, "fp16"),  # the fastest wins
        ({}, "fp32"),
    ],
)
def test_the_decision_is_a_pure_function_of_the_measured_ratios(ratios, chosen):
    assert P.choose_precision(ratios) == chosen


def test_explicit_argument_and_environment_override_the_probe(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv(P.PRECISION_ENV, "fp16")
    assert P.resolve_precision("auto", cpu) == P.PrecisionChoice("fp16", "environment")
    assert P.resolve_precision("bf16", cpu) == P.PrecisionChoice("bf16", "argument")  # the argument wins
    monkeypatch.setenv(P.PRECISION_ENV, "int4")
    with pytest.raises(ValueError, match="WINCLIP_PRECISION='int4'"):
        P.resolve_precision("auto", cpu)
    with pytest.raises(ValueError, match="unknown precision 'fp64'"):
        P.resolve_precision("fp64", cpu)


def test_auto_probes_once_per_machine_and_remembers(monkeypatch, tmp_path):
    monkeypatch.delenv(P.PRECISION_ENV, raising=False)
    monkeypatch.setenv(P.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(P, "_MEMO", {})
    calls = []

    def fake_probe(precisions=None, threshold=P.SPEEDUP_THRESHOLD):
        calls.append(1)
        return P.PrecisionChoice("bf16", "probe", {"fp32": 1.0, "bf16": 2.5}, {"fp32": 100.0, "bf16": 250.0}, 0.3,
                                 P.machine_key())

    monkeypatch.setattr(P, "probe_cpu", fake_probe)
    first = P.resolve_precision("auto", torch.device("cpu"))
    assert first.precision == "bf16" and first.source == "probe" and len(calls) == 1
    assert "precision bf16 (probe; speed vs fp32: fp32 1.00x, bf16 2.50x" in first.describe()
    stored = json.loads((tmp_path / "precision.json").read_text())
    assert stored["machines"][P.machine_key()]["precision"] == "bf16"
    monkeypatch.setattr(P, "_MEMO", {})  # a new process on the same machine
    again = P.resolve_precision("auto", torch.device("cpu"))
    assert again.precision == "bf16" and again.source == "remembered" and len(calls) == 1
    assert again.ratios == {"fp32": 1.0, "bf16": 2.5}


def test_the_probe_times_the_encoders_own_gemm_in_each_precision_this_cpu_runs():
    """Exactly the precisions oneDNN runs here (``_is_mkldnn_*_supported``, which honour ``ONEDNN_MAX_CPU_ISA``;
    tests/test_bench.py runs this under caps); a precision asked for explicitly is timed too."""
    runs = P.cpu_precisions()
    assert runs[0] == "fp32" and set(runs) <= set(P.PRECISIONS)
    assert ("bf16" in runs) == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert ("fp16" in runs) == torch.ops.mkldnn._is_mkldnn_fp16_supported()
    choice = P.probe_cpu()
    assert list(choice.ratios) == list(choice.gflops) == runs and choice.ratios["fp32"] == 1.0
    assert all(g > 0 for g in choice.gflops.values()) and choice.seconds > 0
    assert choice.precision == P.choose_precision(choice.ratios)
    assert list(P.probe_cpu(["bf16"], rounds=1).ratios) == ["fp32", "bf16"]


def test_the_machine_key_changes_with_the_onednn_isa_cap_and_the_gemm_switch(monkeypatch):
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "WINCLIP_ONEDNN"):
        monkeypatch.delenv(name, raising=False)
    plain = P.machine_key()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_FP16")
    capped = P.machine_key()
    monkeypatch.setenv("WINCLIP_ONEDNN", "0")
    assert len({plain, capped, P.machine_key()}) == 3  # a remembered choice is never reused under another cap


def test_auto_resolves_to_a_real_precision_recorded_everywhere(tmp_path):
    """The backbone, the feature cache key and run.json hold the precision actually used, never "auto"; maps under
    auto equal the maps of that precision asked for explicitly."""
    auto = load_backbone(TINY_MODEL, None, precision="auto", device="cpu")
    assert auto.precision in P.PRECISIONS and auto.precision_choice.source in ("probe", "remembered")
    explicit = load_backbone(TINY_MODEL, None, precision=auto.precision, device="cpu")
    x = torch.randn(2, 3, 240, 240, generator=torch.Generator().manual_seed(0))
    a, b = WinCLIP(auto, "disc").predict(x), WinCLIP(explicit, "disc").predict(x)
    assert torch.equal(a.map, b.map) and torch.equal(a.score, b.score)

    data = make_synthetic(tmp_path / "syn", categories=("disc",), n_train=1, n_test_good=1, n_test_bad=1, size=40)
    cfg = RunConfig(datasets={"synthetic": str(data)}, shots=(0,), model_name=TINY_MODEL, pretrained=None,
                    precision="auto", device="cpu", cache_dir=str(tmp_path / "c"), out_dir=str(tmp_path / "o"))
    result = run_grid(cfg, progress=False, backbone=auto)
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert info["config"]["precision"] == "auto" and info["precision"] == auto.precision
    assert info["precision_choice"]["precision"] == auto.precision
    assert info["feature_cache"]["spec"]["precision"] == auto.precision
    assert info["result_config"]["precision"] == auto.precision and result.complete


def test_cpuinfo_parsing_takes_the_first_processor_and_arms_features():
    text = ("processor\t: 0\nmodel name\t: CPU A\nflags\t\t: fpu avx512f amx_tile\n\n"
            "processor\t: 1\nmodel name\t: CPU B\nflags\t\t: fpu\n")
    assert P.parse_cpuinfo(text) == ("CPU A", "fpu avx512f amx_tile")
    model, flags = P.parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert flags == "fp asimd bf16" and model == (platform.processor() or platform.machine())
