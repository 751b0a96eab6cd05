"""The notebooks' HTML report (tools/html_report.py) needs no network: its math is MathML written when the page is,
and it loads no script. (make test-browser opens the executed report in headless Chromium with the network off.)"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from tests.browser import check_html_report as check
from tools.html_report import tex_to_mathml, write_html_report

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _page(path: Path) -> tuple[str, BeautifulSoup]:
    text = path.read_text(encoding="utf-8")
    return text, BeautifulSoup(text, "html.parser")


def test_tex_to_mathml_renders_what_the_notebooks_write():
    block = html.unescape(tex_to_mathml(
        r"t_n = \frac{\sum_{s \in \mathcal{S}_n} E_\text{text}(s)}{\big\lVert x \big\rVert}", True))
    assert block.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">')
    assert "<mfrac>" in block and "<msub><mo>\u2211</mo>" in block  # a fraction; in it, a sum's limits beside it
    assert "\U0001d4ae" in block  # \mathcal{S} as the Unicode script S: browsers ignore mathvariant
    assert block.count("\u2016") == 2 and "\\" not in block  # \big\lVert ... \big\rVert: the norm bars
    assert "<mtext>text</mtext>" in block
    # at a display formula's top level, limits go below the operator as TeX sets them; inline, beside it
    assert "<munder><mo>min</mo><mrow><mi>r</mi>" in tex_to_mathml(r"d = \min_{r \in R} \frac{1}{2}", True)
    assert "<msub><mo>min</mo>" in tex_to_mathml(r"d = \min_{r \in R} \frac{1}{2}")
    inline = tex_to_mathml("R_2")
    assert inline == ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"><mrow><msub><mi>R</mi>'
                      "<mn>2</mn></msub></mrow></math>")
    # a sized delimiter with a script keeps its size (wrapped), "\big." is no delimiter, "/" is ordinary
    assert "<msup><mrow><mo minsize" in tex_to_mathml(r"\Bigg( \frac{1}{a} \Bigg)^{-1}")
    assert '<mo minsize="1.2em" maxsize="1.2em"></mo>' in tex_to_mathml(r"\big. x")
    assert '<mo lspace="0" rspace="0">&#x0002F;</mo>' in tex_to_mathml(r"3 \,/\, x")
    with pytest.raises(ValueError, match=r"\$\\nosuchcommand x\$ uses \\nosuchcommand"):
        tex_to_mathml(r"\nosuchcommand x")
    with pytest.raises(ValueError, match="uses &"):
        tex_to_mathml(r"\begin{aligned} a &= b \end{aligned}", True)
    assert tex_to_mathml(r"\begin{matrix} a & b \end{matrix}", True).count("<mtd>") == 2


def test_a_report_with_known_formulas_has_one_math_element_each_and_no_tex(tmp_path):
    one = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# One\n\nThe harmonic mean\n\n$$\nM_k[p] = \\Bigg( \\frac{1}{|W_p|} "
                                      "\\sum_{w \\in W_p} \\frac{1}{s_w} \\Bigg)^{-1} .\n$$\n\nat scale $k$."),
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/markdown": "the score $s_0$ is **high**", "text/plain": "..."})]),
    ])
    two = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# Two\n\nMemories $R_2$, $R_3$ and a price of 5 \\$ (not math).")])
    paths = []
    for name, nb in (("01_one", one), ("02_two", two)):
        paths.append(tmp_path / f"{name}.ipynb")
        nbformat.write(nb, paths[-1])
    text, soup = _page(write_html_report(paths, tmp_path / "index.html"))
    maths = soup.find_all("math")
    assert len(maths) == 5 and [m["display"] for m in maths] == ["block", "inline", "inline", "inline", "inline"]
    assert check.count_formulas(paths) == {"display": 1, "inline": 4}
    assert len(soup.find_all("mfrac")) == 2 and soup.find("strong").text == "high"  # the output's markdown too
    visible = soup.body.get_text(" ")
    assert "5 $ (not math)" in visible and not check.RAW_TEX.search(visible), visible
    assert soup.find_all("script", src=True) == [] and "mathjax" not in text.lower() and "cdnjs" not in text


def test_every_formula_of_the_notebooks_renders(tmp_path):
    """The committed notebooks (prose only, no outputs): one <math> per formula, no TeX left in the page's text."""
    _, soup = _page(write_html_report(NOTEBOOKS, tmp_path / "index.html"))
    expected = check.count_formulas(NOTEBOOKS)
    assert expected["display"] >= 5 and expected["inline"] >= 40
    assert len(soup.find_all("math", display="block")) == expected["display"]
    assert len(soup.find_all("math")) == expected["display"] + expected["inline"]
    assert not check.RAW_TEX.search(soup.body.get_text(" "))
    assert not re.search(r"\\[A-Za-z]+", "".join(m.get_text() for m in soup.find_all("math")))
