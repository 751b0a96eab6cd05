"""Weights precision: the names, and ``"auto"`` — the fastest precision measured on this machine.

Which precision runs the ViT fastest depends on the processor, not on a rule of thumb (the README's speed section has
what was measured on which CPU), so ``"auto"`` measures it:

- explicit ``"fp32"``, ``"bf16"`` or ``"fp16"`` are used as given, and so is ``WINCLIP_PRECISION`` when set (the
  argument wins over the variable);
- on CUDA: bf16 where the GPU supports it, else fp16;
- on the CPU: a short probe (:func:`probe_cpu`) times the encoder's own GEMM op
  (:func:`winclip_lib.core.vit_blocks.linear` at the ViT-B/16+ MLP shape) in every precision this CPU runs, and
  :func:`choose_precision` keeps fp32 unless another precision is at least :data:`SPEEDUP_THRESHOLD` times as fast.
  The choice is remembered per machine (CPU model and flags, torch version, threads, oneDNN ISA cap) in
  ``<WINCLIP_CACHE_DIR or ~/.cache/winclip>/precision.json``, so the probe runs once; one log line says what was
  chosen and the measured ratios.

The precision that was actually used is what goes into feature-cache keys and ``run.json``, never ``"auto"``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from winclip_lib.core.choices import check_choice
from winclip_lib.core.user_cache import CACHE_DIR_ENV as CACHE_DIR_ENV  # where the probe remembers (re-exported)
from winclip_lib.core.user_cache import read_json, write_json

__all__ = [
    "DEFAULT_PRECISION",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "PRECISION_ENV",
    "SPEEDUP_THRESHOLD",
    "PrecisionChoice",
    "choose_precision",
    "cpu_model_and_flags",
    "cpu_precisions",
    "machine_key",
    "parse_cpuinfo",
    "probe_cpu",
    "resolve_precision",
]

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: What a precision setting may be: a precision, or "auto".
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)
DEFAULT_PRECISION = "auto"
PRECISION_ENV = "WINCLIP_PRECISION"
#: Another precision replaces fp32 only when it is at least this many times as fast.
SPEEDUP_THRESHOLD = 1.2
#: The probe's GEMM: ViT-B/16+'s MLP input projection (width 896 -> 3584) on this many tokens, with GELU.
PROBE_SHAPE = (1024, 896, 3584)
#: Interleaved timing rounds of the probe (each times every precision once).
PROBE_ROUNDS = 5
_FORMAT = 2
#: Environment variables that change which GEMM kernels run, and so the probe's answer: part of the machine key.
_GEMM_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "WINCLIP_ONEDNN")

_log = logging.getLogger(__name__)
_MEMO: dict[str, PrecisionChoice] = {}


@dataclass(frozen=True)
class PrecisionChoice:
    """A resolved precision and how it was chosen.

    Attributes:
        precision: "fp32", "bf16" or "fp16".
        source: "argument", "environment", "cuda", "probe" (measured now) or "remembered" (an earlier probe on this
            machine).
        ratios: the probe's speed of each precision relative to fp32 (empty unless probed).
        gflops: the probe's GFLOP/s per precision.
        seconds: how long the probe took.
        machine: what the probe was remembered under (see :func:`machine_key`).
    """

    precision: str
    source: str
    ratios: dict[str, float] = field(default_factory=dict)
    gflops: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    machine: str = ""

    def describe(self) -> str:
        """One line: the choice, where it came from and the measured ratios."""
        text = f"precision {self.precision} ({self.source}"
        if self.ratios:
            text += "; speed vs fp32: " + ", ".join(f"{p} {r:.2f}x" for p, r in self.ratios.items())
            text += f"; probe {self.seconds:.2f} s" if self.source == "probe" else ""
        return text + ")"

    def as_dict(self) -> dict:
        return asdict(self)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISION_CHOICES`, else ValueError."""
    check_choice("precision", precision, PRECISION_CHOICES)
    return precision


def choose_precision(ratios: Mapping[str, float], threshold: float = SPEEDUP_THRESHOLD) -> str:
    """The decision rule, a pure function of the measured speeds.

    Args:
        ratios: {precision: its speed / fp32's speed} for the precisions that were measured (fp32 may be absent;
            it is 1 by definition).
        threshold: how much faster a precision must be than fp32 to replace it.

    Returns:
        the fastest precision whose ratio is at least ``threshold``, else "fp32".
    """
    candidates = {p: r for p, r in ratios.items() if p != "fp32" and r >= threshold}
    return max(candidates, key=candidates.get) if candidates else "fp32"


def cpu_precisions() -> list[str]:
    """The precisions this CPU can run through the encoder: fp32 always, bf16 and fp16 where oneDNN supports them.

    oneDNN answers for the instruction set it dispatches to, so a cap (``ONEDNN_MAX_CPU_ISA``) counts: capped at AVX2
    a CPU runs fp32 only; at AVX512_CORE, bf16 too (emulated: no bf16 instructions). A cap lowers what the CPU's
    flags allow, never raises it: fp16 needs fp16 instructions in the CPU itself (AVX512_FP16 on the Xeons with it)."""
    out = ["fp32"]
    mkldnn = torch.ops.mkldnn
    for name, check in (("bf16", "_is_mkldnn_bf16_supported"), ("fp16", "_is_mkldnn_fp16_supported")):
        fn = getattr(mkldnn, check, None)
        try:
            if fn is not None and bool(fn()):
                out.append(name)
        except RuntimeError:  # the check itself is not available on this build
            continue
    return out


def parse_cpuinfo(text: str) -> tuple[str, str]:
    """(model name, flags) of the first processor in the text of ``/proc/cpuinfo`` ("Features" on ARM); the model
    falls back to what :mod:`platform` says, the flags to ""."""
    model = flags = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.strip()
    return model or platform.processor() or platform.machine(), flags


def cpu_model_and_flags() -> tuple[str, str]:
    """:func:`parse_cpuinfo` of this machine's ``/proc/cpuinfo`` (none outside Linux: the fallbacks)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    return parse_cpuinfo(text)


def machine_key() -> str:
    """What a probe result is remembered under: CPU model and flags, torch version, thread count and the variables
    that cap oneDNN's instruction set or turn its GEMMs off (hashed)."""
    model, flags = cpu_model_and_flags()
    gemm_env = ",".join(f"{name}={os.environ.get(name, '')}" for name in _GEMM_ENV)
    blob = f"{model}|{flags}|{torch.__version__}|{torch.get_num_threads()}|{platform.machine()}|{gemm_env}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_MEMORY = "precision.json"


def _gemm_call(precision: str):
    """A function that runs the encoder's GEMM op once at :data:`PROBE_SHAPE` in ``precision`` on the CPU (built and
    warmed up: oneDNN builds its kernel on the first call)."""
    from winclip_lib.core.vit_blocks import linear

    tokens, width, hidden = PROBE_SHAPE
    g = torch.Generator().manual_seed(0)
    dtype = PRECISIONS[precision]
    x = torch.randn(tokens, width, generator=g).to(dtype)
    w = (torch.randn(hidden, width, generator=g) * width**-0.5).to(dtype)
    b = torch.zeros(hidden, dtype=dtype)

    def call() -> None:
        with torch.inference_mode():
            linear(x, w, b, gelu=True)

    call()
    return call


def probe_cpu(precisions: Sequence[str] | None = None, threshold: float = SPEEDUP_THRESHOLD,
              rounds: int = PROBE_ROUNDS) -> PrecisionChoice:
    """Time the encoder's GEMM in each precision (:func:`cpu_precisions` by default) and choose
    (:func:`choose_precision`). Takes a few tenths of a second.

    The precisions are timed in interleaved rounds (fp32, bf16, fp16, fp32, ...), and each one's speed relative to
    fp32 is the median over the rounds of fp32's time over its time in the same round: a shared machine's
    slow moments then slow both sides of a ratio, and one noisy round cannot decide.
    """
    started = time.perf_counter()
    names = list(precisions) if precisions is not None else cpu_precisions()
    if "fp32" not in names:
        names.insert(0, "fp32")
    calls = {}
    for name in names:
        try:
            calls[name] = _gemm_call(name)
        except RuntimeError as exc:  # a precision this build cannot run here after all
            _log.debug("precision probe: %s failed: %s", name, exc)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    ratios = {name: statistics.median(f / t for f, t in zip(times["fp32"], ts, strict=True))
              for name, ts in times.items()}
    tokens, width, hidden = PROBE_SHAPE
    flop = 2.0 * tokens * width * hidden
    return PrecisionChoice(
        precision=choose_precision(ratios, threshold),
        source="probe",
        ratios={k: round(v, 3) for k, v in ratios.items()},
        gflops={k: round(flop / min(ts) / 1e9, 1) for k, ts in times.items()},
        seconds=round(time.perf_counter() - started, 3),
        machine=machine_key(),
    )


def _remembered(key: str) -> PrecisionChoice | None:
    try:
        entry = read_json(_MEMORY, _FORMAT)["machines"][key]
        if entry["precision"] not in PRECISIONS:
            return None
        return PrecisionChoice(entry["precision"], "remembered", dict(entry["ratios"]), dict(entry["gflops"]),
                               float(entry["seconds"]), key)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember(choice: PrecisionChoice) -> None:
    """Add the choice to the per-machine memory (a read-only home: the probe simply runs again next time)."""
    machines = read_json(_MEMORY, _FORMAT).get("machines", {})
    machines[choice.machine] = {"precision": choice.precision, "ratios": choice.ratios, "gflops": choice.gflops,
                                "seconds": choice.seconds, "torch": torch.__version__,
                                "cpu": cpu_model_and_flags()[0]}
    write_json(_MEMORY, _FORMAT, {"machines": machines})


def resolve_precision(precision: str | None, device: torch.device, *, remember: bool = True) -> PrecisionChoice:
    """Resolve a precision setting for ``device`` (see the module docstring for the order of the rules).

    Args:
        precision: "auto" (or None), "fp32", "bf16" or "fp16".
        device: the device the model runs on.
        remember: read and write the per-machine memory of the CPU probe.
    """
    precision = check_precision(precision or "auto")
    if precision != "auto":
        return PrecisionChoice(precision, "argument")
    env = os.environ.get(PRECISION_ENV, "").strip().lower()
    if env and env != "auto":
        if env not in PRECISIONS:
            raise ValueError(f"{PRECISION_ENV}={env!r} is not a precision; use one of {', '.join(PRECISION_CHOICES)}")
        return PrecisionChoice(env, "environment")
    if device.type == "cuda":
        return PrecisionChoice("bf16" if torch.cuda.is_bf16_supported() else "fp16", "cuda")
    if device.type != "cpu":
        return PrecisionChoice("fp32", "default")
    key = machine_key()
    if key in _MEMO:
        return _MEMO[key]
    choice = _remembered(key) if remember else None
    if choice is None:
        choice = probe_cpu()
        if remember:
            _remember(choice)
    _MEMO[key] = choice
    _log.info("winclip: %s", choice.describe())
    return choice
