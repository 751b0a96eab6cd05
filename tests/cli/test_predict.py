"""``winclip predict`` on the command line: usage errors in one line, exit status 3 when files were skipped, an
output folder of other files refused, a folder that cannot be written or a full disk in one line; ``winclip`` is the
top-level command."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.experiments.filesystems import full_disk_for
from tests.inspection.conftest import photo
from winclip_lib.cli import main
from winclip_lib.core.backbone import TINY_MODEL


def test_no_matching_input_is_a_usage_error_naming_the_pattern(tmp_path, capsys):
    out = tmp_path / "out"
    pattern = str(tmp_path / "nowhere" / "*.png")
    assert main(["predict", pattern, "--class-name", "x", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and pattern in err and "Traceback" not in err
    assert not out.exists()
    (tmp_path / "img").mkdir()
    Image.fromarray(photo(0, 32, 32)).save(tmp_path / "img" / "a.png")
    assert main(["predict", str(tmp_path / "img"), "--class-name", "x", "--normal", str(tmp_path / "none"),
                 "--out", str(out)]) == 2
    assert "--normal" in capsys.readouterr().err and not out.exists()


def test_when_every_file_fails_the_errors_are_written_and_the_status_is_3(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (bad / "b.csv").write_text("x,y\n")
    out = tmp_path / "out"
    assert main(["predict", str(bad), "--class-name", "x", "--out", str(out), "--model", TINY_MODEL,
                 "--pretrained", "none", "--no-progress"]) == 3
    assert "2 file(s) skipped" in capsys.readouterr().err
    assert len(pd.read_csv(out / "errors.csv")) == 2 and pd.read_csv(out / "scores.csv").empty
    page = (out / "report.html").read_text()
    assert "No image could be scored" in page and "a.png" in page and "b.csv" in page


def test_an_output_folder_holding_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    Image.fromarray(photo(1, 64, 96)).save(tmp_path / "wide.png")
    assert main(["predict", str(tmp_path / "wide.png"), "--class-name", "x", "--out", str(out)]) == 2
    assert "holds other files" in capsys.readouterr().err and (out / "thesis.tex").read_text() == "keep me"


def test_the_console_command_is_the_top_level_cli(monkeypatch, capsys):
    """`winclip` is winclip_lib.cli:command, and ``python -m winclip_lib.cli`` runs the same command: main on
    sys.argv, once the objects of the loaded modules are out of the collector's sight (frozen)."""
    import gc

    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["winclip"] == "winclip_lib.cli:command"
    monkeypatch.setattr(sys, "argv", ["python -m winclip_lib.cli", "--help"])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_module("winclip_lib.cli", run_name="__main__")
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the test session's objects back in the collector's sight
    assert exit_info.value.code == 0 and "{run,summary,synthetic,predict}" in capsys.readouterr().out
    assert frozen > 100_000  # torch, open_clip and the package are loaded in this process


def test_an_output_folder_that_cannot_be_written_is_one_line_before_any_work(tmp_path, capsys):
    Image.fromarray(photo(1, 64, 96)).save(tmp_path / "wide.png")
    (tmp_path / "afile").write_text("x")
    argv = ["predict", str(tmp_path / "wide.png"), "--class-name", "x", "--model", TINY_MODEL, "--pretrained",
            "none", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "afile" / "out"), "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"winclip: error: --out {tmp_path / 'afile' / 'out'} is under {tmp_path / 'afile'}, "
                           "which is a file: choose a folder")
    assert main([*argv, "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "afile" / "c")]) == 2
    assert "--cache-dir" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_full_disk_is_one_line_exit_2_and_run_json_says_failed(tmp_path, capsys, monkeypatch):
    Image.fromarray(photo(1, 64, 96)).save(tmp_path / "wide.png")
    out = tmp_path / "out"
    argv = ["predict", str(tmp_path / "wide.png"), "--class-name", "x", "--model", TINY_MODEL, "--pretrained",
            "none", "--no-progress", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    full_disk_for(monkeypatch, "maps.npz")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"winclip: error: cannot write {out / 'maps.npz'}: no space left on device"
    assert "Traceback" not in err
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == f"failed: cannot write {out / 'maps.npz'}: no space left on device"
    assert not list(out.glob(".*.tmp"))
    monkeypatch.undo()
    assert main(argv) == 0 and json.loads((out / "run.json").read_text())["status"] == "complete"
