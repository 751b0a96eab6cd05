"""Checkpoint files: one setting for every entry point (Python, the CLI, the notebooks' parameter, make's variable, the
environment), the SHA-256 verdict on the file that ran, and one line for a file that cannot run."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from data_prep import verify_weights
from tools import notebooks as nbmod
from tools.html_report import write_html_report
from winclip_lib.cli import main as winclip_main
from winclip_lib.core import checkpoints as ck
from winclip_lib.core.backbone import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    TINY_MODEL,
    WeightsUnavailableError,
    load_backbone,
)
from winclip_lib.core.encoder import encode_images
from winclip_lib.core.prompts import ANOMALOUS_STATES, NORMAL_STATES, TEMPLATES, build_prompts, text_embeddings
from winclip_lib.core.scoring import anomaly_probability
from winclip_lib.core.text_tower import encode_text
from winclip_lib.datasets.synthetic import make_synthetic
from winclip_lib.experiments import labels
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.grid import run_grid
from winclip_lib.report.tables import prompt_probabilities_table

REPO = Path(nbmod.__file__).resolve().parents[1]
SEED = 7  # not the seed of `--pretrained none` (0): a file that were ignored would give other numbers


@pytest.fixture(scope="module")
def seeded():
    """The tiny model with seeded random weights: what every checkpoint file below holds."""
    return load_backbone(TINY_MODEL, None, seed=SEED, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def files(seeded, tmp_path_factory) -> dict[str, Path]:
    """The same weights as .pt (an open_clip training checkpoint: ``state_dict`` with ``module.`` keys, plus an epoch),
    .bin (a plain state dict, as the hub's ``open_clip_pytorch_model.bin``) and .safetensors."""
    d = tmp_path_factory.mktemp("checkpoints")
    state = {k: v.detach().clone().contiguous() for k, v in seeded.model.state_dict().items()}
    torch.save({"epoch": 31, "name": "tiny", "state_dict": {f"module.{k}": v for k, v in state.items()}}, d / "tiny.pt")
    torch.save(state, d / "tiny.bin")
    save_file(state, str(d / "tiny.safetensors"))
    return {fmt: d / f"tiny.{fmt}" for fmt in ("pt", "bin", "safetensors")}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """One small category with enough normal images for the default k (up to 4)."""
    return make_synthetic(tmp_path_factory.mktemp("data") / "syn", categories=("disc",), n_train=4, n_test_good=2,
                          n_test_bad=2, size=48)


@pytest.fixture(scope="module")
def reference_scores(seeded, data, tmp_path_factory) -> pd.DataFrame:
    """The grid's per-image scores with the seeded weights passed in directly (no file)."""
    d = tmp_path_factory.mktemp("reference")
    cfg = RunConfig(datasets={"synthetic": str(data)}, model_name=TINY_MODEL, pretrained=None, shots=(0,),
                    precision="fp32", device="cpu", cache_dir=str(d / "cache"), out_dir=str(d / "out"))
    return run_grid(cfg, progress=False, backbone=seeded).scores


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A child's environment: offline, no weights cached anywhere it looks (HOME and the HF cache in tmp_path)."""
    env = {k: v for k, v in os.environ.items() if k not in (ck.PRETRAINED_ENV, ck.ENTRY_POINT_ENV)}
    env.update(HF_HUB_OFFLINE="1", HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"), WINCLIP_PROGRESS="0")
    env.update(extra)
    return env


def _cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """The ``winclip`` command in a process of its own."""
    return subprocess.run([sys.executable, "-m", "winclip_lib.cli", *args], cwd=REPO, env=_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=600)


def _tiny_run(data: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--synthetic", str(data), "--model", TINY_MODEL, "--shots", "0", "--precision", "fp32", "--device",
            "cpu", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--no-progress", *extra]


def _assert_same_scores(out: Path, reference: pd.DataFrame) -> None:
    got = pd.read_csv(out / "scores.csv", comment="#")
    assert len(got) == len(reference) > 0
    assert got["score"].to_numpy() == pytest.approx(reference["score"].to_numpy(), abs=1e-6)


# ----------------------------------------------------------------------------------- every entry point, one file


def test_the_three_formats_hold_the_same_weights(seeded, files):
    x = torch.randn(2, 3, 240, 240, generator=torch.Generator().manual_seed(0))
    want = encode_images(seeded, x, (2, 3))
    ids = set()
    for path in files.values():
        loaded = load_backbone(TINY_MODEL, str(path), precision="fp32", device="cpu")
        got = encode_images(loaded, x, (2, 3))
        for k in (2, 3):
            torch.testing.assert_close(got.windows[k], want.windows[k], rtol=0, atol=0)
        torch.testing.assert_close(got.image, want.image, rtol=0, atol=0)
        assert loaded.weights.status == "unverified" and loaded.weights.sha256 == ck.file_sha256(path)
        ids.add(loaded.weights_id)
    assert len(ids) == 3  # the feature cache keys the file by its digest


def test_cli_pretrained_flag_runs_the_file_and_records_the_verdict(files, data, reference_scores, tmp_path, capsys):
    out = tmp_path / "out"
    assert winclip_main(_tiny_run(data, tmp_path, "--pretrained", str(files["pt"]))) == 0
    printed = capsys.readouterr().out
    _assert_same_scores(out, reference_scores)
    info = json.loads((out / "run.json").read_text())
    weights = info["weights"]
    assert weights["status"] == "unverified" and weights["sha256"] == ck.file_sha256(files["pt"])
    assert weights["file"] == str(files["pt"]) and weights["asked"] == str(files["pt"])
    assert weights["verdict"].startswith("weights: unverified checkpoint (SHA-256 ")
    assert info["label"] == "DEMO — synthetic data: not a reproduction; " + weights["verdict"]
    assert weights["verdict"] in info["backbone"] and weights["verdict"] in printed


def test_make_variable_reaches_the_grid_and_the_notebooks(files, data, reference_scores, tmp_path):
    """``make reproduce ... PRETRAINED=<relative path>``: both commands get the absolute path; the grid command, run
    as make wrote it, gives the reference scores."""
    rel = os.path.relpath(files["bin"], REPO)
    proc = subprocess.run(["make", "-n", "reproduce", f"MVTEC={data}", f"PRETRAINED={rel}", f"MODEL={TINY_MODEL}",
                           f"RESULTS={tmp_path / 'results'}", f"CACHE={tmp_path / 'cache'}", "PRECISION=fp32",
                           "DEVICE=cpu"], cwd=REPO, capture_output=True, text=True, env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    commands = proc.stdout.replace("\\\n", " ").splitlines()
    grid = next(c for c in commands if "-m winclip_lib.cli run" in c)
    notebooks = next(c for c in commands if "-m tools.notebooks" in c)
    assert f"--pretrained {files['bin']}" in " ".join(shlex.split(grid))
    assert f"pretrained={files['bin']}" in shlex.split(notebooks)
    assert f"model_name={TINY_MODEL}" in shlex.split(notebooks)
    argv = shlex.split(grid)
    assert argv[1:3] == ["-m", "winclip_lib.cli"]
    assert winclip_main([*argv[3:], "--shots", "0", "--no-progress"]) == 0  # the command as make wrote it
    _assert_same_scores(tmp_path / "results", reference_scores)


def test_notebook_parameter_runs_the_file_and_the_report_says_which_weights(seeded, files, tmp_path):
    """Notebook 01 executed for real (papermill) with ``pretrained`` set to the .safetensors file: its table of
    prompt probabilities is the seeded weights', and its first output — the report's first section — gives the
    verdict."""
    params = {"model_name": TINY_MODEL, "pretrained": str(files["safetensors"]), "precision": "fp32",
              "device": "cpu", "figures_dir": str(tmp_path / "figures"), "tables_dir": str(tmp_path / "tables")}
    [executed] = nbmod.run_notebooks(["01_cpe"], params, tmp_path / "executed")
    table = pd.read_csv(tmp_path / "tables" / "01_prompt_states.csv")

    def expected(backbone) -> pd.DataFrame:
        name = "bottle"  # the notebook's default dataset and category
        prompts = build_prompts(name)
        emb = torch.cat([encode_text(backbone, prompts["normal"]), encode_text(backbone, prompts["anomalous"])])
        p = anomaly_probability(emb, text_embeddings(backbone, name), RunConfig().temperature).double().numpy()
        return prompt_probabilities_table(p, NORMAL_STATES, ANOMALOUS_STATES, len(TEMPLATES))

    want = expected(seeded)
    other = expected(load_backbone(TINY_MODEL, None, seed=0, precision="fp32"))
    assert (want[["mean", "min", "max"]] - other[["mean", "min", "max"]]).abs().to_numpy().max() > 5e-3  # can fail
    pd.testing.assert_frame_equal(table[want.columns], want, check_exact=False, atol=1.01e-3, rtol=0)
    verdict = load_backbone(TINY_MODEL, str(files["safetensors"]), precision="fp32").weights.describe()
    nb = nbformat.read(executed, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code" and c.outputs and "parameters" not in
                 c.metadata.get("tags", []) and "injected-parameters" not in c.metadata.get("tags", []))
    printed = "".join(o.get("text", "") for o in first.outputs)
    assert verdict in printed and "file:" in printed
    html = write_html_report([executed], tmp_path / "report.html").read_text()
    assert verdict.replace("…", "&#8230;") in html or verdict in html


# ------------------------------------------------------------------------------------------- the environment


def test_environment_variable_is_the_default_of_every_entry_point(files, monkeypatch, tmp_path):
    monkeypatch.chdir(files["pt"].parent)
    monkeypatch.setenv(ck.PRETRAINED_ENV, "tiny.pt")
    assert RunConfig().pretrained == str(files["pt"])  # made absolute
    assert RunConfig.from_settings(pretrained=None).pretrained == str(files["pt"])  # a notebook parameter left None
    assert RunConfig(pretrained="none").pretrained is None  # a value given explicitly wins
    assert RunConfig.from_settings(pretrained="laion400m_e32").pretrained == "laion400m_e32"
    monkeypatch.delenv(ck.PRETRAINED_ENV)
    assert RunConfig().pretrained == DEFAULT_PRETRAINED


def test_environment_variable_reaches_the_cli(files, data, reference_scores, tmp_path, monkeypatch):
    monkeypatch.setenv(ck.PRETRAINED_ENV, str(files["safetensors"]))
    assert winclip_main(_tiny_run(data, tmp_path)) == 0
    _assert_same_scores(tmp_path / "out", reference_scores)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["pretrained"] == str(files["safetensors"])


# ------------------------------------------------------------------------- the offline message, per entry point


@pytest.mark.parametrize(("entry", "expected", "absent"), [
    ("python", 'load_backbone(pretrained="/path/to/file")', "--pretrained"),
    ("notebook", 'pretrained = "/path/to/file"', "--pretrained"),
    ("make", "make reproduce MVTEC=... PRETRAINED=/path/to/file", "--pretrained"),
    ("cli", "--pretrained /path/to/file", "make reproduce"),
])
def test_offline_message_names_the_way_of_the_entry_point(entry, expected, absent, monkeypatch, tmp_path):
    monkeypatch.delenv(ck.PRETRAINED_ENV, raising=False)
    monkeypatch.setenv(ck.ENTRY_POINT_ENV, entry)
    with pytest.raises(WeightsUnavailableError) as err:
        load_backbone(DEFAULT_MODEL, DEFAULT_PRETRAINED, cache_dir=str(tmp_path))
    msg = str(err.value)
    assert expected in msg and absent not in msg
    assert f"export {ck.PRETRAINED_ENV}=/path/to/file" in msg and "data_prep/README.md" in msg


def test_offline_message_names_the_environment_variable_when_it_chose_the_tag(monkeypatch, tmp_path):
    monkeypatch.setenv(ck.PRETRAINED_ENV, DEFAULT_PRETRAINED)
    with pytest.raises(WeightsUnavailableError) as err:
        load_backbone(DEFAULT_MODEL, RunConfig().pretrained, cache_dir=str(tmp_path))
    msg = str(err.value)
    assert msg.startswith(f"{ck.PRETRAINED_ENV}={DEFAULT_PRETRAINED} is set, and pretrained weights ")
    assert f"export {ck.PRETRAINED_ENV}=/path/to/file" in msg and f"{ck.PRETRAINED_ENV}=none" in msg


def test_offline_message_of_the_winclip_command_and_of_make(data, tmp_path):
    """The real commands: ``winclip run`` names its flag; ``make reproduce`` names its variable (both exit 2 at once,
    one ``winclip: error:`` message)."""
    proc = _cli(["run", "--synthetic", str(data), "--shots", "0", "--out", str(tmp_path / "out"), "--no-progress"],
                tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("winclip: error: Pretrained weights 'laion400m_e31'")
    assert "winclip run ... --pretrained /path/to/file" in proc.stderr and "--pretrained none" in proc.stderr
    assert not (tmp_path / "out").exists()
    made = subprocess.run(["make", "reproduce", f"MVTEC={data}", f"RESULTS={tmp_path / 'results'}",
                           f"CACHE={tmp_path / 'cache'}"], cwd=REPO, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert made.returncode != 0
    assert "make reproduce MVTEC=... PRETRAINED=/path/to/file" in made.stderr and "PRETRAINED=none" in made.stderr
    assert "--pretrained /path/to/file" not in made.stderr and not (tmp_path / "results").exists()


# ------------------------------------------------------------------------------------------------- digests


def test_digest_that_matches_the_papers_checkpoint_is_verified(files, data, monkeypatch, tmp_path):
    """A test-only table holding this file's digest as the paper's checkpoint (for the tiny model): the load, the
    run's run.json and its label say so; the DEMO label stays for the synthetic data alone."""
    digest = ck.file_sha256(files["safetensors"])
    monkeypatch.setattr(ck, "PAPER_MODEL", TINY_MODEL)
    monkeypatch.setattr(ck, "KNOWN_DIGESTS", (ck.KnownDigest(digest, TINY_MODEL, "laion400m_e31", "tiny.safetensors",
                                                             "this test"),))
    backbone = load_backbone(TINY_MODEL, str(files["safetensors"]), precision="fp32", device="cpu")
    assert backbone.weights.is_paper and backbone.weights.describe() == "weights: laion400m_e31 (SHA-256 verified)"
    assert backbone.describe().endswith(" — weights: laion400m_e31 (SHA-256 verified)")
    cfg = RunConfig(datasets={"synthetic": str(data)}, model_name=TINY_MODEL, pretrained=str(files["safetensors"]),
                    shots=(0,), precision="fp32", device="cpu", cache_dir=str(tmp_path / "c"),
                    out_dir=str(tmp_path / "o"))
    result = run_grid(cfg, progress=False)
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert info["weights"]["verdict"] == "weights: laion400m_e31 (SHA-256 verified)" and info["weights"]["is_paper"]
    assert info["weights"]["matched_file"] == "tiny.safetensors" and info["weights"]["sha256"] == digest
    assert result.label == "DEMO — synthetic data: not a reproduction"
    assert labels.run_label({**info, "synthetic_data": {"mvtec": False}}) is None  # the paper's weights, real data


def test_known_digest_of_another_tag_is_not_the_papers(files, monkeypatch):
    digest = ck.file_sha256(files["bin"])
    monkeypatch.setattr(ck, "KNOWN_DIGESTS", (ck.KnownDigest(digest, TINY_MODEL, "laion400m_e32", "x.pt", "test"),))
    verdict = load_backbone(TINY_MODEL, str(files["bin"]), precision="fp32").weights
    assert verdict.status == "other" and verdict.tag == "laion400m_e32"
    assert verdict.describe().startswith("weights: laion400m_e32 — not the paper's (SHA-256 verified")
    assert labels.label_for(False, {}, verdict) == verdict.describe()
    assert labels.run_label({"is_random": False, "synthetic_data": {}, "weights": verdict.as_dict()}) == \
        verdict.describe()
    # the same digest listed for another model is no match
    assert ck.verify_checkpoint(files["bin"], DEFAULT_MODEL).status == "unverified"


def test_digest_that_matches_nothing_is_unverified(files):
    verdict = ck.verify_checkpoint(files["bin"], DEFAULT_MODEL, "x")
    assert verdict.status == "unverified" and not verdict.is_paper and verdict.tag is None
    assert verdict.describe() == (f"weights: unverified checkpoint (SHA-256 {verdict.sha256[:12]}… is no known "
                                  f"{DEFAULT_MODEL} file)")
    assert ck.WeightsVerdict.from_dict(verdict.as_dict()) == verdict
    assert labels.demo_label(True, False, verdict) == "DEMO — random weights: not a reproduction"


def test_the_digest_is_remembered_by_path_size_and_mtime(tmp_path):
    """A file rewritten with the same size and modification time keeps its remembered digest — in this process and
    in a new one (proof it was not hashed again); a new modification time hashes it again."""
    path = tmp_path / "w.pt"
    path.write_bytes(b"a" * 1000)
    first = ck.checkpoint_sha256(path)
    stat = path.stat()
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ck.checkpoint_sha256(path) == first != ck.file_sha256(path)
    code = ("import sys; from winclip_lib.core.checkpoints import checkpoint_sha256; "
            "print(checkpoint_sha256(sys.argv[1]))")
    child = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ}, check=True)
    assert child.stdout.strip() == first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert ck.checkpoint_sha256(path) == ck.file_sha256(path)


def test_known_digests_are_full_and_the_offline_guide_lists_them():
    guide = (REPO / "data_prep" / "README.md").read_text()
    for known in ck.KNOWN_DIGESTS:
        assert re.fullmatch(r"[0-9a-f]{64}", known.sha256) and known.model_name == ck.PAPER_MODEL
        assert f"`{known.sha256}`" in guide and known.source and known.file.startswith("https://")
        release = re.search(r"-([0-9a-f]{8})\.pt$", known.file)
        if release:  # open_clip's release file name carries the digest's first 8 hex digits
            assert known.sha256.startswith(release.group(1))
    assert {(k.tag, k.file.endswith(".safetensors")) for k in ck.KNOWN_DIGESTS} == {
        ("laion400m_e31", False), ("laion400m_e31", True), ("laion400m_e32", False)}
    assert "PRETRAINED=" in guide and "python -m data_prep.verify_weights" in guide


# --------------------------------------------------------------------------------- a file that cannot run


def _truncated(path: Path, out: Path) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def test_wrong_files_are_one_line_naming_the_file(files, tmp_path):
    cases = {
        _truncated(files["pt"], tmp_path / "half.pt"): "is truncated: a torch zip archive without its end",
        _truncated(files["safetensors"], tmp_path / "half.safetensors"): "is truncated or damaged: a safetensors file",
        tmp_path / "empty.bin": "is empty (0 bytes)",
        tmp_path / "refused.pt": "torch.load(weights_only=True) refuses it",
        tmp_path / "tensor.pt": "holds no state dict of tensors",
    }
    (tmp_path / "empty.bin").write_bytes(b"")
    torch.save({"state_dict": torch.load(files["bin"]), "obj": object()}, tmp_path / "refused.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    for path, what in cases.items():
        with pytest.raises(ck.CheckpointError) as err:
            load_backbone(TINY_MODEL, str(path), precision="fp32")
        msg = str(err.value)
        assert msg.startswith(f"checkpoint {path}") and what in msg and "\n" not in msg, msg
    with pytest.raises(ck.CheckpointError, match=r"Unsupported global: GLOBAL (builtins\.)?object"):
        load_backbone(TINY_MODEL, str(tmp_path / "refused.pt"), precision="fp32")


@pytest.mark.slow  # the first case builds ViT-B-16-plus-240 to fit the tiny file into it
def test_wrong_files_through_the_cli_exit_2_before_any_data_is_read(files, data, tmp_path, capsys):
    """The tiny model's checkpoint given to the paper's architecture, a truncated file and a refused pickle: exit 2,
    one line naming the file, and no run folder (nothing was encoded)."""
    refused = tmp_path / "refused.bin"
    torch.save({"state_dict": torch.load(files["bin"]), "obj": object()}, refused)
    cases = [
        (DEFAULT_MODEL, files["bin"], f"does not fit {DEFAULT_MODEL} (a ViT of width 896 on 15 x 15 patches of 16 px)"),
        (TINY_MODEL, _truncated(files["pt"], tmp_path / "half.pt"), "is truncated"),
        (TINY_MODEL, refused, "refuses it"),
    ]
    for i, (model, path, what) in enumerate(cases):
        out = tmp_path / f"out{i}"
        status = winclip_main(["run", "--synthetic", str(data), "--model", model, "--pretrained", str(path),
                               "--precision", "fp32", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
                               "--out", str(out), "--no-progress"])
        assert status == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"winclip: error: checkpoint {path}") and what in lines[0]
        assert not out.exists() and not (tmp_path / "cache").exists()


def test_verify_weights_command(files, monkeypatch, capsys, tmp_path):
    assert verify_weights.main([str(files["pt"]), "--model", TINY_MODEL]) == verify_weights.EXIT_NOT_PAPER
    assert "weights: unverified checkpoint" in capsys.readouterr().out
    assert verify_weights.main([str(_truncated(files["pt"], tmp_path / "h.pt")), "--model", TINY_MODEL]) == \
        verify_weights.EXIT_UNUSABLE
    assert "is truncated" in capsys.readouterr().err
    digest = ck.file_sha256(files["pt"])
    monkeypatch.setattr(ck, "PAPER_MODEL", TINY_MODEL)
    monkeypatch.setattr(ck, "KNOWN_DIGESTS", (ck.KnownDigest(digest, TINY_MODEL, "laion400m_e31", "f.pt", "test"),))
    assert verify_weights.main([str(files["pt"]), "--model", TINY_MODEL]) == 0
    out = capsys.readouterr().out
    assert f"SHA-256  {digest}" in out and "weights: laion400m_e31 (SHA-256 verified)" in out


# ------------------------------------------------------------------------------ the real architecture's layout


@pytest.mark.slow
def test_real_architecture_checkpoint_loads_and_another_architecture_is_refused(vitb, tmp_path):
    """ViT-B-16-plus-240's own state dict layout (random weights, ~830 MB as safetensors) loads and encodes as the
    model it came from; plain ViT-B-16's is refused in one line that says what the file holds."""
    import open_clip

    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in vitb.model.state_dict().items()}, str(path))
    loaded = load_backbone(DEFAULT_MODEL, str(path), precision="fp32", device="cpu")
    x = torch.randn(1, 3, 240, 240, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(encode_images(loaded, x, (2,)).windows[2], encode_images(vitb, x, (2,)).windows[2],
                               rtol=0, atol=0)
    assert loaded.weights.status == "unverified" and loaded.weights.model_name == DEFAULT_MODEL
    path.unlink()
    b16 = tmp_path / "vit_b_16.pt"
    torch.save(open_clip.create_model("ViT-B-16", pretrained=None).state_dict(), b16)
    with pytest.raises(ck.CheckpointError) as err:
        load_backbone(DEFAULT_MODEL, str(b16), precision="fp32")
    msg = str(err.value)
    assert "e.g. visual.conv1.weight: (768, 3, 16, 16) in the file, (896, 3, 16, 16) in ViT-B-16-plus-240" in msg
    assert "a checkpoint of another architecture (a ViT of width 768 on 14 x 14 patches of 16 px)" in msg


def test_open_clips_e32_tag_finds_the_e31_hub_file_and_the_verdict_says_so(monkeypatch, tmp_path):
    """open_clip 3.3.0 points ``laion400m_e32``'s hub entry at the ``laion400m_e31`` repository: the file found for
    e32 in the Hugging Face cache is e31's, and the verdict names what the digest proves, and what was asked for."""
    from winclip_lib.core.backbone import find_cached_weights

    snap = tmp_path / "models--timm--vit_base_patch16_plus_clip_240.laion400m_e31" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0123abcd")
    (snap / "open_clip_model.safetensors").write_bytes(b"stand-in for the hub's e31 file")
    found = find_cached_weights(DEFAULT_MODEL, "laion400m_e32", str(tmp_path))
    assert found == snap / "open_clip_model.safetensors"
    digest = ck.file_sha256(found)
    monkeypatch.setattr(ck, "KNOWN_DIGESTS", (ck.KnownDigest(digest, DEFAULT_MODEL, "laion400m_e31", "hub", "test"),))
    verdict = ck.verify_checkpoint(found, DEFAULT_MODEL, "laion400m_e32")
    assert verdict.describe() == "weights: laion400m_e31 (SHA-256 verified; asked for laion400m_e32)"


def test_a_process_that_merely_imported_jupyter_is_not_a_notebook(monkeypatch):
    import ipykernel  # noqa: F401 — imported, as papermill's users do, but no kernel is running here

    monkeypatch.delenv(ck.ENTRY_POINT_ENV, raising=False)
    assert ck.entry_point() == "python"
    assert ck.as_entry_point("cli")(ck.entry_point)() == "cli"
    monkeypatch.setenv(ck.ENTRY_POINT_ENV, "make")  # make reproduce runs the command: make's variable is named
    assert ck.as_entry_point("cli")(ck.entry_point)() == "make"


def test_predict_records_and_shows_which_weights_ran(files, data, tmp_path):
    """``winclip predict --pretrained FILE``: run.json holds the verdict, the label carries it, and the page shows it
    in a "weights" row; its DEMO box does not claim random weights for real (if unverified) ones."""
    out = tmp_path / "pred"
    images = data / "disc" / "test"
    argv = ["predict", str(images), "--class-name", "disc", "--out", str(out), "--model", TINY_MODEL, "--pretrained",
            str(files["safetensors"]), "--precision", "fp32", "--device", "cpu", "--cache-dir",
            str(tmp_path / "cache"), "--no-progress"]
    assert winclip_main(argv) == 0
    info = json.loads((out / "run.json").read_text())
    verdict = info["weights"]["verdict"]
    assert info["weights"]["status"] == "unverified"
    assert info["weights"]["sha256"] == ck.file_sha256(files["safetensors"])
    assert info["label"] == "DEMO — tiny model, synthetic data: not a reproduction; " + verdict  # the tiny model ran
    page = html.unescape((out / "report.html").read_text())
    assert f"<tr><th>weights</th><td>{verdict}</td></tr>" in page
    assert "come from random weights" not in page and "not those of the paper's model" in page
