"""Presets: each bundle differs from the defaults exactly where it documents a source line, and runs end to end."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from winclip_lib.cli import main
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.core.prompts import TEMPLATE_SETS
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.presets import PRESETS, preset_settings
from winclip_lib.experiments.units import plan_units


def _changed(cfg: RunConfig) -> set[str]:
    default = RunConfig()
    return {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(default, f.name)} - {"preset"}


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_differs_from_the_defaults_exactly_where_documented(name):
    preset = PRESETS[name]
    cfg = RunConfig.from_settings(preset=name)
    assert _changed(cfg) == set(preset.settings), name
    assert set(preset.sources) == set(preset.settings)  # every change has its source line
    for setting, source in preset.sources.items():
        if name == "course-2024" and setting == "defect_states":  # from the report's text: no code to cite
            assert "report" in source and "test set" in source
            continue
        assert ":" in source and any(ch.isdigit() for ch in source.split("—")[0]), (setting, source)
    assert cfg.preset == name and preset.title


def test_the_documented_bundles():
    assert PRESETS["paper"].settings == {}
    assert preset_settings("anomalib") == {"template_set": "anomalib", "class_names": "folder",
                                           "mask_resize": "nearest"}
    acc = preset_settings("accurate-winclip")
    assert acc["patch_tokens"] == "raw" and acc["fusion"] == "sum" and acc["reference_sampling"] == "with_replacement"
    assert acc["seeds"] == (10,) and acc["aupro"] == "thresholds200" and "resize_mode" not in acc  # its crop: no-op
    cao = preset_settings("caoyunkang")
    assert cao["temperature"] == 0.01 and cao["pretrained"] == "laion400m_e32" and cao["precision"] == "fp16"
    assert cao["zero_shot_map"] == "normal_complement" and cao["memories"] == ("windows",)
    assert cao["image_score"] == cao["fewshot_image_score"] == "map_max" and cao["eval_resolution"] == "400"
    assert len(TEMPLATE_SETS[cao["template_set"]]) == 22
    course = preset_settings("course-2024")
    assert course == {**acc, "defect_states": True} and "TEST SET" in PRESETS["course-2024"].title
    with pytest.raises(ValueError, match="unknown preset 'anomalib2'; choose one of paper, anomalib"):
        preset_settings("anomalib2")


def test_explicit_settings_win_over_the_preset():
    cfg = RunConfig.from_settings({"temperature": 0.05}, preset="caoyunkang", precision="fp32", seeds=None)
    assert cfg.temperature == 0.05 and cfg.precision == "fp32" and cfg.seeds == (111, 333, 999)
    assert cfg.fusion == "harmonic"


@pytest.mark.parametrize("name", ["caoyunkang", "course-2024"])
def test_a_preset_runs_from_the_command_line(synth, tmp_path, name):
    """The preset's settings reach the run: its run.json records them; caoyunkang's evaluation at 400 px; the
    course report's defect words reach the prompts."""
    argv = ["run", "--synthetic", str(synth), "--categories", "disc", "--preset", name, "--model", TINY_MODEL,
            "--pretrained", "none", "--precision", "fp32", "--device", "cpu", "--shots", "0", "1", "--cache-dir",
            str(tmp_path / "c"), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 0
    config = json.loads((tmp_path / "o" / "run.json").read_text())["config"]
    expected = {**preset_settings(name), "pretrained": None, "precision": "fp32"}
    for key, value in expected.items():
        assert config[key] == (list(value) if isinstance(value, tuple) else value), key
    assert config["preset"] == name
    metrics = pd.read_csv(tmp_path / "o" / "metrics.csv")
    assert metrics["value"].notna().all() and set(metrics["seed"]) == {0} | set(config["seeds"])
    if name == "course-2024":
        unit = plan_units(RunConfig.from_dict(config))[0]
        assert set(unit.defect_states()) == {"{} with scratch", "{} with spot", "{} with missing"}


def test_evaluation_at_400_compares_maps_and_masks_at_400(synth, tiny, tmp_path):
    from winclip_lib.experiments.grid import run_grid
    from winclip_lib.experiments.unit_eval import eval_geometry, eval_masks, model_for

    cfg = RunConfig(datasets={"synthetic": str(synth)}, categories={"synthetic": ["disc"]}, shots=(0,),
                    model_name=TINY_MODEL, pretrained=None, precision="fp32", device="cpu", eval_resolution="400",
                    mask_resize="nearest",
                    cache_dir=str(tmp_path / "c"), out_dir=str(tmp_path / "o"))
    unit = plan_units(cfg)[0]
    masks, _ = eval_masks(unit, eval_geometry(cfg, 240), "400", "nearest")
    assert all(m.shape == (400, 400) for m in masks) and any(m.any() for m in masks)
    assert model_for(unit, cfg, tiny).output_size == 400
    result = run_grid(cfg, progress=False, backbone=tiny)
    assert np.isfinite(result.metrics["value"]).all()
