"""Precision "auto" in the benchmark: what it picks on this machine, why, and what that choice is worth here.

The section reports the ISA oneDNN detects, the GEMM peak per precision (:mod:`hardware`), the choice of
:func:`winclip_lib.core.precision.probe_cpu` with its measured ratios and duration (on CUDA the rule of
:func:`~winclip_lib.core.precision.resolve_precision`), the encode speed-up of the picked precision's row over our
fp32 row, and plain sentences on every low precision against fp32 — a precision slower than fp32 is named SLOWER.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from winclip_lib.core.precision import (
    PRECISION_ENV,
    PRECISIONS,
    SPEEDUP_THRESHOLD,
    PrecisionChoice,
    probe_cpu,
    resolve_precision,
)

__all__ = ["auto_choice", "auto_verdicts", "format_auto", "summarize_auto"]


def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def auto_choice(device: torch.device) -> PrecisionChoice:
    """What precision ``"auto"`` picks on ``device``, decided now: on the CPU a fresh
    :func:`~winclip_lib.core.precision.probe_cpu` (not a choice remembered from an earlier run), elsewhere
    :func:`~winclip_lib.core.precision.resolve_precision`."""
    if device.type == "cpu":
        return probe_cpu()
    return resolve_precision("auto", device, remember=False)


def summarize_auto(rows: list[dict[str, Any]], ceiling: dict[str, Any], choice: dict[str, Any],
                   device_type: str) -> dict[str, Any]:
    """The "auto" section of a result: the ISA oneDNN detects, the GEMM peak per precision, what auto picked (with
    the probe's ratios and duration) and the encode speed-up of the picked precision's row over our fp32 row.

    Args:
        rows: the finished rows (``encode_speedup_vs_fp32`` set).
        ceiling: :func:`hardware.hardware_ceiling`'s result.
        choice: :meth:`~winclip_lib.core.precision.PrecisionChoice.as_dict` of :func:`auto_choice`.
        device_type: "cpu" or "cuda".
    """
    gemm = ceiling.get("gemm", {})
    cpu = ceiling.get("cpu", {})
    by_name = {r["name"]: r for r in rows}
    encode = {p: by_name[f"ours {p}"]["encode_speedup_vs_fp32"] for p in PRECISIONS if f"ours {p}" in by_name}
    picked = choice["precision"]
    auto_row = f"ours {picked}" if f"ours {picked}" in by_name else None
    auto = {
        "device": device_type,
        "onednn_isa": cpu.get("onednn_isa"),
        "onednn_version": cpu.get("onednn_version"),
        "gemm_tokens": gemm.get("tokens"),
        "gemm_peak_gflops": dict(gemm.get("peak_gflops", {})),
        "gemm_over_fp32": dict(gemm.get("over_fp32", {})),
        "not_run": list(gemm.get("skipped", [])),
        "picked": picked,
        "source": choice["source"],
        "probe_ratios": dict(choice.get("ratios", {})),
        "probe_gflops": dict(choice.get("gflops", {})),
        "probe_seconds": choice.get("seconds"),
        "threshold": SPEEDUP_THRESHOLD,
        "environment": os.environ.get(PRECISION_ENV) or None,
        "encode_speedup_vs_fp32": encode,
        "auto_row": auto_row,
        "auto_encode_speedup_vs_fp32": encode.get(picked) if auto_row else None,
    }
    auto["verdicts"] = auto_verdicts(auto)
    return auto


def auto_verdicts(auto: dict[str, Any]) -> list[str]:
    """Plain sentences on each low precision against fp32 on this device, from the row's encode speed-up (else the
    GEMM peak ratio, else the probe's) — "bf16 is SLOWER than fp32 on this CPU (0.60x encode): auto keeps fp32" —,
    on the precisions the device does not run, and a warning when auto's pick encoded slower than fp32 in this
    run."""
    where = "CPU" if auto["device"] == "cpu" else "GPU"
    picked = auto["picked"]
    tail = "auto keeps fp32" if picked == "fp32" else f"auto picks {picked}"
    sources = ((auto.get("encode_speedup_vs_fp32") or {}, "encode"), (auto.get("gemm_over_fp32") or {}, "GEMM peak"),
               (auto.get("probe_ratios") or {}, "probe GEMM"))
    out = [f"{p} does not run on this {where}: {tail}" for p in auto.get("not_run") or []]
    for p in (p for p in PRECISIONS if p != "fp32"):
        measured = next(((ratios[p], what) for ratios, what in sources if ratios.get(p) is not None), None)
        if measured is None:
            continue
        ratio, what = measured
        if ratio < 1:
            out.append(f"{p} is SLOWER than fp32 on this {where} ({ratio:.2f}x {what}): {tail}")
        else:
            out.append(f"{p} is {ratio:.2f}x as fast as fp32 on this {where} ({what}): {tail}")
    a = auto.get("auto_encode_speedup_vs_fp32")
    if picked != "fp32" and a is not None and a < 1:
        out.append(f"auto's pick {picked} encoded SLOWER than fp32 in this run ({a:.2f}x): the probe's GEMM does not "
                   f"predict the encoder on this {where}")
    return out


def format_auto(auto: dict[str, Any]) -> list[str]:
    """The precision-"auto" section: the ISA oneDNN detects, the GEMM peak per precision, what auto picks and why,
    the encode speed-ups over our fp32 row, and the plain-words verdicts (:func:`auto_verdicts`)."""
    where = "CPU" if auto["device"] == "cpu" else "GPU"
    picked = auto["picked"]
    lines = ['precision "auto"']
    if auto["device"] == "cpu":
        version = f"oneDNN {auto['onednn_version']}" if auto.get("onednn_version") else "oneDNN"
        lines.append(f"  {version} detects: {auto.get('onednn_isa') or 'unknown (no oneDNN verbose output)'}")
    peak, over = auto.get("gemm_peak_gflops") or {}, auto.get("gemm_over_fp32") or {}
    if peak:
        lines.append(f"  GEMM peak (the encoder's op, {auto.get('gemm_tokens')} tokens): " + ", ".join(
            f"{p} {v:.0f} GFLOP/s" + (f" ({over[p]:.2f}x fp32)" if p != "fp32" and p in over else "")
            for p, v in peak.items()))
    if auto["source"] in ("probe", "remembered"):
        ratios = ", ".join(f"{p} {r:.2f}x" for p, r in auto["probe_ratios"].items())
        when = "took" if auto["source"] == "probe" else "remembered; it took"
        lines.append(f"  probe_cpu {when} {auto['probe_seconds']:.2f} s; speed vs fp32: {ratios} -> auto picks "
                     f"{picked} (another precision replaces fp32 from {auto['threshold']:g}x)")
    else:
        lines.append(f"  auto on this {where}: {picked} ({auto['source']})")
    encode = {p: r for p, r in (auto.get("encode_speedup_vs_fp32") or {}).items() if p != "fp32"}
    if encode:
        lines.append("  encode speed-up over our fp32 row: " + ", ".join(
            f"{p} {_f(r, '.2f')}x" for p, r in encode.items()))
    a = auto.get("auto_encode_speedup_vs_fp32")
    if auto.get("auto_row"):
        lines.append(f"  auto = {picked}: encode {_f(a, '.2f')}x our fp32 row ({auto['auto_row']})")
    else:
        lines.append(f"  auto = {picked}: no row of that precision in this run (add it with --precisions)")
    lines += [f"  {v}" for v in auto.get("verdicts") or []]
    if auto.get("environment"):
        lines.append(f"  {PRECISION_ENV}={auto['environment']} is set: the library uses that instead of auto")
    return lines
