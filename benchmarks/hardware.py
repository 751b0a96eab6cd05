"""What the hardware can do: the CPU's name and ISA flags, the ISA oneDNN dispatches to, and the peak GFLOP/s of the
encoder's own GEMM op per precision at the encoder's block shapes (the ceiling each row's encoding is measured
against)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.flops import model_flops
from benchmarks.timing import timed
from winclip_lib.core import vit_blocks
from winclip_lib.core.backbone import Backbone
from winclip_lib.core.encoder import call_tokens
from winclip_lib.core.precision import PRECISIONS, cpu_precisions, parse_cpuinfo

__all__ = [
    "GEMM_SHAPES",
    "ISA_FLAGS",
    "cpu_flags",
    "cpu_isa",
    "cpu_name",
    "gemm_ceiling",
    "hardware_ceiling",
    "onednn_isa",
    "onednn_isa_cap",
    "parse_onednn_isa",
    "parse_onednn_version",
    "runnable_precisions",
]

#: ISA flags that decide how fast low-precision GEMMs can be: AVX-512 (fp32 FMA), AVX512_BF16 (bf16 dot products),
#: AVX512_FP16, and AMX (tile matrix units for bf16).
ISA_FLAGS = ("avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
#: What :func:`cpu_flags` lists: the matrix-math features (ISA_FLAGS plus AMX-FP16 and AVX-VNNI).
MATRIX_FLAGS = (*ISA_FLAGS, "amx_fp16", "avx_vnni")
#: The linear layers of a block, as (name, N, K) in units of the width W and the MLP width M.
GEMM_SHAPES = (("qkv", "3W", "W"), ("mlp fc", "M", "W"), ("mlp proj", "W", "M"))
#: The largest token count of the ceiling's GEMMs (the encoder's CPU calls are smaller; CUDA calls can be larger).
MAX_CEILING_TOKENS = 16384

# A tiny oneDNN op: with ONEDNN_VERBOSE=1, oneDNN prints its version and the ISA it dispatches to before running it.
_ONEDNN_PROBE = (
    "import torch\n"
    "x, w, b = torch.ones(4, 8), torch.ones(3, 8), torch.zeros(3)\n"
    "if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise'):\n"
    "    torch.ops.mkldnn._linear_pointwise(x, w, b, 'none', [], '')\n"
    "else:\n"
    "    torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))\n"
)
_VERBOSE_LINE = re.compile(r"^(?:onednn|dnnl)_verbose,(.*)$")


def _cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    return parse_cpuinfo(_cpuinfo() or "")[0]


def cpu_flags() -> list[str]:
    """The CPU's matrix-math features relevant to low-precision speed (AMX, AVX-512 BF16/FP16, AVX-VNNI), sorted."""
    text = _cpuinfo()
    if text is None:
        return []
    return sorted(set(parse_cpuinfo(text)[1].split()) & set(MATRIX_FLAGS))


def cpu_isa() -> dict[str, bool] | None:
    """{flag: present} for :data:`ISA_FLAGS` from ``/proc/cpuinfo``; None where it cannot be read (not Linux)."""
    text = _cpuinfo()
    if text is None:
        return None
    present = set(parse_cpuinfo(text)[1].split())
    return {f: f in present for f in ISA_FLAGS}


def parse_onednn_isa(text: str) -> str | None:
    """The ISA named on the CPU ``isa:`` info line of oneDNN's verbose output (``ONEDNN_VERBOSE=1``, or
    ``DNNL_VERBOSE=1`` before oneDNN 3), e.g. "Intel AVX10.1 and Intel AMX with bfloat16 and 8-bit integer
    support"; None when the text has no such line."""
    for line in text.splitlines():
        m = _VERBOSE_LINE.match(line.strip())
        if m is None:
            continue
        fields = m.group(1).split(",")
        for i, f in enumerate(fields):
            if f.startswith("isa:") and "cpu" in fields[:i]:
                # the ISA's description may itself hold commas: the rest of the line belongs to it
                isa = ",".join([f[len("isa:"):], *fields[i + 1:]]).strip()
                return isa or None
    return None


def parse_onednn_version(text: str) -> str | None:
    """oneDNN's version from its verbose output ("v3.12.0"), or None."""
    m = re.search(r"(?:oneDNN|DNNL)\s+(v\d+(?:\.\d+)*)", text)
    return m.group(1) if m else None


def onednn_isa(timeout: float = 120.0) -> dict[str, str | None] | None:
    """{"isa", "version"} of the oneDNN this torch runs, read from its verbose output while a tiny oneDNN op runs in
    a fresh Python process (with this process's environment, so ``ONEDNN_MAX_CPU_ISA`` is honoured); None where
    that process fails or oneDNN prints no ISA."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", _ONEDNN_PROBE], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = done.stdout + "\n" + done.stderr
    isa = parse_onednn_isa(text)
    return None if isa is None else {"isa": isa, "version": parse_onednn_version(text)}


def onednn_isa_cap() -> str | None:
    """The instruction set oneDNN is capped at (``ONEDNN_MAX_CPU_ISA``, or ``DNNL_MAX_CPU_ISA`` before oneDNN 3),
    e.g. "AVX2"; None when uncapped. A cap only lowers what the CPU's flags allow, never raises it."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or None


def runnable_precisions(precisions: Sequence[str], device: torch.device) -> list[str]:
    """The precisions of ``precisions`` that ``device`` runs: all on CUDA; on the CPU those of
    :func:`winclip_lib.core.precision.cpu_precisions`."""
    if device.type != "cpu":
        return list(precisions)
    available = set(cpu_precisions())
    return [p for p in precisions if p in available]


def _gemm_name(x: torch.Tensor) -> str:
    """Which GEMM the encoder's :func:`winclip_lib.core.vit_blocks.linear` runs for input x."""
    return "mkldnn._linear_pointwise" if vit_blocks.uses_onednn(x) else "F.linear"


@torch.inference_mode()
def gemm_ceiling(width: int, mlp_width: int, precisions: Sequence[str], device: torch.device, tokens: int,
                 repeats: int = 5) -> dict[str, Any]:
    """Peak GFLOP/s of the encoder's GEMM op (:func:`winclip_lib.core.vit_blocks.linear`) at its block shapes
    (``tokens`` x K -> N), per precision that ``device`` runs (:func:`runnable_precisions`; the others are listed
    under ``skipped``): best of ``repeats`` after two warm-up calls, at the current ``torch.set_num_threads``.

    Returns:
        {"tokens", "repeats", "op": {precision: GEMM name}, "shapes": [{"name", "m", "k", "n", "gflops":
        {precision: GFLOP/s}}], "peak_gflops": {precision: best over the shapes}, "over_fp32": {precision: its
        peak / fp32's}, "bf16_over_fp32", "skipped": [precisions not run here]}.
    """
    sizes = {"W": width, "3W": 3 * width, "M": mlp_width}
    run = runnable_precisions(precisions, device)
    g = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {"tokens": tokens, "repeats": repeats, "op": {}, "shapes": [], "peak_gflops": {},
                           "skipped": [p for p in precisions if p not in run]}
    for name, n_key, k_key in GEMM_SHAPES:
        n, k = sizes[n_key], sizes[k_key]
        row: dict[str, Any] = {"name": name, "m": tokens, "k": k, "n": n, "gflops": {}}
        for precision in run:
            dtype = PRECISIONS[precision]
            x, w, b = (torch.randn(*s, generator=g).to(device, dtype) for s in ((tokens, k), (n, k), (n,)))
            op = vit_blocks.linear
            for _ in range(2):
                op(x, w, b)
            _, seconds = timed(lambda op=op, x=x, w=w, b=b: op(x, w, b), device, repeats)
            row["gflops"][precision] = 2 * tokens * k * n / seconds / 1e9
            out["op"][precision] = _gemm_name(x)
            out["peak_gflops"][precision] = max(out["peak_gflops"].get(precision, 0.0), row["gflops"][precision])
        out["shapes"].append(row)
    peak = out["peak_gflops"]
    out["over_fp32"] = {p: v / peak["fp32"] for p, v in peak.items()} if peak.get("fp32") else {}
    out["bf16_over_fp32"] = out["over_fp32"].get("bf16")
    return out


def hardware_ceiling(backbone: Backbone, precisions: Sequence[str], max_tokens: int) -> dict[str, Any]:
    """The CPU's facts (model, threads, ISA flags, the ISA oneDNN detects), the GEMM peak per precision at the
    backbone's block shapes and the encoder's call size, and the FLOPs per image of our encoder and of the
    baseline."""
    device = backbone.device
    on_cpu = device.type == "cpu"
    isa = cpu_isa() if on_cpu else None
    onednn = onednn_isa() if on_cpu else None
    blocks = list(backbone.visual.transformer.resblocks)
    return {
        "cpu": {
            "name": cpu_name(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "isa": isa,
            "amx": None if isa is None else isa["amx_tile"] and isa["amx_bf16"],
            "onednn_isa": None if onednn is None else onednn["isa"],
            "onednn_version": None if onednn is None else onednn["version"],
            "onednn_isa_cap": onednn_isa_cap(),
            "torch_cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
            "precisions": cpu_precisions() if on_cpu else None,
        },
        "gemm": gemm_ceiling(backbone.width, blocks[0].mlp.c_fc.out_features, precisions, device,
                             min(call_tokens(max_tokens, device), MAX_CEILING_TOKENS)),
        "flops_per_image": {"ours": model_flops(backbone, fast=True), "baseline": model_flops(backbone, fast=False)},
    }
