"""The five notebooks, executed for real with papermill in a tiny configuration (the tiny model with random weights,
one small synthetic category, k in {0, 1}, one seed), and the committed notebooks' hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from PIL import Image

from winclip_lib import notebooks as nbmod
from winclip_lib.report import DEMO_BANNER
from winclip_lib.synthetic import make_synthetic

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"

EXPECTED_FIGURES = {
    "01_prompt_similarity.png",
    "02_windows.png",
    "02_scale_maps.png",
    "03_visual_maps.png",
    "03_shots_curve.png",
    "04_heatmaps_synthetic_disc.png",
    "05_ours_vs_paper_synthetic.png",
    "05_ours_vs_paper_scatter.png",
    "05_shots_curve.png",
    "05_per_category_synthetic_image_auroc_k0.png",
    "05_per_category_synthetic_image_auroc_k1.png",
    "05_per_category_synthetic_pixel_auroc_k0.png",
    "05_per_category_synthetic_pixel_auroc_k1.png",
}
EXPECTED_TABLES = {
    "01_prompt_states",
    "02_zero_shot",
    "03_few_shot",
    "comparison",
    "per_category_synthetic_image_auroc",
    "per_category_synthetic_pixel_auroc",
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict:
    """All five notebooks run once, in order, in the tiny configuration."""
    base = tmp_path_factory.mktemp("notebooks")
    data = make_synthetic(base / "data", categories=("disc",), n_train=2, n_test_good=2, n_test_bad=3, size=64)
    params = {
        "datasets": {"synthetic": str(data)},
        "shots": [0, 1],
        "seeds": [0],
        "tiny": True,
        "cache_dir": str(base / "cache"),
        "results_dir": str(base / "results"),
        "figures_dir": str(base / "figures"),
        "tables_dir": str(base / "figures" / "tables"),
        "dataset": "synthetic",
        "category": "disc",
        "n_anomalous": 2,
    }
    paths = nbmod.run_notebooks(parameters=params, out_dir=base / "executed")
    return {"base": base, "paths": paths, "params": params}


def test_all_notebooks_execute(executed):
    assert [p.stem for p in executed["paths"]] == list(nbmod.NOTEBOOKS)
    for path in executed["paths"]:
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        errors = [o for o in outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: {errors}"
        assert nb.metadata["papermill"]["exception"] is None
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1, path.name
        if path.stem < "04":  # 01-03 load the model themselves; 04-05 take it from the run
            assert "tiny = True" in injected[0].source, path.name


def test_figures_written_and_labelled(executed):
    figures = executed["base"] / "figures"
    names = {p.name for p in figures.glob("*.png")}
    assert EXPECTED_FIGURES <= names, EXPECTED_FIGURES - names
    for name in EXPECTED_FIGURES:
        with Image.open(figures / name) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200
            assert im.text.get("Description") == DEMO_BANNER, name


def test_tables_written_and_labelled(executed):
    tables = executed["base"] / "figures" / "tables"
    for name in EXPECTED_TABLES:
        md = (tables / f"{name}.md").read_text(encoding="utf-8")
        assert f"> **{DEMO_BANNER}**" in md, name
        csv = pd.read_csv(tables / f"{name}.csv")
        assert (csv["banner"] == DEMO_BANNER).all(), name
    assert DEMO_BANNER in (tables / "report.md").read_text(encoding="utf-8")
    comparison = pd.read_csv(tables / "comparison.csv")
    assert set(comparison["Setting"]) == {"0-shot", "1-shot"} and len(comparison) == 14
    run = json.loads((executed["base"] / "results" / "run.json").read_text())
    assert run["status"] == "complete" and run["is_random"] is True


def test_committed_notebooks_are_clean():
    """No outputs, no execution counts, the first code cell tagged "parameters", and in sync with the generator."""
    for name in nbmod.NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].metadata.get("tags") == ["parameters"], name
        assert all(not c.outputs and c.execution_count is None for c in code), name
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert nbmod.notebook_parameters(name), name
    result = subprocess.run([sys.executable, str(NOTEBOOK_DIR / "make_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_failing_notebook_fails_the_command(tmp_path, capsys):
    """A bad parameter makes a cell raise: the command exits 1 naming the error, and the executed notebook holds
    the traceback (run_notebooks raised papermill's PapermillExecutionError, which main reports)."""
    missing = tmp_path / "no_results_here"
    code = nbmod.main(["05_report", "--results-dir", str(missing), "--figures-dir", str(tmp_path / "figs"),
                       "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "FileNotFoundError" in err and "no finished run" in err
    nb = nbformat.read(tmp_path / "out" / "05_report.ipynb", as_version=4)
    assert nb.metadata["papermill"]["exception"] is True


def test_unknown_parameter_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown notebook parameter"):
        nbmod.run_notebooks(["05_report"], {"resuts_dir": "x"}, out_dir=tmp_path)
    assert nbmod.main(["05_report", "-p", "no_such_parameter=1", "--out", str(tmp_path)]) == 2


def test_absolute_parameters(tmp_path):
    out = nbmod.absolute_parameters({"results_dir": "a/b", "datasets": {"mvtec": "data/mvtec"}, "shots": [0]},
                                    base=tmp_path)
    assert out["results_dir"] == str(tmp_path / "a" / "b")
    assert out["datasets"] == {"mvtec": str(tmp_path / "data" / "mvtec")} and out["shots"] == [0]
