"""The page: every image ranked with its overlay, the threshold and the skipped files; rendered from the template
shipped with the package."""

from __future__ import annotations

import fnmatch
from importlib import resources
from pathlib import Path

import tomllib

from tests.inspection.conftest import LABEL
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.experiments.config import RunConfig
from winclip_lib.inspection.inputs import Inputs, Skipped
from winclip_lib.inspection.page import TEMPLATE, inspection_html
from winclip_lib.inspection.scoring import predict_images


def test_the_page_lists_every_image_the_threshold_and_the_skipped_files(photos, few_shot):
    page = (few_shot["out"] / "report.html").read_text()
    scores = few_shot["scores"]
    assert page.count('<div class="card"') == 4 and page.count('src="data:image/png;base64,') == 5
    positions = [page.index(f'id="{n}"') for n in scores["name"]]
    assert positions == sorted(positions)  # highest score first
    assert LABEL in page and "leave-one-out" in page and "population standard deviation" in page
    for name in ("corrupt.png", "notes.txt", "thumb.png"):
        assert name in page
    threshold = few_shot["first"]["threshold"]["value"]
    assert f"threshold {threshold:.4f}" in page


def test_the_template_is_package_data_and_the_page_escapes_what_users_write():
    """The page comes from the template shipped with the package (pyproject's package-data names it); a class name
    or a file name holding HTML is shown as text, never as markup."""
    template = resources.files("winclip_lib.inspection").joinpath("templates", TEMPLATE)
    assert template.is_file() and "{% for card in cards %}" in template.read_text(encoding="utf-8")
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["winclip_lib"]
    assert any(fnmatch.fnmatch(f"inspection/templates/{TEMPLATE}", pattern) for pattern in shipped)
    skipped = Skipped("/photos/<img src=x>.png", "image", "not an image", "'<img src=x>.png' is not an image file")
    cfg = RunConfig.from_settings(model_name=TINY_MODEL, pretrained="none")
    run = predict_images(cfg, "<script>alert(1)</script>", Inputs([], [], [skipped]), 0.5, progress=False)
    page = inspection_html(run, {})
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x>" not in page and "&lt;img src=x&gt;.png" in page
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "No image could be scored" in page and "threshold 0.5000 (given)" in page
