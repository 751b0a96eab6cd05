"""One self-contained HTML report from the executed notebooks (a repository tool: it reads the executed copies).

``write_html_report(notebooks, out)`` joins the executed notebooks, in order, into one page: a table of contents
linking to each notebook, then each notebook's prose, tables, printed results and figures (embedded as base64 PNG,
so the single file can be mailed or archived), with the code cells left out — the notebooks themselves keep the
code. ``make demo`` writes ``build/report/index.html``; ``make reproduce`` writes ``report/index.html``.

The page needs no network: the markdown's mathematics (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]`` and
``\\begin{...}`` environments, as nbconvert finds them) is turned into MathML when the page is written
(:func:`tex_to_mathml`, with latex2mathml), which browsers typeset themselves, and the page loads no script from a
CDN (nbconvert's lab template would load MathJax, require.js, mermaid and the widget manager).

    python -m tools.html_report build/notebooks/*.ipynb --out build/report/index.html
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import jinja2
import nbformat
from latex2mathml.converter import convert
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

__all__ = ["ReportExporter", "combine_notebooks", "main", "notebook_title", "tex_to_mathml", "write_html_report"]

# latex2mathml leaves a delimiter that is a command after \big, \Bigg, ... as its TeX name (<mo ...>\lVert</mo>);
# "\big." (no delimiter) as a dot.
_SIZED_DELIMITER = re.compile(r'(<mo minsize="[^"]*" maxsize="[^"]*">)(\\[A-Za-z]+|\\[|{}]|\.)(</mo>)')
# ... and a sized delimiter with a script (\Bigg)^{-1}) as the script's bare base, which Chromium does not enlarge:
# wrapped in an <mrow>, it is.
_SCRIPTED_DELIMITER = re.compile(r'(<msu(?:b|p|bsup)>)(<mo minsize="[^"]*" maxsize="[^"]*">[^<]*</mo>)')
_SYMBOL = re.compile(r"<m[io][^>]*>([^<]+)</m[io]>")
# Operators whose limits TeX sets below (and above) them in a display formula: latex2mathml writes \min_{r \in R} as
# a subscript beside "min"; at the top level of a display formula it becomes an <munder> (inside a fraction or a
# script TeX keeps them beside, and so do we).
_MATHML_NS = "http://www.w3.org/1998/Math/MathML"
_LIMITS_BELOW = {"min", "max", "sup", "inf", "lim", "\u2211", "\u220f", "\u22c3", "\u22c2"}
_TO_UNDER = {f"{{{_MATHML_NS}}}{a}": f"{{{_MATHML_NS}}}{b}" for a, b in (("msub", "munder"), ("msubsup", "munderover"))}
# a TeX command left in the MathML's text: one that latex2mathml does not know
_LEFT_OVER = re.compile(r">[^<]*?(\\(?:[A-Za-z]+|[^A-Za-z\s]))")
#: The page's template: nbconvert's lab template without its CDN scripts, and a math font stack.
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block extra_css -%}
<style>math { font-family: "STIX Two Math", "Latin Modern Math", "Cambria Math", "DejaVu Math TeX Gyre", math; }
math[display="block"] { margin: 0.6em 0; font-size: 1.1em; }</style>
{%- endblock extra_css -%}
"""


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """One ``<math>`` element (MathML, rendered by the browser without script or network) for a LaTeX formula.

    Args:
        tex: the formula without its delimiters, e.g. ``r"\\frac{1}{|W_p|} \\sum_{w \\in W_p} s_w"``.
        display: a display formula (``$$...$$``: ``display="block"``), else inline.

    Raises:
        ValueError: the formula uses a command latex2mathml does not render (named, with the formula).
    """
    mathml = convert(tex.strip(), display="block" if display else "inline")

    def symbol(m: re.Match) -> str:
        if m.group(2) == ".":
            return m.group(1) + m.group(3)
        found = _SYMBOL.search(convert(m.group(2)))
        return m.group(1) + (found.group(1) if found else m.group(2)) + m.group(3)

    mathml = _SIZED_DELIMITER.sub(symbol, mathml)
    mathml = _SCRIPTED_DELIMITER.sub(r"\1<mrow>\2</mrow>", mathml)
    mathml = mathml.replace("<mo>&#x0002F;</mo>", '<mo lspace="0" rspace="0">&#x0002F;</mo>')  # TeX's "/" is ordinary
    mathml = mathml.replace("<mi>:</mi>", "<mo>:</mo>")  # and its ":" a relation
    unknown = sorted(set(_LEFT_OVER.findall(mathml)) | ({"&"} if "<mi>&</mi>" in mathml else set()))
    if unknown:  # e.g. \foo, or the & of an environment latex2mathml does not align (aligned)
        raise ValueError(f"the formula ${tex.strip()}$ uses {', '.join(unknown)}, which latex2mathml does not "
                         "render: write it with other commands")
    return _limits_below(mathml) if display else mathml


def _limits_below(mathml: str) -> str:
    """The display formula with :data:`_LIMITS_BELOW` operators at its top level given their limits below."""
    root = ET.fromstring(mathml)
    top = root[0] if len(root) == 1 and root[0].tag == f"{{{_MATHML_NS}}}mrow" else root
    changed = False
    for el in top:
        if el.tag in _TO_UNDER and len(el) and el[0].tag == f"{{{_MATHML_NS}}}mo" and (
                el[0].text or "").strip() in _LIMITS_BELOW:
            el.tag, changed = _TO_UNDER[el.tag], True
    if not changed:
        return mathml
    ET.register_namespace("", _MATHML_NS)
    return ET.tostring(root, encoding="unicode", short_empty_elements=True)


class _MathMLRenderer(IPythonRenderer):
    """nbconvert's markdown renderer with the math it finds written as MathML instead of TeX for MathJax."""

    def block_math(self, body: str) -> str:
        return tex_to_mathml(body, display=True)

    def inline_math(self, body: str) -> str:
        return tex_to_mathml(body)

    def latex_environment(self, name: str, body: str) -> str:
        return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)


class ReportExporter(HTMLExporter):
    """nbconvert's HTML exporter (lab template) for a page that needs no network: markdown math as MathML
    (:func:`tex_to_mathml`), no MathJax, require.js, mermaid or widget manager from a CDN; images embedded as
    nbconvert does."""

    def __init__(self, **kw):
        kw.setdefault("extra_loaders", [jinja2.DictLoader({"winclip_report.html.j2": _TEMPLATE})])
        kw.setdefault("template_file", "winclip_report.html.j2")
        super().__init__(**kw)

    @jinja2.pass_context
    def markdown2html(self, context, source):
        """Markdown (a cell's, or a ``text/markdown`` output's) to HTML with MathML math."""
        cell = context.get("cell", {})
        renderer = _MathMLRenderer(
            escape=False, attachments=cell.get("attachments", {}), embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text, exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options)
        return MarkdownWithMath(renderer=renderer).render(source)


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first level-1 heading of a notebook's markdown, else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def combine_notebooks(paths: Sequence[str | Path], title: str = "WinCLIP reproduction report",
                      banner: str | None = None) -> nbformat.NotebookNode:
    """One notebook holding a title (and the DEMO banner), a table of contents and every cell of ``paths`` in order,
    each notebook preceded by an anchor the contents link to."""
    combined = nbformat.v4.new_notebook()
    books = [(Path(p), nbformat.read(Path(p), as_version=4)) for p in paths]
    toc = [f"# {html.escape(title)}", ""]
    if banner:
        toc += [f'<p style="color:#c0001a;font-weight:bold;border:1px solid #c0001a;padding:4px">'
                f"{html.escape(banner)}</p>", ""]
    toc += ["## Contents", ""]
    for i, (path, nb) in enumerate(books):
        toc.append(f"{i + 1}. [{html.escape(notebook_title(nb, path.stem))}](#nb-{path.stem})")
    combined.cells.append(nbformat.v4.new_markdown_cell("\n".join(toc)))
    for path, nb in books:
        combined.cells.append(nbformat.v4.new_markdown_cell(f'<a id="nb-{path.stem}"></a>'))
        for cell in nb.cells:
            if cell.cell_type == "code" and "injected-parameters" in cell.metadata.get("tags", []):
                continue
            combined.cells.append(cell)
    combined.metadata = books[0][1].metadata if books else {}
    return combined


def write_html_report(paths: Sequence[str | Path], out: str | Path, title: str = "WinCLIP reproduction report",
                      banner: str | None = None) -> Path:
    """Write the combined report of ``paths`` (executed notebooks) to ``out`` (an .html file) and return it."""
    if not paths:
        raise ValueError("no executed notebooks given")
    exporter = ReportExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(combine_notebooks(paths, title, banner))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.html_report", description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="+", type=Path, help="executed notebooks, in order")
    p.add_argument("--out", type=Path, default=Path("build/report/index.html"))
    p.add_argument("--title", default="WinCLIP reproduction report")
    p.add_argument("--banner", default=None, help="a DEMO label to show at the top")
    args = p.parse_args(argv)
    print(write_html_report(args.notebooks, args.out, args.title, args.banner))
    return 0


if __name__ == "__main__":
    sys.exit(main())
