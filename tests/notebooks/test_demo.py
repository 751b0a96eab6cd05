"""``make demo``'s plan: which notebook runs which model, in which stream (executing them is tested in
test_notebooks.py, the whole demo by the browser check of the report)."""

from __future__ import annotations

from pathlib import Path

from tools import demo
from tools.notebooks import notebook_names, notebook_parameters
from winclip_lib.core.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, TINY_MODEL


def _models(plan) -> dict[str, tuple]:
    return {name: (p.get("model_name"), p.get("pretrained"), p.get("preset_model_name"))
            for steps in plan for name, p in steps}


def test_random_weights_run_the_ablations_presets_photos_and_benchmarks_on_the_tiny_model(tmp_path: Path):
    params = demo.demo_parameters(tmp_path, DEFAULT_MODEL, "none", "auto")
    plan = demo.demo_plan(params)
    names = [name for steps in plan for name, _ in steps]
    assert sorted(names) == notebook_names() and len(names) == len(set(names))  # every notebook, once
    assert [[n for n, _ in steps] for steps in plan] == [list(s) for s in demo.DEMO_STREAMS]
    models = _models(plan)
    for name in ("06_ablations", "07_your_images", "08_benchmarks"):
        assert models[name] == (TINY_MODEL, "none", None), name
    assert models["05_report"] == (DEFAULT_MODEL, "none", TINY_MODEL)  # the report on the paper's architecture
    for name in ("01_cpe", "02_zero_shot_winclip", "03_winclip_plus", "04_heatmaps"):
        assert models[name] == (DEFAULT_MODEL, "none", None), name
    for steps in plan:  # each notebook gets only the parameters it declares
        for name, p in steps:
            assert set(p) <= set(notebook_parameters(name)), name
    ablations = dict(plan[1])["06_ablations"]
    assert ablations["ablation_shots"] == {"fewshot": [1, 4]} and ablations["timing_images"] == 1


def test_real_weights_run_every_notebook_on_the_papers_model(tmp_path: Path):
    plan = demo.demo_plan(demo.demo_parameters(tmp_path, DEFAULT_MODEL, DEFAULT_PRETRAINED, "auto"))
    assert set(_models(plan).values()) == {(DEFAULT_MODEL, DEFAULT_PRETRAINED, None)}


def test_the_tiny_demo_runs_the_tiny_model_everywhere(tmp_path: Path):
    plan = demo.demo_plan(demo.demo_parameters(tmp_path, TINY_MODEL, "none", "auto"), tiny=True)
    assert set(_models(plan).values()) == {(TINY_MODEL, "none", None)}
