"""The CPUs this process runs on: how many it may use (what sizes the decoder and sort pools), and which of numpy's
instruction sets it should leave aside.

**numpy on AMD Zen 4.** numpy sorts with x86-simd-sort, whose AVX-512 partition stores each vector with the
memory-destination form of ``vpcompress``, which Zen 4 runs in microcode (AMD's optimisation guide for the family
advises against it; OpenJDK turned its own AVX-512 sort off there). Measured on a 2-core AMD EPYC (Zen 4, family 25
model 17): 19.5 ms to sort 660,000 float32 values with numpy 2.4's AVX-512 kernels, 3.5 ms with its AVX2 ones; a whole
``winclip run`` grid (``make bench-grid SCALE=0.1``) took 11.7 s instead of 13.6 s, its metrics 1.6 s instead of 4.9 s,
with the same results. :func:`numpy_features_to_disable` names numpy's AVX-512 targets on such a CPU, and
:mod:`winclip_lib` turns them off (``NPY_DISABLE_CPU_FEATURES``) when it is imported before numpy and the user set
neither that variable nor ``NPY_ENABLE_CPU_FEATURES``. Zen 3 (the same family) has no AVX-512; Zen 5 (family 26)
and Intel CPUs keep numpy's choice.
"""

from __future__ import annotations

import os

__all__ = ["NUMPY_AVX512_TARGETS", "cpu_description", "is_zen4", "numpy_features_to_disable", "usable_cpus"]

#: numpy's AVX-512 dispatch targets (the names numpy 2.4 gives them).
NUMPY_AVX512_TARGETS = "X86_V4 AVX512_ICL AVX512_SPR"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the system says, else the machine's count; at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_description(path: str = "/proc/cpuinfo") -> str:
    """The first processor's block of ``/proc/cpuinfo`` ("" where there is none: not Linux)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = []
            for line in f:
                if not line.strip():
                    if lines:
                        break
                    continue
                lines.append(line)
            return "".join(lines)
    except OSError:
        return ""


def _fields(cpuinfo: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def is_zen4(cpuinfo: str) -> bool:
    """Whether a ``/proc/cpuinfo`` block describes an AMD Zen 4 core: vendor AuthenticAMD, CPU family 25 (19h), with
    AVX-512 (the family's Zen 3 cores have none)."""
    f = _fields(cpuinfo)
    return (f.get("vendor_id") == "AuthenticAMD" and f.get("cpu family") == "25"
            and "avx512f" in f.get("flags", "").split())


def numpy_features_to_disable(cpuinfo: str | None = None) -> str | None:
    """The value for ``NPY_DISABLE_CPU_FEATURES`` on this CPU (``cpuinfo``: a ``/proc/cpuinfo`` block, default
    this machine's): :data:`NUMPY_AVX512_TARGETS` on AMD Zen 4 (the module docstring), None elsewhere."""
    return NUMPY_AVX512_TARGETS if is_zen4(cpu_description() if cpuinfo is None else cpuinfo) else None
