"""The numbered notebooks, executed for real with papermill in a tiny configuration (the tiny model with random
weights, one small synthetic category, k in {0, 1}, one seed), the HTML report made from them, and the committed
notebooks' hygiene: no outputs, a parameters cell first, the .py / .ipynb pair in sync, settings taken from
RunConfig."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tools import notebooks as nbmod
from tools.html_report import write_html_report
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.datasets.standins import make_standins
from winclip_lib.datasets.synthetic import make_loose_images, make_synthetic
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.files import WriteError
from winclip_lib.experiments.labels import DEMO_BANNER, demo_label

NOTEBOOK_DIR = nbmod.NOTEBOOK_DIR
#: The label of what the notebooks draw here: they name the tiny model they run.
TINY_DEMO = demo_label(True, True, tiny_model=True)
NAMES = ["01_cpe", "02_zero_shot_winclip", "03_winclip_plus", "04_heatmaps", "05_report", "06_ablations",
         "07_your_images", "08_benchmarks"]

EXPECTED_FIGURES = {
    "01_prompt_similarity.png", "02_windows.png", "02_window_pass.png", "02_scale_maps.png", "03_references.png",
    "03_visual_maps.png", "03_shots_curve.png", "04_heatmaps_synthetic_disc.png", "05_ours_vs_paper_synthetic.png",
    "05_ours_vs_paper_scatter.png", "05_shots_curve.png", "05_per_category_synthetic_image_auroc_k0.png",
    "05_per_category_synthetic_pixel_auroc_k1.png", "06_ablation_cpe_synthetic.png",
    "06_ablation_dense_synthetic.png", "06_ablation_fewshot_synthetic.png", "07_highest_scores.png",
    "07_lowest_scores.png", "07_score_histogram.png", "07_what_winclip_saw.png", "08_benchmarks.png",
}  # fmt: skip
EXPECTED_TABLES = {"01_prompt_states", "02_zero_shot", "03_few_shot", "comparison", "05_presets",
                   "per_category_synthetic_image_auroc", "06_ablation_cpe", "06_ablation_dense", "06_ablation_fewshot",
                   "08_benchmarks"}


#: The notebooks run as two streams at once, each in order and in its own process (one per core): 03-05 and 08 read
#: the grid that 02 computes (08 computes the stand-ins' grid too); 01, 06 and 07 need nothing from it and use a
#: feature cache of their own.
STREAMS = (["02_zero_shot_winclip", "03_winclip_plus", "04_heatmaps", "05_report", "08_benchmarks"],
           ["01_cpe", "06_ablations", "07_your_images"])


def _run_stream(names: list[str], params: dict, out: Path) -> subprocess.Popen:
    declared = set().union(*(nbmod.notebook_parameters(n) for n in names))
    argv = [sys.executable, "-m", "tools.notebooks", *names, "--out", str(out)]
    for key, value in params.items():
        if key not in declared:
            continue
        argv += ["-p", f"{key}={json.dumps(value)}"]
    return subprocess.Popen(argv, cwd=Path(nbmod.__file__).parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict:
    """All notebooks run once in the tiny configuration (in two streams, see :data:`STREAMS`)."""
    base = tmp_path_factory.mktemp("notebooks")
    data = make_synthetic(base / "data", categories=("disc",), n_train=2, n_test_good=2, n_test_bad=2, size=48)
    more = make_standins(base / "more", ("btad", "folder"), n_train=2, n_good=2, n_bad=2, size=32)
    loose = make_loose_images(base / "photos")
    params = {
        "datasets": {"synthetic": str(data)}, "more_datasets": {d: str(r) for d, r in more.items()},
        "shots": [0, 1], "seeds": [0], "model_name": TINY_MODEL,
        "pretrained": "none", "precision": "fp32", "device": "cpu", "cache_dir": str(base / "cache"),
        "results_dir": str(base / "results"), "figures_dir": str(base / "figures"),
        "tables_dir": str(base / "figures" / "tables"), "dataset": "synthetic", "category": "disc",
        "n_anomalous": 2, "presets": ["paper", "caoyunkang"], "preset_shots": [0, 1],
        "ablations": ["cpe", "dense", "fewshot"], "ablation_shots": {"fewshot": [1]}, "max_test_images": 4,
        "images": [str(loose.folder)], "normal": [str(loose.folder / "normal")], "class_name": "metal disc",
        "out_dir": str(base / "predictions"),
    }
    procs = [_run_stream(STREAMS[0], params, base / "executed"),
             _run_stream(STREAMS[1], {**params, "cache_dir": str(base / "cache-b")}, base / "executed")]
    logs = []
    for proc in procs:
        output, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, output
        logs.append(output)
    paths = [base / "executed" / f"{name}.ipynb" for name in NAMES]
    return {"base": base, "paths": paths, "params": params, "loose": loose, "log": "\n".join(logs)}


def _outputs(path: Path) -> tuple[nbformat.NotebookNode, str]:
    nb = nbformat.read(path, as_version=4)
    text = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            text.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                        + str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get("text/html", "")))
    return nb, "\n".join(text)


def test_all_notebooks_execute(executed):
    assert sorted(STREAMS[0] + STREAMS[1]) == NAMES == nbmod.notebook_names()
    for path in executed["paths"]:
        nb, _ = _outputs(path)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{path.name}: {errors}"
        assert nb.metadata["papermill"]["exception"] is None
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and TINY_MODEL in injected[0].source, path.name
        widgets = [o for c in nb.cells for o in c.get("outputs", []) if "application/vnd.jupyter.widget-view+json"
                   in o.get("data", {})]
        assert not widgets, f"{path.name} holds progress widgets"


def test_the_command_prints_progress_not_kernel_start_up_warnings(executed):
    log = executed["log"]
    assert all(f"running {name} ..." in log for name in NAMES), log
    assert "IPKernelApp" not in log and "WARNING" not in log, log


def test_figures_written_and_labelled(executed):
    figures = executed["base"] / "figures"
    names = {p.name for p in figures.glob("*.png")}
    assert EXPECTED_FIGURES <= names, EXPECTED_FIGURES - names
    for name in EXPECTED_FIGURES:
        with Image.open(figures / name) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200
            assert im.text.get("Description") == TINY_DEMO, name


def test_tables_written_and_labelled(executed):
    tables = executed["base"] / "figures" / "tables"
    for name in EXPECTED_TABLES:
        md = (tables / f"{name}.md").read_text(encoding="utf-8")
        assert f"> **{TINY_DEMO}**" in md, name
        assert (pd.read_csv(tables / f"{name}.csv")["banner"] == TINY_DEMO).all(), name
    comparison = pd.read_csv(tables / "comparison.csv")
    assert set(comparison["Setting"]) == {"0-shot", "1-shot"} and len(comparison) == 14
    cpe = pd.read_csv(tables / "06_ablation_cpe.csv")
    assert list(cpe["Paper"]) == [34.2, 74.0, 89.8, 90.8, 91.8, 91.8, 91.8, 91.8]
    presets = pd.read_csv(tables / "05_presets.csv")
    assert set(presets["Preset"]) == {"paper", "caoyunkang"} and set(presets["Setting"]) == {"0-shot", "1-shot"}


def test_the_grid_ran_once_into_its_own_folder_and_the_rest_read_it(executed):
    results = executed["base"] / "results"
    runs = {tuple(json.loads((r / "run.json").read_text())["config"]["datasets"]): r
            for r in sorted(results.glob("run-*"))}
    assert sorted(runs) == [("btad", "folder"), ("synthetic",)]  # 02 computed one; 03-05 and 08 found it; 08 the other
    info = json.loads((runs[("synthetic",)] / "run.json").read_text())
    assert info["status"] == "complete" and info["is_random"] and info["encode_counts"]["max_encodes_per_image"] == 1
    _, text06 = _outputs(executed["paths"][5])
    assert "encoded by the variants afterwards: 0" in text06  # every ablation variant scored from the cache


def test_notebook_07_ranks_the_images_and_lists_the_skipped(executed):
    _, text = _outputs(executed["paths"][6])
    assert "WinCLIP+ (few-shot, k = 3)" in text and "max + std of the 3 references" in text
    scores = pd.read_csv(executed["base"] / "predictions" / "scores.csv")
    assert {Path(p) for p in scores["path"]} == set(executed["loose"].images)
    assert np.isfinite(scores["score"]).all() and scores["score"].is_monotonic_decreasing
    assert all(name in text for name in scores["name"][:3])
    assert "broken.png" in text and "notes.txt" in text
    assert (executed["base"] / "predictions" / "report.html").is_file()


def test_the_html_report_holds_every_notebook_and_its_figures(executed, tmp_path):
    out = write_html_report(executed["paths"], tmp_path / "report" / "index.html", banner=DEMO_BANNER)
    page = out.read_text(encoding="utf-8")
    assert DEMO_BANNER in page and page.count('href="#nb-') == len(NAMES)
    for name in NAMES:
        assert f'id="nb-{name}"' in page
    assert page.count("data:image/png;base64,") >= 15  # the figures, embedded
    assert "from winclip_lib" not in page  # the code cells are left out


def test_committed_notebooks_are_clean_and_paired():
    """No outputs, no execution counts, the first code cell tagged "parameters", and each .ipynb holds exactly the
    cells of its jupytext .py source."""
    assert nbmod.notebook_names() == NAMES
    for name in NAMES:
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].metadata.get("tags") == ["parameters"], name
        assert all(not c.outputs and c.execution_count is None for c in code), name
        assert nb.metadata["kernelspec"]["name"] == "python3"
        paired = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
        assert [(c.cell_type, c.source, c.metadata.get("tags")) for c in paired.cells] == [
            (c.cell_type, c.source, c.metadata.get("tags")) for c in nb.cells], f"{name}: run `make notebooks`"


def test_settings_in_the_notebooks_take_their_defaults_from_runconfig():
    """A notebook parameter named after a RunConfig setting defaults to None (the dataclass's default applies), except
    the folders, which are written relative to notebooks/."""
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for name in NAMES:
        for key, default in nbmod.notebook_parameters(name).items():
            if key in fields and key not in ("datasets", "categories", "cache_dir", "out_dir"):
                assert default == "None", f"{name}: {key} = {default}"


def test_failing_notebook_fails_the_command(tmp_path, capsys):
    """A cell that raises (here: a parameter the code rejects): the command exits 1 naming the error, and the
    executed notebook holds the traceback."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("model_name = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("if model_name != 'ViT-B-16-plus-240':\n"
                                                  "    raise ValueError(f'unknown open_clip model {model_name!r}')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "01_check.ipynb")
    code = nbmod.main(["01_check", "-p", "model_name=ViT-Nope", "--notebook-dir", str(tmp_path / "nbs"), "--out",
                       str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "ValueError" in err and "ViT-Nope" in err
    executed = nbformat.read(tmp_path / "out" / "01_check.ipynb", as_version=4)
    assert executed.metadata["papermill"]["exception"] is True


def test_unknown_parameter_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown notebook parameter"):
        nbmod.run_notebooks(["05_report"], {"resuts_dir": "x"}, out_dir=tmp_path)
    assert nbmod.main(["05_report", "-p", "no_such_parameter=1", "--out", str(tmp_path)]) == 2


def test_absolute_parameters(tmp_path):
    out = nbmod.absolute_parameters({"results_dir": "a/b", "datasets": {"mvtec": "data/mvtec"}, "shots": [0],
                                     "images": ["x/*.png", "y"]}, base=tmp_path)
    assert out["results_dir"] == str(tmp_path / "a" / "b") and out["images"] == [str(tmp_path / "x" / "*.png"),
                                                                                 str(tmp_path / "y")]
    assert out["datasets"] == {"mvtec": str(tmp_path / "data" / "mvtec")} and out["shots"] == [0]


def test_output_folders_that_cannot_be_written_are_one_line_before_any_notebook_runs(tmp_path, capsys):
    """A results, figures or cache folder under a file — given, or a notebook's own default — fails before the first
    cell, in one line naming the parameter; nothing is executed."""
    (tmp_path / "afile").write_text("x")
    for key in ("--results-dir", "--figures-dir"):
        code = nbmod.main(["02_zero_shot_winclip", key, str(tmp_path / "afile" / "r"), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err == (f"error: {key[2:].replace('-', '_')} {tmp_path / 'afile' / 'r'} is under "
                                     f"{tmp_path / 'afile'}, which is a file: choose a folder")
    with pytest.raises(WriteError, match=r"^cache_dir .* is under .*afile, which is a file"):
        nbmod.run_notebooks(["02_zero_shot_winclip"], {"cache_dir": str(tmp_path / "afile" / "c")},
                            out_dir=tmp_path / "o")
    with pytest.raises(WriteError, match=r"^the executed notebooks' folder .* is a file"):
        nbmod.run_notebooks(["02_zero_shot_winclip"], {}, out_dir=tmp_path / "afile")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    # the declared defaults count too: a notebook folder whose default results folder lies under a file
    folders = nbmod.output_folders({"figures_dir": "/x/f", "cache_dir": None},
                                   {"02_x": {"results_dir": '"../build/results"', "figures_dir": '"../figures"',
                                             "cache_dir": '"../c"'}}, tmp_path / "nbs")
    assert folders == {"results_dir (02_x)": str(tmp_path / "build" / "results"), "figures_dir": "/x/f"}


def test_notebook_08_puts_every_dataset_beside_the_published_numbers(executed):
    table = pd.read_csv(executed["base"] / "figures" / "tables" / "08_benchmarks.csv")
    rows = set(zip(table["Dataset"], table["Setting"], table["Source"], strict=True))
    assert {("BTAD", "0-shot", "ours"), ("BTAD", "0-shot", "AnomalyCLIP (ICLR 2024) Table 1, zero-shot"),
            ("Your folder", "1-shot", "ours"), ("Synthetic (vs MVTec-AD numbers)", "1-shot",
                                                "WinCLIP paper (CVPR 2023)")} <= rows
    btad = table[(table["Dataset"] == "BTAD") & (table["Source"] != "ours")].set_index("Setting")
    assert btad.loc["0-shot", "Image AUROC"] == "68.2*" and list(btad.index) == ["0-shot"]
    folder = table[table["Dataset"] == "Your folder"]
    assert (folder["Pixel AUROC"] == "—").all() and (folder["Image AUROC"] != "—").all()


def test_dataset_roots_reach_the_notebooks_as_two_groups(tmp_path):
    parse = nbmod.build_parser().parse_args
    params = nbmod.parameters_from_args(parse(["--mvtec", "m", "--btad", "b", "--folder", "f"]))
    assert params["datasets"] == {"mvtec": "m"} and params["more_datasets"] == {"btad": "b", "folder": "f"}
    params = nbmod.parameters_from_args(parse(["--realiad", "r"]))
    assert params["datasets"] == {} and params["more_datasets"] == {"realiad": "r"}  # no default roots are used
    assert "datasets" not in nbmod.parameters_from_args(parse(["--results-dir", "x"]))
    out = nbmod.absolute_parameters({"more_datasets": {"btad": "data/btad"}}, base=tmp_path)
    assert out["more_datasets"] == {"btad": str(tmp_path / "data" / "btad")}
    # an empty group is left out for a notebook that does not take it; a root given to it is an error
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("datasets = {}")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("assert list(datasets) == ['mvtec'], datasets")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "01_paper.ipynb")
    done = nbmod.run_notebooks(["01_paper"], {"more_datasets": {}, "datasets": {"mvtec": "m"}},
                               out_dir=tmp_path / "out", notebook_dir=tmp_path / "nbs")
    assert not nbformat.read(done[0], as_version=4).metadata["papermill"]["exception"]  # the cell asserted it
    with pytest.raises(ValueError, match="unknown notebook parameter.*more_datasets"):
        nbmod.run_notebooks(["01_paper"], {"more_datasets": {"btad": "b"}}, out_dir=tmp_path / "out",
                            notebook_dir=tmp_path / "nbs")
