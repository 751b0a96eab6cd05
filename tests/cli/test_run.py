"""The command line: built from RunConfig, fails before any work with one line, never loses a run."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from winclip_lib.core.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, TINY_MODEL, find_cached_weights
from winclip_lib.datasets.synthetic import make_synthetic
from winclip_lib.experiments import cli
from winclip_lib.experiments.cli import build_parser, config_from_args, main
from winclip_lib.experiments.config import RunConfig, setting_fields


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("data") / "syn", categories=("disc", "tiles"), n_train=2,
                          n_test_good=1, n_test_bad=2, size=48)


def _tiny_args(tmp_path: Path) -> list[str]:
    return ["--model", TINY_MODEL, "--pretrained", "none", "--precision", "fp32", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--no-progress"]


def test_every_flag_default_is_the_dataclass_default(synth):
    """Flags are built from the RunConfig fields: a run with no flags is RunConfig's defaults, every setting has a
    flag, and --help shows each default and the choices."""
    args = build_parser().parse_args(["run", "--synthetic", str(synth)])
    cfg = config_from_args(args)
    defaults = RunConfig()
    for f, _ in setting_fields(RunConfig):
        if f.name in ("datasets", "cache_dir", "out_dir"):
            continue
        assert getattr(cfg, f.name) == getattr(defaults, f.name), f.name
    assert cfg.cache_dir == str(Path(defaults.cache_dir).resolve())
    assert cfg.out_dir == str(Path(defaults.out_dir).resolve())
    run_help = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    text = run_help.format_help()
    for f, _ in setting_fields(RunConfig):
        if not f.metadata.get("cli", True):
            continue
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        assert flag in text, f.name
    for shown in ("(default: 0 1 2 4)", "(default: 0 1 2 3 4)", "(default: build/results)",
                  "(default: .cache/winclip/features)", "{paper,anomalib,no_period}", "{auto,fp32,bf16,fp16}"):
        assert shown in " ".join(text.split()), shown


def test_a_changed_flag_changes_exactly_its_setting(synth):
    args = build_parser().parse_args(["run", "--synthetic", str(synth), "--temperature", "0.01", "--no-masks",
                                      "--scales", "1", "2", "3", "--precision", "bf16"])
    cfg = config_from_args(args)
    changed = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(RunConfig(), f.name)}
    assert changed == {"datasets", "temperature", "masks", "scales", "precision", "cache_dir", "out_dir"}
    assert cfg.scales == (1, 2, 3) and cfg.masks is False


def test_runs_end_to_end_prints_the_summary_and_a_rerun_says_it_was_complete(synth, tmp_path, capsys):
    argv = ["run", "--synthetic", str(synth), "--categories", "disc", "--shots", "0", "1", "--seeds", "0",
            *_tiny_args(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "images encoded: 4" in printed and "DEMO — random weights, synthetic data" in printed
    assert "values in %" in printed and "PRO" in printed and "pixel_aupro" not in printed
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
        (["--synthetic", "{root}", "--shots", "0", "9"], "only 2 normal training images"),
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


def test_an_unknown_choice_is_refused_by_the_parser(synth, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--synthetic", str(synth), "--template-set", "foo", *_tiny_args(tmp_path)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'foo'" in capsys.readouterr().err and not (tmp_path / "cache").exists()


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

    monkeypatch.setattr(cli, "run_grid", interrupted)
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
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "winclip_lib.experiments.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([*command, "synthetic", "--root", "syn", "--categories", "disc", "--size", "40",
                           "--n-train", "1"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "syn" / "disc" / "train" / "good" / "000.png").is_file()
    assert "winclip run --synthetic" in proc.stdout
    assert main(["summary", "--out", str(tmp_path / "none")]) == 2
