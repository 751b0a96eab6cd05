"""A ``winclip run`` killed with SIGKILL while the cache's writer thread is writing: no entry on disk is partial or
corrupt, and the resumed run ends with the tables of an uninterrupted one, byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.experiments.cache_entries import read_entry
from winclip_lib.experiments.results import TABLES

REPO = Path(__file__).resolve().parents[2]


def _command(data: Path, out: Path, cache: Path) -> list[str]:
    # batch size 1: an image's features do not depend on what it was encoded with, so the entries re-encoded after
    # the kill are the very ones the uninterrupted run wrote
    return [sys.executable, "-m", "winclip_lib.cli", "run", "--synthetic", str(data), "--model", TINY_MODEL,
            "--pretrained", "none", "--precision", "fp32", "--device", "cpu", "--batch-size", "1", "--shots", "0", "2",
            "--seeds", "0", "1", "--out", str(out), "--cache-dir", str(cache), "--no-progress"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WINCLIP_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}


def test_sigkill_while_writing_leaves_no_corrupt_entry_and_resumes_to_the_same_tables(synth, tmp_path):
    subprocess.run(_command(synth, tmp_path / "ref", tmp_path / "ref-cache"), env=_env(), check=True,
                   capture_output=True)
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = subprocess.Popen(_command(synth, out, cache), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(cache.glob("*/*/*.feat"))) < 3:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    entries = list(cache.glob("*/*/*.feat"))
    assert entries, "the run was killed before it wrote anything"
    assert all(read_entry(e) is not None for e in entries)  # complete and intact, or absent
    assert not any((out / t).exists() for t in TABLES)

    done = subprocess.run(_command(synth, out, cache), env=_env(), check=True, capture_output=True, text=True)
    assert "invalid entries replaced: 0" in done.stdout
    for name in TABLES:
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
