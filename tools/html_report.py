"""One self-contained HTML report from the executed notebooks (a repository tool: it reads the executed copies).

``write_html_report(notebooks, out)`` joins the executed notebooks, in order, into one page: a table of contents
linking to each notebook, then each notebook's prose, tables, printed results and figures (embedded as base64 PNG,
so the single file can be mailed or archived), with the code cells left out — the notebooks themselves keep the
code. ``make demo`` writes ``build/report/index.html``; ``make reproduce`` writes ``report/index.html``.

    python -m tools.html_report build/notebooks/*.ipynb --out build/report/index.html
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

__all__ = ["combine_notebooks", "main", "notebook_title", "write_html_report"]


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
    from nbconvert import HTMLExporter

    if not paths:
        raise ValueError("no executed notebooks given")
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
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
