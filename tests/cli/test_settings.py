"""The flags of ``winclip run`` and ``winclip predict`` are built from RunConfig: every setting a flag with its
default, help and choices; a changed flag changes exactly its setting; ``predict`` offers the run's flags unchanged."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

import pytest

from winclip_lib.cli import build_parser, main
from winclip_lib.cli.predict import predict_config
from winclip_lib.cli.run import config_from_args
from winclip_lib.cli.settings import add_config_arguments
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.experiments.config import RunConfig, setting_fields
from winclip_lib.inspection.scoring import PREDICT_SETTINGS


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


def test_an_unknown_choice_is_refused_by_the_parser(synth, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--synthetic", str(synth), "--template-set", "foo", *_tiny_args(tmp_path)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'foo'" in capsys.readouterr().err and not (tmp_path / "cache").exists()


def test_predict_offers_the_run_settings_with_the_same_flags_and_defaults():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    run_help, predict_help = (" ".join(sub[c].format_help().split()) for c in ("run", "predict"))
    for name in PREDICT_SETTINGS:
        action = next(a for a in sub["predict"]._actions if a.dest == name)
        twin = next(a for a in sub["run"]._actions if a.dest == name)
        assert action.option_strings == twin.option_strings and action.help == twin.help
        assert action.choices == twin.choices and " ".join(action.help.split()) in run_help
    assert "--shots" not in predict_help and "--model" in predict_help and "{auto,fp32,bf16,fp16}" in predict_help
    cfg = predict_config(parser.parse_args(["predict", "x", "--class-name", "y"]))
    assert cfg.precision == "auto" and cfg.model_name == RunConfig().model_name
    with pytest.raises(ValueError, match="not command-line settings"):
        add_config_arguments(argparse.ArgumentParser(), include=("datasets",))


def _optional_numbers() -> dict[str, type]:
    """The command-line settings typed ``int | None`` or ``float | None``, by name, with their number type."""
    found = {}
    for f, tp in setting_fields(RunConfig):
        options = set(typing.get_args(tp))
        if f.metadata.get("cli", True) and type(None) in options and len(options) == 2:
            (kind,) = options - {type(None)}
            if kind in (int, float):
                found[f.name] = kind
    return found


def test_every_optional_number_flag_reads_a_number_or_none(synth):
    """A setting typed ``int | None`` (``--max-test-images``) is read as a number, ``none`` as None, anything else
    is refused by the parser — for every such setting, whichever are added later."""
    numbers = _optional_numbers()
    assert "max_test_images" in numbers
    for name, kind in numbers.items():
        flag = "--" + name.replace("_", "-")
        given = config_from_args(build_parser().parse_args(["run", "--synthetic", str(synth), flag, "7"]))
        assert getattr(given, name) == 7 and type(getattr(given, name)) is kind, name
        unset = config_from_args(build_parser().parse_args(["run", "--synthetic", str(synth), flag, "none"]))
        assert getattr(unset, name) is None, name
        with pytest.raises(SystemExit):
            build_parser().parse_args(["run", "--synthetic", str(synth), flag, "seven"])
    # the same values reach RunConfig from the notebooks' parameters (papermill -p may pass text)
    assert RunConfig(max_test_images="6").max_test_images == 6 and RunConfig(max_test_images=6.0).max_test_images == 6
    assert RunConfig(max_test_images="none").max_test_images is None
    with pytest.raises(ValueError, match="max_test_images must be a whole number or none, got 2.5"):
        RunConfig(max_test_images=2.5)
