"""The notebooks' set-up: the configuration from the parameters, the backbone, the label and the folders; with a
results folder, the run (computed once, then read)."""

from __future__ import annotations

from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.experiments.labels import demo_label
from winclip_lib.report.notebook import setup_notebook

#: What the notebooks stamp on the tiny model's work.
TINY_DEMO = demo_label(True, True, tiny_model=True)


def test_setup_from_the_parameters_then_the_run(synth, tmp_path, capsys):
    params = {"datasets": {"synthetic": str(synth)}, "categories": {"synthetic": ["disc"]}, "shots": [0],
              "seeds": None, "model_name": TINY_MODEL, "pretrained": "none", "precision": "fp32", "device": "cpu",
              "cache_dir": str(tmp_path / "cache")}
    setup = setup_notebook({"temperature": 0.05}, figures_dir=tmp_path / "figs", **params)
    printed = capsys.readouterr().out
    assert setup.config.temperature == 0.05 and setup.config.shots == (0,) and setup.result is None
    assert TINY_DEMO == "DEMO — tiny model, random weights, synthetic data: not a reproduction"
    assert setup.banner == TINY_DEMO and TINY_DEMO in printed and setup.backbone.model_name == TINY_MODEL
    assert setup.figures == tmp_path / "figs" and setup.tables == tmp_path / "figs" / "tables"
    changed = setup.settings()
    assert {"temperature", "shots", "model_name", "precision"} <= set(changed["setting"])
    assert "seeds" not in set(changed["setting"])  # None: the default

    first = setup_notebook(figures_dir=tmp_path, tables_dir=tmp_path / "t", results_dir=tmp_path / "runs", **params)
    again = setup_notebook(figures_dir=tmp_path, results_dir=tmp_path / "runs", **params)
    assert first.result is not None and again.result.out_dir == first.result.out_dir  # read, not recomputed
    assert again.banner == TINY_DEMO == again.run_banner(first.result)
    assert again.config == first.result.config and first.tables == tmp_path / "t"
    assert f"run: {first.result.out_dir}" in capsys.readouterr().out
