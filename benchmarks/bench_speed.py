"""Speed benchmark of WinCLIP / WinCLIP+ (issue 5): one run, one random-weight backbone, the same inputs for every row.

    python benchmarks/bench_speed.py [--device cpu|cuda] [--quick] [--out build/bench/speed_<device>.json]
    python benchmarks/bench_speed.py --device cuda [--compile]    # the GPU run: 512 images, batches of 256

(``make bench`` runs the CPU table; a full CPU run takes ~6 minutes on 2 cores, ``--quick`` ~2.)

Rows:

- ``baseline fp32 (1 window/call)``: a straightforward first reproduction written here — the whole image, then each
  window alone, through open_clip's own ``visual.transformer`` in fp32. It is run on ``--baseline-images`` query
  images (and, for its few-shot row, on the k references); with ``--baseline-windows N`` only N windows per scale
  are run and the per-window time is extrapolated to all windows (the table says so, and has no map differences
  for it then).
- ``ours <precision>``: :class:`winclip_lib.WinCLIP` with the batched window encoder, weights in fp32 / bf16 (and
  fp16 on a GPU); ``--compile`` adds the same rows with the encoder's blocks under ``torch.compile``.
- ``ours fp32 (default GEMM)`` (CPU): our fp32 encoder on PyTorch's default CPU GEMMs (``WINCLIP_ONEDNN=0``) instead
  of oneDNN's, to show what that choice is worth on this CPU.

Per row: seconds per image and images per second for encoding alone, for zero-shot ``predict`` and for few-shot
``predict`` with k references (``fit`` timed separately); speed-ups over the baseline and over our fp32 row; the
largest absolute difference of the final anomaly maps and image scores from our fp32 row (same images); peak memory
(process RSS, reset before each row through ``/proc/self/clear_refs`` where Linux allows it, else the process peak;
``torch.cuda.max_memory_allocated`` on CUDA). Stages: the 242-prompt text ensemble cold and from the cache, the
few-shot association for k references, zero-shot scoring alone, and exact AUPRO on a synthetic category (from
``benchmarks/bench_aupro.py`` when present).

Hardware ceiling (issue 5's "bf16 at least 3x fp32"), measured in the same run: the CPU's model, threads and ISA
flags (AVX-512, AVX512_BF16, AVX512_FP16, AMX; ``/proc/cpuinfo``); the peak GFLOP/s of the encoder's own GEMM op
(oneDNN's ``_linear_pointwise`` on the CPU, else ``F.linear``) per precision at its block shapes and call size — their
bf16/fp32 ratio bounds the bf16 speed-up from GEMMs alone (~2x with AVX512_BF16 and no AMX); and each row's achieved
GFLOP/s of encoding (:func:`encoder_flops`, counted analytically) as a share of that peak.

Timing: warm-up calls first, ``time.perf_counter``, ``torch.cuda.synchronize`` around every timed call on CUDA,
``torch.set_num_threads`` fixed to the core count; the best of ``--repeats`` runs. Weights are random (no download):
the maps are not a reproduction result, only the same computation at each precision.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import inspect
import json
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from winclip_lib import encoder as encoder_module  # noqa: E402
from winclip_lib import vit_blocks  # noqa: E402
from winclip_lib.backbone import DEFAULT_MODEL, PRECISIONS, Backbone, load_backbone  # noqa: E402
from winclip_lib.encoder import DEFAULT_MAX_TOKENS, DEFAULT_SCALES, Features, window_indices  # noqa: E402
from winclip_lib.fewshot import few_shot_maps  # noqa: E402
from winclip_lib.model import Prediction, WinCLIP  # noqa: E402
from winclip_lib.prompts import TextEmbeddingCache, encode_text, text_embeddings  # noqa: E402

CLASS_NAME = "object"
#: Largest allowed |map - fp32 map| and |score - fp32 score| of each kind of row (the issue's 0.02 for low precision).
TOLERANCES: dict[str, float] = {"baseline": 1e-4, "fp32": 1e-4, "bf16": 0.02, "fp16": 0.02}
#: The issue's memory bound: encoding batches of 8 at 240 x 240 keeps the process under this RSS (CPU).
RSS_LIMIT_GB = 8.0
GPU_DEFAULTS = {"images": 512, "batch_size": 256, "max_tokens": 1 << 20}
CPU_DEFAULTS = {"images": 8, "batch_size": 8, "max_tokens": DEFAULT_MAX_TOKENS}


# --------------------------------------------------------------------------------------------------------------------
# timing and memory helpers
# --------------------------------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int = 1) -> tuple[Any, float]:
    """(result of the last call, best wall time in seconds over ``repeats`` calls), synchronised on CUDA."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return result, best


def _vm_hwm_bytes() -> int | None:
    try:
        m = re.search(r"VmHWM:\s+(\d+)\s+kB", Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(m.group(1)) * 1024 if m else None


def reset_peak_memory(device: torch.device) -> bool:
    """Reset the peak-RSS counter (Linux ``clear_refs`` 5) and CUDA's peak statistics; True if RSS was reset."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """Peak process RSS in GB since the last reset (``VmHWM``; else ``getrusage``'s process peak) and, on CUDA,
    peak allocated GPU memory in GB."""
    hwm = _vm_hwm_bytes()
    if hwm is None:  # ru_maxrss is in kB on Linux, bytes on macOS
        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm = ru if sys.platform == "darwin" else ru * 1024
    gpu = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    return {"peak_rss_gb": hwm / 1e9, "peak_gpu_gb": gpu}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU's matrix-math features relevant to bf16 speed (AMX, AVX-512 BF16/FP16, AVX-VNNI)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(re.findall(r"\b(amx_bf16|amx_tile|amx_fp16|avx512_bf16|avx512_fp16|avx512f|avx_vnni)\b", text))
    return sorted(flags)


# --------------------------------------------------------------------------------------------------------------------
# hardware ceiling: what the CPU's GEMMs can do, and how much work an image is
# --------------------------------------------------------------------------------------------------------------------
#: ISA flags that decide how fast bf16 GEMMs can be: AVX-512 (fp32 FMA), AVX512_BF16 (dot products, ~2x fp32 per
#: cycle), AVX512_FP16, and AMX (tile matrix units: far more than 2x for bf16).
ISA_FLAGS = ("avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
#: The linear layers of a block, as (name, N, K) in units of the width W and the MLP width M.
GEMM_SHAPES = (("qkv", "3W", "W"), ("mlp fc", "M", "W"), ("mlp proj", "W", "M"))


def cpu_isa() -> dict[str, bool] | None:
    """{flag: present} for :data:`ISA_FLAGS` from ``/proc/cpuinfo``; None where it cannot be read (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    m = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    present = set(m.group(1).split()) if m else set()
    return {f: f in present for f in ISA_FLAGS}


def encoder_flops(width: int, layers: int, mlp_width: int, grid: int, patch_size: int, embed_dim: int,
                  scales: Sequence[int] = DEFAULT_SCALES, stride: int = 1, *,
                  reuse_first_qkv: bool = True, cls_only_last: bool = True) -> int:
    """Floating-point operations (2 per multiply-add) of encoding one image: the patch-embedding convolution, every
    linear layer and both attention matmuls of every block, and the output projection of each pooled class token.

    The image's 1+G*G tokens go through all blocks; each window's 1+k*k tokens too, except that with
    ``reuse_first_qkv`` the first block's q/k/v are gathered from the image pass (no input projection), and with
    ``cls_only_last`` the last block projects queries and runs attention, the output projection and the MLP for the
    class token alone (keys/values still for all tokens) — our encoder; both False: the one-window-per-call baseline.
    Layer norms, softmax, GELU and adds are not counted.
    """
    w, m = width, mlp_width

    def block(keys: int, queries: int, q_rows: int, kv_rows: int) -> int:
        """One block: q projected for q_rows tokens, k/v for kv_rows, attention and the rest for ``queries``."""
        proj = 2 * w * w * q_rows + 2 * w * 2 * w * kv_rows
        attention = 2 * 2 * queries * keys * w  # q k^T and (softmax) v, all heads together
        return proj + attention + 2 * queries * w * w + 2 * 2 * queries * w * m  # + out-proj, MLP

    tokens = 1 + grid * grid
    total = 2 * grid * grid * 3 * patch_size**2 * w + layers * block(tokens, tokens, tokens, tokens)
    pooled = 1
    for k in scales:
        n, length = ((grid - k) // stride + 1) ** 2, 1 + k * k
        per_window = 0
        for i in range(layers):
            queries = 1 if cls_only_last and i == layers - 1 else length
            reused = reuse_first_qkv and i == 0
            per_window += block(length, queries, 0 if reused else queries, 0 if reused else length)
        total += n * per_window
        pooled += n
    return total + 2 * pooled * w * embed_dim


def model_flops(backbone: Backbone, *, fast: bool = True) -> int:
    """:func:`encoder_flops` of a backbone's config: our encoder (``fast``, its shortcuts where the model allows
    them), or the baseline (no shortcuts)."""
    visual = backbone.visual
    blocks = list(visual.transformer.resblocks)
    fast = fast and vit_blocks.fast_path_supported(visual)
    return encoder_flops(backbone.width, len(blocks), blocks[0].mlp.c_fc.out_features, backbone.grid_size,
                         backbone.patch_size, visual.proj.shape[1] if visual.proj is not None else 0,
                         reuse_first_qkv=fast, cls_only_last=fast and vit_blocks.cls_only_pooling(visual))


def _gemm_name(x: torch.Tensor) -> str:
    """Which GEMM the encoder's :func:`winclip_lib.vit_blocks._linear` runs for input x."""
    return "mkldnn._linear_pointwise" if vit_blocks._use_onednn(x) else "F.linear"


@torch.inference_mode()
def gemm_ceiling(width: int, mlp_width: int, precisions: Sequence[str], device: torch.device, tokens: int,
                 repeats: int = 5) -> dict[str, Any]:
    """Peak GFLOP/s of the encoder's GEMM op at its block shapes (``tokens`` x K -> N), per precision: best of
    ``repeats`` after two warm-up calls, at the current ``torch.set_num_threads``."""
    sizes = {"W": width, "3W": 3 * width, "M": mlp_width}
    g = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {"tokens": tokens, "repeats": repeats, "op": {}, "shapes": [], "peak_gflops": {}}
    for name, n_key, k_key in GEMM_SHAPES:
        n, k = sizes[n_key], sizes[k_key]
        row: dict[str, Any] = {"name": name, "m": tokens, "k": k, "n": n, "gflops": {}}
        for precision in precisions:
            dtype = PRECISIONS[precision]
            if device.type == "cpu" and dtype == torch.float16:
                continue  # not a CPU precision of this benchmark
            x, w, b = (torch.randn(*s, generator=g).to(device, dtype) for s in ((tokens, k), (n, k), (n,)))
            op, op_name = vit_blocks._linear, _gemm_name(x)
            for _ in range(2):
                op(x, w, b)
            _, seconds = timed(lambda op=op, x=x, w=w, b=b: op(x, w, b), device, repeats)
            row["gflops"][precision] = 2 * tokens * k * n / seconds / 1e9
            out["op"][precision] = op_name
            out["peak_gflops"][precision] = max(out["peak_gflops"].get(precision, 0.0), row["gflops"][precision])
        out["shapes"].append(row)
    peak = out["peak_gflops"]
    out["bf16_over_fp32"] = peak["bf16"] / peak["fp32"] if "bf16" in peak and "fp32" in peak else None
    return out


def hardware_ceiling(backbone: Backbone, precisions: Sequence[str], max_tokens: int) -> dict[str, Any]:
    """The CPU's facts (model, threads, ISA flags), the GEMM peak per precision at the backbone's block shapes and
    the encoder's call size, and the FLOPs per image of our encoder and of the baseline."""
    device = backbone.device
    isa = cpu_isa() if device.type == "cpu" else None
    blocks = list(backbone.visual.transformer.resblocks)
    return {
        "cpu": {
            "name": cpu_name(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "isa": isa,
            "amx": None if isa is None else isa["amx_tile"] and isa["amx_bf16"],
            "torch_cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        },
        "gemm": gemm_ceiling(backbone.width, blocks[0].mlp.c_fc.out_features, precisions, device,
                             min(encoder_module.call_tokens(max_tokens, device), 16384)),
        "flops_per_image": {"ours": model_flops(backbone, fast=True), "baseline": model_flops(backbone, fast=False)},
    }


def add_achieved(rows: list[dict[str, Any]], flops: dict[str, int], peak: dict[str, float]) -> None:
    """Per row: FLOPs per image (:func:`encoder_flops`), achieved GFLOP/s of encoding, and the fraction of the
    measured GEMM peak of its precision (the baseline runs fp32)."""
    for r in rows:
        f = flops["baseline" if r["kind"] == "baseline" else "ours"]
        precision = "fp32" if r["kind"] == "baseline" else r["kind"]
        s = r["encode_s_per_image"]
        r["gflop_per_image"] = f / 1e9
        r["encode_gflops"] = f / s / 1e9 if s else None
        r["fraction_of_gemm_peak"] = (r["encode_gflops"] / peak[precision]
                                      if r["encode_gflops"] and peak.get(precision) else None)


# --------------------------------------------------------------------------------------------------------------------
# the baseline: one window at a time
# --------------------------------------------------------------------------------------------------------------------
def _input_tokens(visual, x: torch.Tensor) -> torch.Tensor:
    """(1, 3, S, S) -> (1, 1+G*G, W): class and patch tokens with positions, after ``ln_pre``."""
    t = visual.conv1(x.to(visual.conv1.weight.dtype))
    t = t.reshape(1, t.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.reshape(1, 1, -1).to(t.dtype)
    return visual.ln_pre(torch.cat([cls, t], dim=1) + visual.positional_embedding.to(t.dtype))


def _embed(visual, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence through open_clip's ``visual.transformer``, ``_pool`` and ``proj``: (pooled (1, D), tokens)."""
    out = visual.transformer(seq)  # open_clip's Transformer handles its own batch-first / sequence-first layout
    pooled, tokens = visual._pool(out)
    return (pooled @ visual.proj if visual.proj is not None else pooled), tokens


@torch.inference_mode()
def baseline_encode(
    backbone: Backbone,
    x: torch.Tensor,
    scales: Sequence[int] = DEFAULT_SCALES,
    windows_per_scale: int | None = None,
) -> tuple[Features | None, float]:
    """The straightforward reproduction: each image whole, then every window alone, one transformer call each.

    Args:
        x: (B, 3, S, S) normalised images.
        windows_per_scale: None runs every window; N runs N evenly spaced windows per scale and extrapolates.

    Returns:
        (Features of the batch — None when only a subset of windows ran —, seconds per image: measured, or the
        whole-image time plus n_k times the mean time of a window of scale k).
    """
    visual, grid, dev = backbone.visual, backbone.grid_size, backbone.device
    images, patches, windows = [], [], {k: [] for k in scales}
    per_image = []
    for b in range(x.shape[0]):
        sync(dev)
        t0 = time.perf_counter()
        tokens = _input_tokens(visual, x[b : b + 1].to(dev))
        pooled, toks = _embed(visual, tokens)
        images.append(pooled)
        patches.append(toks)
        sync(dev)
        seconds = time.perf_counter() - t0
        for k in scales:
            idx = window_indices(grid, k).tolist()
            chosen = range(len(idx))
            if windows_per_scale is not None and windows_per_scale < len(idx):
                chosen = torch.linspace(0, len(idx) - 1, windows_per_scale).round().long().tolist()
            sync(dev)
            t0 = time.perf_counter()
            for w in chosen:
                seq = tokens[:, [0] + [p + 1 for p in idx[w]]]
                windows[k].append(_embed(visual, seq)[0])
            sync(dev)
            seconds += (time.perf_counter() - t0) * len(idx) / len(chosen)
        per_image.append(seconds)
    mean_seconds = sum(per_image) / len(per_image)
    if windows_per_scale is not None and any(windows_per_scale < window_indices(grid, k).shape[0] for k in scales):
        return None, mean_seconds
    b = x.shape[0]
    feats = Features(
        torch.cat(images).float(),
        {k: torch.cat(v).reshape(b, -1, torch.cat(v).shape[-1]).float() for k, v in windows.items()},
        torch.cat(patches).float(),
        grid,
        1,
        {"patch_ln_post": True, "encoder": "baseline"},
    )
    return feats, mean_seconds


# --------------------------------------------------------------------------------------------------------------------
# torch.compile of the transformer blocks (optional)
# --------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def default_gemm(enabled: bool) -> Iterator[None]:
    """Within the block, the encoder uses PyTorch's default CPU GEMMs instead of oneDNN's (``WINCLIP_ONEDNN=0``)."""
    if not enabled:
        yield
        return
    old = os.environ.get(vit_blocks.ONEDNN_ENV)
    os.environ[vit_blocks.ONEDNN_ENV] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(vit_blocks.ONEDNN_ENV, None)
        else:
            os.environ[vit_blocks.ONEDNN_ENV] = old


@contextlib.contextmanager
def compiled_blocks(enabled: bool) -> Iterator[None]:
    """Within the block, the encoder's fast path for a chunk of windows and for whole images (all its transformer
    blocks, pooling and projection) runs under ``torch.compile(dynamic=True)``."""
    if not enabled:
        yield
        return
    originals = {name: getattr(encoder_module, name) for name in ("_window_chunk", "_image_chunk")}
    for name, fn in originals.items():
        setattr(encoder_module, name, torch.compile(fn, dynamic=True))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(encoder_module, name, fn)


# --------------------------------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------------------------------
def _max_diff(a: torch.Tensor | None, b: torch.Tensor | None) -> float | None:
    if a is None or b is None:
        return None
    return float((a.float().cpu() - b.float().cpu()).abs().max())


def _maps(pred: Prediction) -> dict[str, torch.Tensor]:
    return {"map": pred.map.float().cpu(), "score": pred.score.float().cpu()}


def run_ours(
    backbone: Backbone,
    x: torch.Tensor,
    refs: torch.Tensor,
    *,
    batch_size: int,
    max_tokens: int,
    repeats: int,
    warmup: int,
) -> dict[str, Any]:
    """Time our pipeline on one backbone: fit (k refs), zero-shot predict, few-shot predict, encode, scoring."""
    dev = backbone.device
    text = text_embeddings(backbone, CLASS_NAME)
    zs = WinCLIP(backbone, CLASS_NAME, text=text, batch_size=batch_size, max_tokens=max_tokens)
    fs = WinCLIP(backbone, CLASS_NAME, text=text, batch_size=batch_size, max_tokens=max_tokens)
    for _ in range(warmup):
        zs.predict(x[:batch_size])
    sync(dev)
    reset_ok = reset_peak_memory(dev)
    _, t_fit = timed(lambda: fs.fit(refs), dev, repeats)
    pz, t_zs = timed(lambda: zs.predict(x), dev, repeats)
    pf, t_fs = timed(lambda: fs.predict(x), dev, repeats)
    feats, t_enc = timed(lambda: zs.encode(x), dev, repeats)
    mem = peak_memory(dev)
    _, t_score_zs = timed(lambda: zs.predict_features(feats), dev, repeats)
    _, t_assoc = timed(lambda: few_shot_maps(feats, fs.memory), dev, repeats)
    n = x.shape[0]
    return {
        "encode_s_per_image": t_enc / n,
        "zero_shot_s_per_image": t_zs / n,
        "few_shot_s_per_image": t_fs / n,
        "fit_s": t_fit,
        "zero_shot_scoring_s_per_image": t_score_zs / n,
        "association_s_per_image": t_assoc / n,
        "images": n,
        "measured": "all",
        **mem,
        "rss_reset": reset_ok,
        "_zs": _maps(pz),
        "_fs": _maps(pf),
    }


def run_baseline(
    backbone: Backbone,
    x: torch.Tensor,
    refs: torch.Tensor,
    *,
    windows_per_scale: int | None,
    scoring_features: Features | None = None,
    warmup: bool = True,
) -> dict[str, Any]:
    """Time the one-window-at-a-time baseline (fp32 backbone). Predict = its encoding + our scoring of its
    features; when only a subset of windows ran, the scoring is timed on ``scoring_features`` (ours, of the images
    then the references, fp32) and no maps are reported."""
    dev = backbone.device
    text = text_embeddings(backbone, CLASS_NAME)
    model = WinCLIP(backbone, CLASS_NAME, text=text)
    if warmup:
        baseline_encode(backbone, x[:1], windows_per_scale=2)
    reset_ok = reset_peak_memory(dev)
    feats, t_img = baseline_encode(backbone, x, windows_per_scale=windows_per_scale)
    ref_feats, t_ref = baseline_encode(backbone, refs, windows_per_scale=windows_per_scale)
    mem = peak_memory(dev)
    n, k = x.shape[0], refs.shape[0]
    if feats is None or ref_feats is None:  # a subset of windows ran: score our features of the same images
        if scoring_features is None or len(scoring_features) < n + k:
            raise ValueError("a baseline on a subset of windows needs scoring_features of the images and references")
        feats, ref_feats = scoring_features[:n], scoring_features[n : n + k]
        full = False
    else:
        full = True
    pz, t_zs = timed(lambda: model.predict_features(feats), dev)
    t0 = time.perf_counter()
    model.fit(ref_feats)
    t_mem = time.perf_counter() - t0
    pf, t_fs = timed(lambda: model.predict_features(feats), dev)
    return {
        "encode_s_per_image": t_img,
        "zero_shot_s_per_image": t_img + t_zs / n,
        "few_shot_s_per_image": t_img + t_fs / n,
        "fit_s": t_ref * k + t_mem,
        "zero_shot_scoring_s_per_image": t_zs / n,
        "association_s_per_image": None,
        "images": n,
        "measured": "all" if full else f"{windows_per_scale} windows/scale, extrapolated",
        **mem,
        "rss_reset": reset_ok,
        "_zs": _maps(pz) if full else None,
        "_fs": _maps(pf) if full else None,
    }


def _finish_rows(rows: list[dict[str, Any]]) -> None:
    """Images per second, speed-ups over the baseline and our fp32 row, differences from our fp32 row."""
    base = next((r for r in rows if r["kind"] == "baseline"), None)
    ref = next((r for r in rows if r["name"] == "ours fp32"), None)
    for r in rows:
        for what in ("encode", "zero_shot", "few_shot"):
            s = r[f"{what}_s_per_image"]
            r[f"{what}_images_per_s"] = 1.0 / s if s else None
            r[f"{what}_speedup_vs_baseline"] = base[f"{what}_s_per_image"] / s if base and s else None
            r[f"{what}_speedup_vs_fp32"] = ref[f"{what}_s_per_image"] / s if ref and s else None
        r["tolerance"] = TOLERANCES[r["kind"]]
        checked = []
        for mode in ("zs", "fs"):
            mine, theirs = r.get(f"_{mode}"), ref.get(f"_{mode}") if ref else None
            dm = ds = None
            if mine is not None and theirs is not None:
                n = mine["map"].shape[0]
                dm = _max_diff(mine["map"], theirs["map"][:n])
                ds = _max_diff(mine["score"], theirs["score"][:n])
                checked += [dm, ds]
            r[f"{mode}_max_abs_map_diff"] = dm
            r[f"{mode}_max_abs_score_diff"] = ds
        r["within_tolerance"] = all(d <= r["tolerance"] for d in checked) if checked else None
        r["rss_within_limit"] = r["peak_rss_gb"] < RSS_LIMIT_GB if r.get("peak_rss_gb") is not None else None


# --------------------------------------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------------------------------------
def time_text(backbone: Backbone, repeats: int) -> dict[str, float]:
    """The 242-prompt ensemble of a class encoded cold (fresh cache; the text tower warmed on two prompts first) and
    served from the cache."""
    dev = backbone.device
    encode_text(backbone, ["a photo of a warm-up thing.", "a photo of a damaged warm-up thing."])
    cold = []
    for i in range(max(1, repeats)):
        cache = TextEmbeddingCache()
        _, t = timed(lambda c=cache, i=i: text_embeddings(backbone, f"{CLASS_NAME} {i}", cache=c), dev)
        cold.append(t)
    cache = TextEmbeddingCache()
    text_embeddings(backbone, CLASS_NAME, cache=cache)
    hits = 1000
    _, t_hot = timed(lambda: [text_embeddings(backbone, CLASS_NAME, cache=cache) for _ in range(hits)], dev)
    return {"cold_s": min(cold), "cached_s": t_hot / hits}


def _load_bench_aupro():
    path = Path(__file__).with_name("bench_aupro.py")
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_winclip_bench_aupro", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, "time_aupro", None)


def time_aupro_stage(n_images: int) -> dict[str, Any]:
    """Exact AUPRO on a synthetic category of ``n_images`` at 240 x 240, or a note why it was skipped."""
    try:
        fn = _load_bench_aupro()
    except Exception as e:  # another engineer's module: report, do not fail the speed benchmark
        return {"skipped": f"benchmarks/bench_aupro.py failed to import: {type(e).__name__}: {e}"}
    if fn is None:
        return {"skipped": "benchmarks/bench_aupro.py with time_aupro() not present"}
    kwargs: dict[str, Any] = {"n_images": n_images, "size": 240, "seed": 0}
    params = inspect.signature(fn).parameters
    if "repeats" in params:
        kwargs["repeats"] = 1
    if "approx" in params:
        kwargs["approx"] = False
    try:
        r = fn(**kwargs)
    except Exception as e:
        return {"skipped": f"time_aupro failed: {type(e).__name__}: {e}"}
    return {"n_images": n_images, "size": 240, "seconds": r.get("exact_seconds", r.get("seconds")),
            "aupro": r.get("exact_aupro", r.get("aupro"))}


# --------------------------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------------------------
def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def format_table(result: dict[str, Any]) -> str:
    """The human-readable tables of a benchmark result."""
    m = result["meta"]
    lines = [
        f"WinCLIP speed — {m['model']} ({m['weights']}), device {m['device']} ({m['device_name']}), "
        f"{m['threads']} threads, torch {m['torch']}",
        f"{m['images']} query images, k = {m['k']} references, batch {m['batch_size']}, max_tokens "
        f"{m['max_tokens']} ({m['call_tokens']} per transformer call), best of {m['repeats']}",
    ]
    if m.get("load_average_before") is not None:
        lines.append(f"1-min load average before / after: {m['load_average_before'][0]:.2f} / "
                     f"{m['load_average_after'][0]:.2f} (other processes share the CPU: above ~{m['threads']} the "
                     "timings are inflated)")
    lines.append("")
    head = (f"{'row':<34}{'encode':>9}{'zero-shot':>11}{'img/s':>8}{'few-shot':>10}{'img/s':>8}{'fit k':>8}"
            f"{'×base':>8}{'×fp32':>8}{'Δmap zs':>10}{'Δmap fs':>10}{'Δscore':>10}{'RSS GB':>8}")
    if m["device"] == "cuda":
        head += f"{'GPU GB':>8}"
    lines += [head, f"{'':<34}{'s/img':>9}{'s/img':>11}{'':>8}{'s/img':>10}{'':>8}{'s':>8}"
              f"{'(zs)':>8}{'(zs)':>8}", "-" * len(head)]
    for r in result["rows"]:
        ds = [d for d in (r["zs_max_abs_score_diff"], r["fs_max_abs_score_diff"]) if d is not None]
        line = (f"{r['name']:<34}{_f(r['encode_s_per_image'], '.3f'):>9}{_f(r['zero_shot_s_per_image'], '.3f'):>11}"
                f"{_f(r['zero_shot_images_per_s'], '.2f'):>8}{_f(r['few_shot_s_per_image'], '.3f'):>10}"
                f"{_f(r['few_shot_images_per_s'], '.2f'):>8}{_f(r['fit_s'], '.2f'):>8}"
                f"{_f(r['zero_shot_speedup_vs_baseline'], '.2f'):>8}{_f(r['zero_shot_speedup_vs_fp32'], '.2f'):>8}"
                f"{_f(r['zs_max_abs_map_diff'], '.1e'):>10}{_f(r['fs_max_abs_map_diff'], '.1e'):>10}"
                f"{_f(max(ds) if ds else None, '.1e'):>10}{_f(r['peak_rss_gb'], '.2f'):>8}")
        if m["device"] == "cuda":
            line += f"{_f(r['peak_gpu_gb'], '.2f'):>8}"
        lines.append(line)
    lines.append("")
    lines.append("speed-up of encoding alone: " + ", ".join(
        f"{r['name']} ×{_f(r['encode_speedup_vs_baseline'], '.2f')} base / ×{_f(r['encode_speedup_vs_fp32'], '.2f')} "
        "fp32" for r in result["rows"] if not r["name"].startswith("baseline")))
    for r in result["rows"]:
        notes = []
        if r["measured"] != "all":
            notes.append(f"timed on {r['measured']}")
        notes.append(f"{r['images']} image(s)")
        if r.get("rss_within_limit") is not None:
            notes.append(f"peak RSS {r['peak_rss_gb']:.2f} GB {'<' if r['rss_within_limit'] else '>='} "
                         f"{RSS_LIMIT_GB:g} GB" + ("" if r.get("rss_reset", True) else " (process peak)"))
        if r["within_tolerance"] is not None:
            ok = "yes" if r["within_tolerance"] else "NO"
            notes.append(f"maps/scores within {r['tolerance']:g} of ours fp32: {ok}")
        lines.append(f"  {r['name']}: " + "; ".join(notes))
    if any(r["kind"] == "baseline" for r in result["rows"]):
        lines.append("  baseline predict = its encoding + our scoring of its features; its fit = encoding the k "
                     "references one window at a time")
    if result.get("ceiling"):
        lines += ["", *format_ceiling(result)]
    s = result["stages"]
    lines += ["", "stages"]
    for name, t in s["text"].items():
        lines.append(f"  text ensemble (242 prompts) {name}: cold {t['cold_s']:.3f} s, "
                     f"cached {t['cached_s'] * 1e6:.1f} µs")
    for name, r in ((r["name"], r) for r in result["rows"] if r["association_s_per_image"] is not None):
        lines.append(f"  {name}: few-shot association k = {m['k']} {r['association_s_per_image'] * 1e3:.2f} ms/img, "
                     f"zero-shot scoring {r['zero_shot_scoring_s_per_image'] * 1e3:.2f} ms/img")
    a = s["aupro"]
    if "skipped" in a:
        lines.append(f"  exact AUPRO: skipped ({a['skipped']})")
    else:
        lines.append(f"  exact AUPRO, {a['n_images']} images at {a['size']}x{a['size']}: {a['seconds']:.3f} s "
                     f"(AUPRO {a['aupro']:.4f})")
    return "\n".join(lines)


def format_ceiling(result: dict[str, Any]) -> list[str]:
    """The hardware-ceiling section: CPU facts, GEMM peaks side by side, each row's achieved GFLOP/s, the summary."""
    c, rows = result["ceiling"], result["rows"]
    cpu, gemm, f = c["cpu"], c["gemm"], c["flops_per_image"]
    peak, ceil = gemm["peak_gflops"], gemm["bf16_over_fp32"]
    lines = ["hardware ceiling"]
    if result["meta"]["device"] == "cpu":
        isa = cpu["isa"]
        flags = "unknown (no /proc/cpuinfo)" if isa is None else ", ".join(
            f"{f} {'yes' if v else 'no'}" for f, v in isa.items())
        lines.append(f"  CPU {cpu['name']}: {cpu['threads']} torch threads of {cpu['cores']} cores; {flags} -> "
                     f"{'AMX' if cpu['amx'] else 'no AMX' if cpu['amx'] is not None else 'AMX unknown'} "
                     f"(torch CPU capability {cpu['torch_cpu_capability']})")
    precisions = list(peak)
    ops = ", ".join(sorted(set(gemm["op"].values())))
    lines.append(f"  GEMM peak, the encoder's op ({ops}), {gemm['tokens']} tokens per call as the encoder's, best of "
                 f"{gemm['repeats']}:")
    lines.append(f"    {'GEMM (tokens x K -> N)':<32}" + "".join(f"{p + ' GFLOP/s':>15}" for p in precisions)
                 + (f"{'bf16/fp32':>11}" if ceil else ""))
    for g in gemm["shapes"]:
        ratio = g["gflops"]["bf16"] / g["gflops"]["fp32"] if ceil else None
        lines.append(f"    {g['name'] + ':':<10}{g['m']:>5} x {g['k']:<5}-> {g['n']:<6}"
                     + "".join(f"{_f(g['gflops'].get(p), '.0f'):>15}" for p in precisions)
                     + (f"{ratio:>10.2f}x" if ratio else ""))
    lines.append(f"    {'peak':<32}" + "".join(f"{peak[p]:>15.0f}" for p in precisions)
                 + (f"{ceil:>10.2f}x  <- ceiling of the bf16 speed-up from GEMMs alone" if ceil else ""))
    lines.append(f"  work per image: ours {f['ours'] / 1e9:.1f} GFLOP (block-1 q/k/v reused, last block class token "
                 f"only), baseline {f['baseline'] / 1e9:.1f} GFLOP (GEMMs + attention + patch embedding)")
    lines.append(f"    {'row':<34}{'GFLOP/img':>10}{'encode s/img':>14}{'GFLOP/s':>9}{'% of peak':>11}"
                 "   (the measured GEMM peak of the row's precision)")
    for r in rows:
        pct = r["fraction_of_gemm_peak"] and 100 * r["fraction_of_gemm_peak"]
        lines.append(f"    {r['name']:<34}{r['gflop_per_image']:>10.1f}{_f(r['encode_s_per_image'], '.3f'):>14}"
                     f"{_f(r['encode_gflops'], '.0f'):>9}{_f(pct, '.0f') + ('%' if pct else ''):>11}")
    by_name = {r["name"]: r for r in rows}
    fp32, bf16 = by_name.get("ours fp32"), by_name.get("ours bf16")
    if fp32 and bf16 and ceil:
        amx = "" if result["meta"]["device"] != "cpu" else (
            " (AMX)" if cpu["amx"] else " (no AMX)" if cpu["amx"] is not None else "")
        lines.append(f"  bf16 vs our fp32: {bf16['encode_speedup_vs_fp32']:.2f}x encode, "
                     f"{bf16['zero_shot_speedup_vs_fp32']:.2f}x zero-shot (target 3x); GEMM ceiling on this "
                     f"{result['meta']['device'].upper()}: {ceil:.2f}x{amx}")
    return lines


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


# --------------------------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WinCLIP speed benchmark (random weights): table + JSON.")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--model", default=DEFAULT_MODEL, help="open_clip model name (tests: WinCLIP-Tiny-240)")
    p.add_argument("--quick", action="store_true", help="2 query images, baseline on a subset of windows")
    p.add_argument("--images", type=int, help="query images (default 8 on CPU, 512 on CUDA; --quick 2)")
    p.add_argument("--k", type=int, default=4, help="few-shot references")
    p.add_argument("--batch-size", type=int, help="images per encoding pass (default 8 CPU, 256 CUDA)")
    p.add_argument("--max-tokens", type=int, help="tokens per transformer call (default: the encoder's on CPU)")
    p.add_argument("--precisions", help="comma-separated (default fp32,bf16 on CPU; fp32,bf16,fp16 on CUDA)")
    p.add_argument("--baseline-images", type=int, default=1, help="query images for the baseline (0: no baseline)")
    p.add_argument("--baseline-windows", type=int, help="windows per scale the baseline runs (default all)")
    p.add_argument("--aupro-images", type=int, default=100, help="images of the AUPRO stage (0: skip)")
    p.add_argument("--compile", action="store_true", help="also time our rows with torch.compile'd blocks")
    p.add_argument("--no-default-gemm", action="store_true",
                   help="skip the CPU row of our fp32 encoder on PyTorch's default GEMMs (WINCLIP_ONEDNN=0)")
    p.add_argument("--repeats", type=int, help="timed runs per measurement, the best is kept (default 1 CPU, 2 CUDA)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON path (default build/bench/speed_<device>.json)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, write the JSON; returns the result."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available here")
    torch.set_num_threads(max(1, args.threads))
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    n_images = args.images or (2 if args.quick else defaults["images"])
    batch_size = args.batch_size or defaults["batch_size"]
    max_tokens = args.max_tokens or defaults["max_tokens"]
    precisions = (args.precisions or ("fp32,bf16,fp16" if device.type == "cuda" else "fp32,bf16")).split(",")
    baseline_windows = args.baseline_windows
    if args.quick and baseline_windows is None and args.model == DEFAULT_MODEL:
        baseline_windows = 8
    repeats = args.repeats or (2 if device.type == "cuda" else 1)
    warmup = 2 if args.compile else 1

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(n_images, 3, 240, 240, generator=g).to(device)
    refs = torch.randn(args.k, 3, 240, 240, generator=g).to(device)

    rows: list[dict[str, Any]] = []
    text_stage: dict[str, dict[str, float]] = {}
    weights = ""
    ceiling: dict[str, Any] = {}
    for precision in precisions:
        backbone = load_backbone(args.model, None, precision=precision, device=device, seed=args.seed)
        weights = backbone.weights_id
        if x.shape[-1] != backbone.image_size:
            raise SystemExit(f"{args.model} takes {backbone.image_size} px; this benchmark feeds 240 px")
        if not ceiling:  # the same config at every precision: measure once, before the rows
            print("[bench] hardware ceiling: GEMM peak at the encoder's shapes ...", flush=True)
            ceiling = hardware_ceiling(backbone, precisions, max_tokens)
        print(f"[bench] ours {precision} ...", flush=True)
        variants = [("", False, False)]
        if precision == "fp32" and device.type == "cpu" and not args.no_default_gemm:
            variants.append((" (default GEMM)", True, False))
        if args.compile:
            variants.append((" + compile", False, True))
        for suffix, plain_gemm, compiled in variants:
            with default_gemm(plain_gemm), compiled_blocks(compiled):
                r = run_ours(backbone, x, refs, batch_size=batch_size, max_tokens=max_tokens,
                             repeats=repeats, warmup=warmup)
            r["name"] = f"ours {precision}{suffix}"
            r["kind"] = precision
            rows.append(r)
        text_stage[precision] = time_text(backbone, repeats)
        if precision == "fp32" and args.baseline_images > 0:
            print("[bench] baseline fp32, one window at a time ...", flush=True)
            nb = min(args.baseline_images, n_images)
            scoring = None
            if baseline_windows is not None:  # its features are partial: score ours of the same images instead
                scoring = WinCLIP(backbone, CLASS_NAME, batch_size=batch_size, max_tokens=max_tokens).encode(
                    torch.cat([x[:nb], refs]))
            b = run_baseline(backbone, x[:nb], refs, windows_per_scale=baseline_windows, scoring_features=scoring)
            b["name"], b["kind"] = "baseline fp32 (1 window/call)", "baseline"
            rows.insert(0, b)
        del backbone
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    _finish_rows(rows)
    add_achieved(rows, ceiling["flops_per_image"], ceiling["gemm"]["peak_gflops"])
    aupro_stage = time_aupro_stage(args.aupro_images) if args.aupro_images > 0 else {"skipped": "--aupro-images 0"}
    result = {
        "meta": {
            "model": args.model,
            "weights": weights,
            "device": device.type,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
            "cpu_flags": cpu_flags(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "images": n_images,
            "k": args.k,
            "batch_size": batch_size,
            "max_tokens": max_tokens,
            "call_tokens": encoder_module.call_tokens(max_tokens, device),
            "repeats": repeats,
            "baseline_images": min(args.baseline_images, n_images),
            "baseline_windows": baseline_windows,
            "compile": args.compile,
            "quick": args.quick,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "note": "random weights: timings and agreement only, not reproduction results",
        },
        "rows": [_public(r) for r in rows],
        "ceiling": ceiling,
        "stages": {"text": text_stage, "aupro": aupro_stage},
    }
    print(format_table(result), flush=True)
    out = args.out or Path("build/bench") / f"speed_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {out}")
    return result


if __name__ == "__main__":
    main()
