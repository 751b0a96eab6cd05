"""Notebook 07 (your own images), executed for real with papermill on the tiny model, and its committed files."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tools.notebooks import NOTEBOOK_DIR, notebook_parameters, run_notebooks
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.datasets.synthetic import make_loose_images
from winclip_lib.experiments.labels import demo_label

NAME = "07_your_images"
FIGURES = ("07_highest_scores.png", "07_lowest_scores.png", "07_score_histogram.png", "07_what_winclip_saw.png")


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("nb07")
    loose = make_loose_images(base / "photos")
    params = {"images": [str(loose.folder)], "normal": [str(loose.folder / "normal")], "class_name": "metal disc",
              "out_dir": str(base / "out"), "figures_dir": str(base / "figures"), "model_name": TINY_MODEL,
              "pretrained": "none", "precision": "fp32", "device": "cpu", "cache_dir": str(base / "cache")}
    [path] = run_notebooks([NAME], params, out_dir=base / "executed")
    return {"base": base, "loose": loose, "nb": nbformat.read(path, as_version=4)}


def _text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def test_notebook_07_runs_and_shows_the_ranking(executed):
    nb = executed["nb"]
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors and nb.metadata["papermill"]["exception"] is None
    text = _text(nb)
    assert "WinCLIP+ (few-shot, k = 3)" in text and "max + std of the 3 references" in text
    scores = pd.read_csv(executed["base"] / "out" / "scores.csv")
    assert {Path(p) for p in scores["path"]} == set(executed["loose"].images)
    assert np.isfinite(scores["score"]).all() and scores["score"].is_monotonic_decreasing
    for name in scores["name"][:3]:
        assert name in text  # the ranked table is displayed
    assert "broken.png" in text and "notes.txt" in text  # the skipped files table


def test_notebook_07_figures_are_written_and_labelled(executed):
    label = demo_label(True, True)
    for name in FIGURES:
        with Image.open(executed["base"] / "figures" / name) as im:
            assert im.width > 500 and im.height > 250
            assert im.text.get("Description") == label, name
    images = [o for c in executed["nb"].cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == len(FIGURES)


def test_committed_notebook_07_is_clean_and_paired():
    ipynb = nbformat.read(NOTEBOOK_DIR / f"{NAME}.ipynb", as_version=4)
    nbformat.validate(ipynb)
    code = [c for c in ipynb.cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    paired = jupytext.read(NOTEBOOK_DIR / f"{NAME}.py")
    assert [c.source for c in paired.cells] == [c.source for c in ipynb.cells]
    assert set(notebook_parameters(NAME)) == {"images", "normal", "class_name", "threshold", "out_dir",
                                               "figures_dir", "model_name", "pretrained", "precision", "device",
                                               "cache_dir"}
