"""Speed benchmark of WinCLIP / WinCLIP+: one run, one random-weight backbone, the same inputs for every row.

    python -m benchmarks.bench_speed [--device cpu|cuda] [--quick] [--out build/bench/speed_<device>.json]
    python -m benchmarks.bench_speed --device cuda [--compile [--compile-mode reduce-overhead]]   # the GPU run

(``make bench`` runs the CPU table; ``--quick`` runs 2 images and a subset of the baseline's windows.)

Rows:

- ``baseline fp32 (1 window/call)``: a straightforward first reproduction (:mod:`baseline`) — the whole image, then
  each window alone, through open_clip's own ``visual.transformer`` in fp32. It is run on ``--baseline-images``
  query images (and, for its few-shot row, on the k references); with ``--baseline-windows N`` only N windows per
  scale are run and the per-window time is extrapolated to all windows (the table says so, and has no map
  differences for it then).
- ``ours <precision>``: :class:`winclip_lib.core.model.WinCLIP` with the batched window encoder, weights loaded in
  each precision the device runs (``precision=`` passed explicitly): on the CPU those of
  :func:`winclip_lib.core.precision.cpu_precisions` (fp32, and bf16 / fp16 where oneDNN supports them), on CUDA
  fp32, bf16 and fp16. ``--compile`` adds the same rows with the encoder's blocks under ``torch.compile``
  (``--compile-mode reduce-overhead``: replayed as CUDA graphs); their map differences say whether they are exact.
- ``ours fp32 (default GEMM)`` (CPU): our fp32 encoder on PyTorch's default CPU GEMMs (``WINCLIP_ONEDNN=0``) instead
  of oneDNN's, to show what that choice is worth on this CPU.

Per row: seconds per image and images per second for encoding alone, for zero-shot ``predict`` and for few-shot
``predict`` with k references (``fit`` timed separately); speed-ups over the baseline and over our fp32 row; the
largest absolute difference of the final anomaly maps and image scores from our fp32 row (same images); peak memory
(process RSS, reset before each row through ``/proc/self/clear_refs`` where Linux allows it, else the process peak;
``torch.cuda.max_memory_allocated`` on CUDA). Stages: the 242-prompt text ensemble cold and from the cache, the
few-shot association for k references, zero-shot scoring alone, and exact AUPRO on a synthetic category (from
``benchmarks/bench_aupro.py`` when present).

Hardware ceiling (:mod:`hardware`), measured in the same run: the CPU's model, threads and ISA flags, the ISA oneDNN
detects, and the peak GFLOP/s of the encoder's own GEMM op per precision at its block shapes and call size; each
row's achieved GFLOP/s of encoding (:mod:`flops`, counted analytically) as a share of the peak of its precision.

Precision ``"auto"`` (:mod:`auto_precision`): what :func:`winclip_lib.core.precision.probe_cpu` picks on this CPU (its
measured ratios and how long it took; on CUDA what :func:`~winclip_lib.core.precision.resolve_precision` picks), and
the encode speed-up of the picked precision's row over our fp32 row; a precision slower than fp32 is named so in
words.

Timing (:mod:`timing`): warm-up calls first, ``time.perf_counter``, ``torch.cuda.synchronize`` around every timed call
on CUDA, ``torch.set_num_threads`` fixed to the core count; the best of ``--repeats`` runs. Weights are random (no
download): the maps are not a reproduction result, only the same computation at each precision.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import inspect
import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import auto_precision, baseline, flops, hardware
from benchmarks.auto_precision import auto_choice, format_auto, summarize_auto
from benchmarks.baseline import baseline_encode
from benchmarks.hardware import cpu_name, hardware_ceiling, runnable_precisions
from benchmarks.timing import sync, timed
from winclip_lib.core import encoder as encoder_module
from winclip_lib.core import vit_blocks
from winclip_lib.core.backbone import DEFAULT_MODEL, Backbone, load_backbone
from winclip_lib.core.encoder import DEFAULT_MAX_TOKENS, call_tokens
from winclip_lib.core.features import Features
from winclip_lib.core.fewshot import few_shot_maps
from winclip_lib.core.model import Prediction, WinCLIP
from winclip_lib.core.precision import PRECISIONS, PrecisionChoice
from winclip_lib.core.prompts import TextEmbeddingCache, text_embeddings
from winclip_lib.core.text_tower import encode_text

__all__ = ["auto_precision", "baseline", "flops", "hardware", "format_table", "main"]

CLASS_NAME = "object"
#: Largest allowed |map - fp32 map| and |score - fp32 score| of each kind of row (0.02 for low precision).
TOLERANCES: dict[str, float] = {"baseline": 1e-4, "fp32": 1e-4, "bf16": 0.02, "fp16": 0.02}
#: The memory bound on the CPU: encoding batches of 8 at 240 x 240 keeps the process under this RSS.
RSS_LIMIT_GB = 8.0
GPU_DEFAULTS = {"images": 512, "batch_size": 256, "max_tokens": 1 << 20}
CPU_DEFAULTS = {"images": 8, "batch_size": 8, "max_tokens": DEFAULT_MAX_TOKENS}
#: The precisions of our rows, in order; on the CPU only those it runs (:func:`hardware.runnable_precisions`).
ROW_PRECISIONS = ("fp32", "bf16", "fp16")


# --------------------------------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------------
# GEMM choice and torch.compile of the transformer blocks (optional)
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


#: The encoder's fast-path functions that ``--compile`` puts under ``torch.compile``: a chunk of windows and a chunk of
#: whole images, each all its transformer blocks (and, for windows, pooling and projection).
COMPILED_FUNCTIONS = ("_window_chunk", "_image_chunk")


#: ``--compile-mode`` values: torch.compile's modes. The CUDA-graph ones ("reduce-overhead", "max-autotune") replay
#: recorded graphs, which needs fixed shapes: those compile one graph per chunk shape (``dynamic=False``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_function(mode: str = "default") -> Callable[[Callable], Callable]:
    """What ``--compile --compile-mode MODE`` puts in place of each of :data:`COMPILED_FUNCTIONS`: ``torch.compile``
    of it in that mode. Under CUDA graphs a replay overwrites the previous call's outputs, which the encoder still
    holds, so the outputs are copied out of the graph's memory (the copy is part of the timed work)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; expected one of {', '.join(COMPILE_MODES)}")
    graphs = mode in _CUDA_GRAPH_MODES

    def compile_fn(fn: Callable) -> Callable:
        compiled = torch.compile(fn, dynamic=not graphs, mode=None if mode == "default" else mode)
        if not graphs:
            return compiled

        def copied(*args: Any, **kwargs: Any) -> Any:
            return torch.utils._pytree.tree_map_only(torch.Tensor, torch.clone, compiled(*args, **kwargs))
        return copied

    return compile_fn


@contextlib.contextmanager
def compiled_blocks(enabled: bool, compile_fn: Callable[[Callable], Callable] | None = None) -> Iterator[None]:
    """Within the block, the encoder's :data:`COMPILED_FUNCTIONS` are replaced by ``compile_fn`` of them
    (default :func:`compile_function`: ``torch.compile(fn, dynamic=True)``); the originals are restored on leaving,
    also after an error.

    Raises:
        AttributeError: the encoder has no function of that name (the encoder was restructured).
    """
    if not enabled:
        yield
        return
    compile_fn = compile_fn or compile_function()
    originals = {name: getattr(encoder_module, name) for name in COMPILED_FUNCTIONS}
    try:
        for name, fn in originals.items():
            setattr(encoder_module, name, compile_fn(fn))
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
        eager = next((e for e in rows if " + compile" in r["name"] and e["name"] == f"ours {r['kind']}"), None)
        diffs = [_max_diff(r[f"_{m}"][k], eager[f"_{m}"][k]) for m in ("zs", "fs") for k in ("map", "score")
                 if eager is not None and r.get(f"_{m}") is not None and eager.get(f"_{m}") is not None]
        r["max_abs_diff_vs_eager"] = max(diffs) if diffs else None  # a compiled row against its eager row
        r["rss_within_limit"] = r["peak_rss_gb"] < RSS_LIMIT_GB if r.get("peak_rss_gb") is not None else None


def add_achieved(rows: list[dict[str, Any]], flops_per_image: dict[str, int], peak: dict[str, float]) -> None:
    """Per row: FLOPs per image (:func:`flops.encoder_flops`), achieved GFLOP/s of encoding, and the fraction of the
    measured GEMM peak of its precision (the baseline runs fp32)."""
    for r in rows:
        f = flops_per_image["baseline" if r["kind"] == "baseline" else "ours"]
        precision = "fp32" if r["kind"] == "baseline" else r["kind"]
        s = r["encode_s_per_image"]
        r["gflop_per_image"] = f / 1e9
        r["encode_gflops"] = f / s / 1e9 if s else None
        r["fraction_of_gemm_peak"] = (r["encode_gflops"] / peak[precision]
                                      if r["encode_gflops"] and peak.get(precision) else None)


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
    hits = 200
    _, t_hot = timed(lambda: [text_embeddings(backbone, CLASS_NAME, cache=cache) for _ in range(hits)], dev)
    return {"cold_s": min(cold), "cached_s": t_hot / hits}


def _load_bench_aupro():
    try:
        module = importlib.import_module("benchmarks.bench_aupro")
    except ModuleNotFoundError as e:
        if e.name != "benchmarks.bench_aupro":
            raise
        return None
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
        if r.get("max_abs_diff_vs_eager") is not None:
            d = r["max_abs_diff_vs_eager"]
            notes.append("bit for bit its eager row's maps and scores" if d == 0 else
                         f"NOT exact: maps/scores differ from its eager row by up to {d:.1e}")
        lines.append(f"  {r['name']}: " + "; ".join(notes))
    if any(r["kind"] == "baseline" for r in result["rows"]):
        lines.append("  baseline predict = its encoding + our scoring of its features; its fit = encoding the k "
                     "references one window at a time")
    if result.get("ceiling"):
        lines += ["", *format_ceiling(result)]
    if result.get("auto"):
        lines += ["", *format_auto(result["auto"])]
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
    peak, over = gemm["peak_gflops"], gemm.get("over_fp32") or {}
    device = result["meta"]["device"]
    lines = ["hardware ceiling"]
    if device == "cpu":
        isa = cpu["isa"]
        flags = "unknown (no /proc/cpuinfo)" if isa is None else ", ".join(
            f"{f} {'yes' if v else 'no'}" for f, v in isa.items())
        lines.append(f"  CPU {cpu['name']}: {cpu['threads']} torch threads of {cpu['cores']} cores; {flags} -> "
                     f"{'AMX' if cpu['amx'] else 'no AMX' if cpu['amx'] is not None else 'AMX unknown'} "
                     f"(torch CPU capability {cpu['torch_cpu_capability']})")
        cap = f" (capped: ONEDNN_MAX_CPU_ISA={cpu['onednn_isa_cap']})" if cpu.get("onednn_isa_cap") else ""
        lines.append(f"  oneDNN {cpu.get('onednn_version') or ''} ISA: "
                     f"{cpu.get('onednn_isa') or 'unknown (no oneDNN verbose output)'}{cap}; precisions this CPU runs: "
                     f"{', '.join(cpu.get('precisions') or ['unknown'])}")
    precisions = list(peak)
    low = [p for p in precisions if p != "fp32" and p in over]
    ops = ", ".join(f"{p} {op}" for p, op in gemm["op"].items())
    lines.append(f"  GEMM peak, the encoder's op ({ops}), {gemm['tokens']} tokens per call as the encoder's, best of "
                 f"{gemm['repeats']}:")
    if gemm.get("skipped"):
        lines.append(f"    not run on this {device.upper()}: {', '.join(gemm['skipped'])}")
    lines.append(f"    {'GEMM (tokens x K -> N)':<32}" + "".join(f"{p + ' GFLOP/s':>15}" for p in precisions)
                 + "".join(f"{p + '/fp32':>11}" for p in low))
    for g in gemm["shapes"]:
        fp32 = g["gflops"].get("fp32")
        lines.append(f"    {g['name'] + ':':<10}{g['m']:>5} x {g['k']:<5}-> {g['n']:<6}"
                     + "".join(f"{_f(g['gflops'].get(p), '.0f'):>15}" for p in precisions)
                     + "".join(f"{_f(g['gflops'][p] / fp32 if fp32 else None, '.2f') + 'x':>11}" for p in low))
    lines.append(f"    {'peak':<32}" + "".join(f"{peak[p]:>15.0f}" for p in precisions)
                 + "".join(f"{over[p]:>10.2f}x" for p in low)
                 + ("  <- ceiling of each speed-up over fp32 from GEMMs alone" if low else ""))
    lines.append(f"  work per image: ours {f['ours'] / 1e9:.1f} GFLOP (block-1 q/k/v reused, last block class token "
                 f"only), baseline {f['baseline'] / 1e9:.1f} GFLOP (GEMMs + attention + patch embedding)")
    lines.append(f"    {'row':<34}{'GFLOP/img':>10}{'encode s/img':>14}{'GFLOP/s':>9}{'% of peak':>11}"
                 "   (the measured GEMM peak of the row's precision)")
    for r in rows:
        pct = r["fraction_of_gemm_peak"] and 100 * r["fraction_of_gemm_peak"]
        lines.append(f"    {r['name']:<34}{r['gflop_per_image']:>10.1f}{_f(r['encode_s_per_image'], '.3f'):>14}"
                     f"{_f(r['encode_gflops'], '.0f'):>9}{_f(pct, '.0f') + ('%' if pct else ''):>11}")
    by_name = {r["name"]: r for r in rows}
    amx = "" if device != "cpu" else " (AMX)" if cpu["amx"] else " (no AMX)" if cpu["amx"] is not None else ""
    for p in low:
        row = by_name.get(f"ours {p}")
        if row and "ours fp32" in by_name:
            lines.append(f"  {p} vs our fp32: {_f(row['encode_speedup_vs_fp32'], '.2f')}x encode, "
                         f"{_f(row['zero_shot_speedup_vs_fp32'], '.2f')}x zero-shot; GEMM ceiling on this "
                         f"{device.upper()}: {over[p]:.2f}x{amx}")
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
    p.add_argument("--precisions", help="comma-separated precisions of our rows; fp32 is always included (default: "
                   "fp32,bf16,fp16 — on the CPU those it runs)")
    p.add_argument("--baseline-images", type=int, default=1, help="query images for the baseline (0: no baseline)")
    p.add_argument("--baseline-windows", type=int, help="windows per scale the baseline runs (default all)")
    p.add_argument("--aupro-images", type=int, default=100, help="images of the AUPRO stage (0: skip)")
    p.add_argument("--compile", action="store_true", help="also time our rows with torch.compile'd blocks")
    p.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                   help="torch.compile's mode for --compile (reduce-overhead: CUDA graphs)")
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
    requested = [p.strip() for p in args.precisions.split(",")] if args.precisions else list(ROW_PRECISIONS)
    unknown = [p for p in requested if p not in PRECISIONS]
    if unknown:
        raise SystemExit(f"--precisions: unknown {', '.join(unknown)}; choose from {', '.join(PRECISIONS)} (auto has "
                         "its own section of the table)")
    wanted = [p for p in PRECISIONS if p == "fp32" or p in requested]
    precisions = runnable_precisions(wanted, device)
    not_run = [p for p in requested if p not in precisions]
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
    choice: PrecisionChoice | None = None
    if not_run:
        print(f"[bench] not run on this {device.type.upper()}: {', '.join(not_run)}", flush=True)
    for precision in precisions:
        backbone = load_backbone(args.model, None, precision=precision, device=device, seed=args.seed)
        weights = backbone.weights_id
        if x.shape[-1] != backbone.image_size:
            raise SystemExit(f"{args.model} takes {backbone.image_size} px; this benchmark feeds 240 px")
        if not ceiling:  # the same config at every precision: measure once, before the rows
            print("[bench] hardware ceiling: GEMM peak at the encoder's shapes ...", flush=True)
            ceiling = hardware_ceiling(backbone, wanted, max_tokens)  # it names what this device does not run
            print("[bench] precision auto: what it picks here ...", flush=True)
            choice = auto_choice(device)
        print(f"[bench] ours {precision} ...", flush=True)
        variants = [("", False, False)]
        if precision == "fp32" and device.type == "cpu" and not args.no_default_gemm:
            variants.append((" (default GEMM)", True, False))
        if args.compile:
            mode = "" if args.compile_mode == "default" else f" ({args.compile_mode})"
            variants.append((f" + compile{mode}", False, True))
        for suffix, plain_gemm, compiled in variants:
            with default_gemm(plain_gemm), compiled_blocks(compiled, compile_function(args.compile_mode)):
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
    auto = summarize_auto(rows, ceiling, choice.as_dict(), device.type)
    aupro_stage = time_aupro_stage(args.aupro_images) if args.aupro_images > 0 else {"skipped": "--aupro-images 0"}
    result = {
        "meta": {
            "model": args.model,
            "weights": weights,
            "device": device.type,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
            "cpu_flags": hardware.cpu_flags(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "images": n_images,
            "k": args.k,
            "batch_size": batch_size,
            "max_tokens": max_tokens,
            "call_tokens": call_tokens(max_tokens, device),
            "repeats": repeats,
            "precisions": precisions,
            "precisions_not_run": not_run,
            "baseline_images": min(args.baseline_images, n_images),
            "baseline_windows": baseline_windows,
            "compile": args.compile,
            "compile_mode": args.compile_mode if args.compile else None,
            "quick": args.quick,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "note": "random weights: timings and agreement only, not reproduction results",
        },
        "rows": [_public(r) for r in rows],
        "ceiling": ceiling,
        "auto": auto,
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
