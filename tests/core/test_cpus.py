"""The CPU facts the library acts on: which CPUs get numpy's AVX2 kernels instead of its AVX-512 ones, and that
importing winclip_lib before numpy turns them off there (and only there, and never against the user's choice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from winclip_lib.core.cpus import (
    NUMPY_AVX512_TARGETS,
    cpu_description,
    is_zen4,
    numpy_features_to_disable,
    usable_cpus,
)

ROOT = Path(__file__).resolve().parents[2]


def _block(vendor: str, family: int, model: int, flags: str) -> str:
    return (f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
            f"model name\t: some CPU\nflags\t\t: fpu sse2 avx2 {flags}\n")


ZEN4 = _block("AuthenticAMD", 25, 17, "avx512f avx512dq avx512_bf16")  # EPYC 9004 (Genoa)
ZEN4_DESKTOP = _block("AuthenticAMD", 25, 97, "avx512f avx512vl")  # Ryzen 7000 (Raphael)
ZEN3 = _block("AuthenticAMD", 25, 1, "vaes")  # EPYC 7003 (Milan): same family, no AVX-512
ZEN5 = _block("AuthenticAMD", 26, 2, "avx512f avx512_bf16 avx_vnni")
INTEL = _block("GenuineIntel", 6, 143, "avx512f amx_bf16 amx_tile")  # Sapphire Rapids
ZEN2 = _block("AuthenticAMD", 23, 49, "sha_ni")


@pytest.mark.parametrize(("cpuinfo", "zen4"), [(ZEN4, True), (ZEN4_DESKTOP, True), (ZEN3, False), (ZEN5, False),
                                                (INTEL, False), (ZEN2, False), ("", False)])
def test_zen4_is_amd_family_25_with_avx512(cpuinfo, zen4):
    assert is_zen4(cpuinfo) is zen4
    assert numpy_features_to_disable(cpuinfo) == (NUMPY_AVX512_TARGETS if zen4 else None)


def test_the_avx512_targets_are_numpys_own_names():
    """Every name given is one of numpy's dispatch targets (a name it does not know would only be warned about and
    ignored, leaving the slow sort in place)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    assert set(NUMPY_AVX512_TARGETS.split()) <= set(__cpu_dispatch__) | {"X86_V4"}
    assert set(NUMPY_AVX512_TARGETS.split()) >= {t for t in __cpu_dispatch__ if t.startswith(("AVX512", "X86_V4"))}


def test_cpu_description_is_the_first_processor(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("\n" + ZEN4 + "\n" + INTEL.replace("processor\t: 0", "processor\t: 1") + "\n")
    text = cpu_description(str(f))
    assert "AuthenticAMD" in text and "GenuineIntel" not in text
    assert is_zen4(text)
    assert cpu_description(str(tmp_path / "missing")) == ""


def test_usable_cpus_is_the_affinity():
    assert usable_cpus() == len(os.sched_getaffinity(0))


_PROBE = ("import json, os, sys\n"
          "{before}\n"
          "import winclip_lib\n"
          "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
          "print(json.dumps({{'env': os.environ.get('NPY_DISABLE_CPU_FEATURES'), 'x86_v4': f.get('X86_V4'),\n"
          "                  'icl': f.get('AVX512_ICL')}}))\n")


_CASES = {  # name: (variables added to an environment without NPY_*, code run before importing winclip_lib)
    "default": ({}, ""),
    "user disabled nothing": ({"NPY_DISABLE_CPU_FEATURES": ""}, ""),
    "user enabled": ({"NPY_ENABLE_CPU_FEATURES": "X86_V2"}, ""),
    "numpy first": ({}, "import numpy"),
}


@pytest.fixture(scope="module")
def probes() -> dict[str, dict]:
    """What a fresh interpreter sees after importing winclip_lib, for each case (run at once)."""
    procs = {}
    for name, (extra, before) in _CASES.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith("NPY_")}
        env.update(extra, PYTHONPATH=str(ROOT))
        procs[name] = subprocess.Popen([sys.executable, "-c", _PROBE.format(before=before)], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    return out


def test_import_turns_numpys_avx512_off_on_zen4_only(probes):
    expected = numpy_features_to_disable()  # this machine's answer (tested above on every kind of CPU)
    assert probes["default"]["env"] == expected
    if expected is not None:  # a Zen 4 machine: numpy runs its AVX2 kernels
        assert probes["default"]["x86_v4"] is False and probes["default"]["icl"] is False


def test_the_users_choice_and_an_earlier_numpy_are_left_alone(probes):
    assert probes["user disabled nothing"]["env"] == ""
    assert probes["user enabled"]["env"] is None
    assert probes["numpy first"]["env"] is None  # numpy read its environment already
