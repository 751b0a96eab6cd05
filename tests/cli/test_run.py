"""``winclip run`` and ``winclip summary``: a grid end to end, failures before any work in one line, Ctrl-C resumes,
the installed command works from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SYNTHETIC_SET
from winclip_lib.cli import main
from winclip_lib.cli import run as run_command
from winclip_lib.core.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, TINY_MODEL, find_cached_weights


def _tiny_args(tmp_path: Path) -> list[str]:
    return ["--model", TINY_MODEL, "--pretrained", "none", "--precision", "fp32", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--no-progress"]


def test_runs_end_to_end_prints_the_summary_and_a_rerun_says_it_was_complete(synth, tmp_path, capsys):
    argv = ["run", "--synthetic", str(synth), "--categories", "disc", "--shots", "0", "1", "--seeds", "0",
            *_tiny_args(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    n_test = SYNTHETIC_SET["n_test_good"] + SYNTHETIC_SET["n_test_bad"]
    assert f"images encoded: {n_test + 1}" in printed and "DEMO — random weights, synthetic data" in printed
    assert "values in %" in printed and "Pixel PRO" in printed and "pixel_aupro" not in printed
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert set(metrics["category"]) == {"disc"} and set(metrics["k"]) == {0, 1}
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"all 1 units were already complete in {tmp_path / 'out'}" in printed and "images encoded" not in printed
    assert main(["summary", "--out", str(tmp_path / "out"), "--per-category"]) == 0
    printed = capsys.readouterr().out
    assert "Image AUROC" in printed and "DEMO" in printed and "disc" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--synthetic", "/no/such/root"], "does not exist"),
        (["--synthetic", "{root}", "--categories", "bottle"], "unknown category 'bottle'"),
        (["--synthetic", "{root}", "--categories", "synthetic:bottle"], "unknown synthetic category bottle"),
        (["--synthetic", "{root}/disc"], "looks like a single category folder; pass its parent folder"),
        ([], "no dataset given"),
        (["--synthetic", "{root}", "--temperature", "-1"], "temperature must be > 0"),
        (["--synthetic", "{root}", "--shots", "0", "9"], f"only {SYNTHETIC_SET['n_train']} normal training images"),
        (["--synthetic", "{root}", "--device", "gpu"], "unknown device 'gpu'; available here: auto, cpu"),
        (["--synthetic", "{root}", "--model", "ViT-Nope"], "unknown open_clip model 'ViT-Nope'"),
    ],
)
def test_bad_values_fail_before_any_work_with_one_line(synth, tmp_path, capsys, args, message):
    argv = ["run", *[a.format(root=synth) for a in args], "--pretrained", "none", "--cache-dir",
            str(tmp_path / "c"), "--out", str(tmp_path / "o"), "--no-progress"]
    if "--model" not in args:
        argv += ["--model", TINY_MODEL]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()  # nothing was encoded


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(synth, tmp_path, capsys):
    assert main(["run", "--synthetic", str(synth), "--model", TINY_MODEL, "--pretrained", "none", "--device", "cuda",
                 "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("winclip: error: device 'cuda' asked for, but this machine has no CUDA GPU; available here: "
                   "auto, cpu")


def test_ctrl_c_is_one_line_and_the_run_resumes(synth, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "run_grid", interrupted)
    assert main(["run", "--synthetic", str(synth), *_tiny_args(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "winclip: interrupted; rerun the same command to resume"


def test_missing_weights_offline_is_one_message(synth, tmp_path, capsys, monkeypatch):
    if find_cached_weights(DEFAULT_MODEL, DEFAULT_PRETRAINED) is not None:
        pytest.skip("the real weights are cached here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["run", "--synthetic", str(synth), "--shots", "0", "--out", str(tmp_path / "o"), "--cache-dir",
            str(tmp_path / "c")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Pretrained weights 'laion400m_e31'" in err and "--pretrained none" in err


def test_the_installed_command_works_from_any_folder(tmp_path):
    """`winclip synthetic` writes the demo's dataset from any folder (no checkout needed); `summary` of nothing is
    exit 2."""
    exe = Path(sys.executable).with_name("winclip")
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "winclip_lib.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([*command, "synthetic", "--root", "syn", "--categories", "disc", "--size", "40",
                           "--n-train", "1"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "syn" / "disc" / "train" / "good" / "000.png").is_file()
    assert "winclip run --synthetic" in proc.stdout
    assert main(["summary", "--out", str(tmp_path / "none")]) == 2
