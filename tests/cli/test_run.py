"""``winclip run`` and ``winclip summary``: a grid end to end, failures before any work in one line, Ctrl-C resumes,
a full disk is one line and the rerun completes, an output folder of anything else is never overwritten, the
installed command works from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SYNTHETIC_SET
from tests.experiments.filesystems import full_disk_for, small_tmpfs
from winclip_lib.cli import main
from winclip_lib.cli import run as run_command
from winclip_lib.core.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, TINY_MODEL, find_cached_weights
from winclip_lib.experiments.cache_entries import ENTRY_SUFFIX


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


def _one_line(err: str) -> str:
    """The error output, checked to be one line without a traceback."""
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_an_output_folder_or_cache_that_cannot_be_written_fails_before_any_work(synth, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    base = ["run", "--synthetic", str(synth), "--categories", "disc", "--shots", "0", *_tiny_args(tmp_path)]
    assert main([*base, "--out", str(tmp_path / "afile" / "out")]) == 2
    assert _one_line(capsys.readouterr().err) == (f"winclip: error: --out {tmp_path / 'afile' / 'out'} is under "
                                                  f"{tmp_path / 'afile'}, which is a file: choose a folder")
    assert main([*base, "--cache-dir", str(tmp_path / "afile")]) == 2
    assert _one_line(capsys.readouterr().err) == (f"winclip: error: --cache-dir {tmp_path / 'afile'} is a file: "
                                                  "choose a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing was written, the model never loaded


def test_a_full_disk_mid_run_is_one_line_recorded_in_run_json_and_the_rerun_completes(synth, tmp_path, capsys,
                                                                                    monkeypatch):
    """A write that fails late (the feature cache's disk fills up) ends in one line naming the file and the cause,
    exit 2, run.json saying so, no temporary file left; the same command with room completes the run, equal to a
    run that never failed."""
    argv = ["run", "--synthetic", str(synth), "--categories", "disc", "--shots", "0", "1", "--seeds", "0",
            *_tiny_args(tmp_path)]
    full_disk_for(monkeypatch, ENTRY_SUFFIX)
    assert main(argv) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"winclip: error: cannot write {tmp_path / 'cache'}/") and \
        err.endswith(f"{ENTRY_SUFFIX}: no space left on device")
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["status"] == f"failed: {err.removeprefix('winclip: error: ')}"
    assert not [p for p in tmp_path.rglob("*.tmp")] and not (tmp_path / "out" / "metrics.csv").exists()
    monkeypatch.undo()
    assert main(argv) == 0
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "complete"
    clean = [*argv, "--cache-dir", str(tmp_path / "cache2"), "--out", str(tmp_path / "clean")]  # the last flags win
    assert main(clean) == 0
    for name in ("metrics.csv", "scores.csv"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()


def test_a_cache_on_a_full_tmpfs_is_one_line_and_run_json_says_failed(synth, tmp_path, capsys):
    with small_tmpfs(tmp_path / "small", "200k") as small:
        argv = ["run", "--synthetic", str(synth), "--categories", "disc", "--shots", "0", *_tiny_args(tmp_path),
                "--cache-dir", str(small / "cache")]
        assert main(argv) == 2
        err = _one_line(capsys.readouterr().err)
        assert err.startswith(f"winclip: error: cannot write {small / 'cache'}/") and \
            err.endswith(": no space left on device")
        status = json.loads((tmp_path / "out" / "run.json").read_text())["status"]
        assert status == f"failed: {err.removeprefix('winclip: error: ')}"
        assert not list(small.rglob("*.tmp"))


def test_run_never_overwrites_what_it_did_not_write(synth, tmp_path, capsys):
    """Your own files, the output of `winclip predict` and a run with other settings are refused in one line, before
    any work, and keep every byte; the same run resumes (or is read back)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    for name, text in (("metrics.csv", "a,b\n1,2\n"), ("scores.csv", "x\n"), ("run.json", '{"mine": 1}\n')):
        (mine / name).write_text(text)
    predicted = tmp_path / "predicted"
    predicted.mkdir()
    (predicted / "run.json").write_text('{"kind": "winclip-predict", "status": "complete"}\n')
    (predicted / "report.html").write_text("<html></html>\n")
    base = ["run", "--synthetic", str(synth), "--categories", "disc", "--seeds", "0", *_tiny_args(tmp_path)]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main([*base, "--out", str(mine)]) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"winclip: error: --out {mine} exists and holds other files (metrics.csv, run.json, scores.csv); winclip run "
        "writes into a new or empty folder, or resumes its own run there: choose another --out")
    assert main([*base, "--out", str(predicted)]) == 2
    assert "holds the output of winclip predict" in _one_line(capsys.readouterr().err)
    assert {p: p.read_bytes() for p in before} == before
    run = tmp_path / "run"
    assert main([*base, "--shots", "0", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    finished = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main([*base, "--shots", "0", "--out", str(run)]) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"winclip: error: --out {run} holds another run (other settings: shots 0 1 -> 0); a run never overwrites "
        "another: choose another --out")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == finished
    assert main([*base, "--shots", "0", "1", "--out", str(run)]) == 0
    assert "all 1 units were already complete" in capsys.readouterr().out


def test_max_test_images_is_read_as_a_number(synth, tmp_path, capsys):
    argv = ["run", "--synthetic", str(synth), "--shots", "0", "--max-test-images", "4", *_tiny_args(tmp_path)]
    assert main(argv) == 0
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert scores.groupby("category").size().to_dict() == {c: 4 for c in SYNTHETIC_SET["categories"]}
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["max_test_images"] == 4
    with pytest.raises(SystemExit) as usage:
        main([*argv, "--max-test-images", "four"])
    assert usage.value.code == 2
    assert "--max-test-images: expected an integer or none, got 'four'" in capsys.readouterr().err
