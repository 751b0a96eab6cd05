"""Open the notebooks' HTML report in a real browser with the network off (``make test-browser``; not collected by
pytest): its mathematics must be typeset without MathJax or any CDN.

1. runs the demo with the tiny model (``python -m tools.demo --tiny``: every notebook, then the report), unless
   ``--notebooks`` names executed notebooks to build the report from;
2. opens the report in headless Chromium (``check_inspection_report.browser_page``) with the network emulated
   offline, and records every request the page makes;
3. checks that the page requested nothing beyond its own file and data: URLs, that its visible text holds no raw TeX
   (``$$``, ``$...$``, ``\\frac``, ``\\sum``, ...), that there is one ``<math>`` element per formula of the notebooks'
   markdown (counted here from the notebooks' sources), each laid out with a size, that every fraction is typeset
   (its numerator above its denominator), and that every image loaded;
4. screenshots notebook 01's section of the page (``--docs-screenshot`` also writes a small copy for the docs).

Prints the counts; exits 1 on a failure (2 when no browser).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

import nbformat  # noqa: E402

from tests.browser.check_inspection_report import browser_page, docs_copy, find_browser, verdict  # noqa: E402

#: A formula in markdown, as a reader writes it: display ($$...$$, \[...\]) first, then inline ($...$, \(...\)).
DISPLAY_MATH = re.compile(r"(?<!\\)\$\$.+?(?<!\\)\$\$|\\\[.+?\\\]", re.S)
INLINE_MATH = re.compile(r"(?<![\\$])\$[^$]+?(?<![\\$])\$|\\\(.+?\\\)", re.S)
#: Raw TeX that must not be visible on the page.
RAW_TEX = re.compile(r"\$\$|\\(?:frac|sum|mathcal|text|big|Big|lVert|rVert|times|cdot|in|min|max|exp|cos|qquad)\b"
                     r"|\$[^$\s][^$\n]{0,80}\$")
#: What the page reports about itself, evaluated in the browser.
PAGE_FACTS = """JSON.stringify({
  math: document.querySelectorAll('math').length,
  display: document.querySelectorAll('math[display="block"]').length,
  math_sized: Array.from(document.querySelectorAll('math')).filter(m => {
      const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length,
  fractions: document.querySelectorAll('mfrac').length,
  fractions_typeset: Array.from(document.querySelectorAll('mfrac')).filter(f => {
      const [num, den] = f.children;
      return num && den && num.getBoundingClientRect().bottom <= den.getBoundingClientRect().top + 1; }).length,
  scripts: Array.from(document.scripts).map(s => s.src).filter(s => s),
  images: document.images.length,
  loaded: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
  text: document.body.innerText,
  height: document.documentElement.scrollHeight
})"""
#: Where notebook 01's section starts and ends on the page (the anchors the table of contents links to).
SECTION = """JSON.stringify((() => {
  const top = el => el.getBoundingClientRect().top + window.scrollY;
  const a = document.getElementById(%r), b = document.getElementById(%r);
  return {top: a ? top(a) : null, bottom: b ? top(b) : document.documentElement.scrollHeight,
          width: document.documentElement.scrollWidth};
})())"""


def count_formulas(paths: list[Path]) -> dict[str, int]:
    """{"display", "inline"} formulas in the markdown cells of the notebooks (and their markdown outputs)."""
    counts = {"display": 0, "inline": 0}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        texts = [c.source for c in nb.cells if c.cell_type == "markdown"]
        texts += [o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", [])]
        for text in texts:
            counts["display"] += len(DISPLAY_MATH.findall(text))
            counts["inline"] += len(INLINE_MATH.findall(DISPLAY_MATH.sub("", text)))
    return counts


def inspect_report(binary: str, page: Path, screenshot: Path, section: tuple[str, str], width: int = 1200,
                   height: int = 900, max_shot_height: int = 4000) -> dict[str, Any]:
    """Open ``page`` offline, return its facts (:data:`PAGE_FACTS`) and every URL it requested, and screenshot the
    part of the page between the anchors ``section`` (at most ``max_shot_height`` px)."""
    with browser_page(binary, width, height) as tools:
        tools.call("Network.enable")
        tools.call("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1,
                   uploadThroughput=-1)
        tools.call("Page.navigate", url=page.resolve().as_uri())
        tools.wait_event("Page.loadEventFired", timeout=60)
        time.sleep(0.5)  # anything the page starts after its load event
        result = tools.call("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True)
        facts = json.loads(result["result"]["value"])
        where = json.loads(tools.call("Runtime.evaluate", expression=SECTION % section,
                                      returnByValue=True)["result"]["value"])
        facts["requests"] = [e["params"]["request"]["url"] for e in tools.events
                             if e.get("method") == "Network.requestWillBeSent"]
        facts["section"] = where
        if where["top"] is not None:
            clip = {"x": 0, "y": where["top"], "width": where["width"],
                    "height": min(where["bottom"] - where["top"], max_shot_height), "scale": 1}
            shot = tools.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
    return facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "browser-check-report",
                   help="build folder of the tiny demo, and the screenshot (default: build/browser-check-report)")
    p.add_argument("--notebooks", type=Path, nargs="+", help="executed notebooks: build the report from these "
                   "instead of running the tiny demo")
    p.add_argument("--section", default="01_cpe", help="the notebook whose section is screenshot (default 01_cpe)")
    p.add_argument("--screenshot", type=Path, help="where the screenshot goes (default: <out>/report_<section>.png)")
    p.add_argument("--docs-screenshot", type=Path, help="also write a small optimised screenshot here")
    p.add_argument("--width", type=int, default=1200)
    args = p.parse_args(argv)

    binary = find_browser()
    if binary is None:
        print("no browser found; install one, e.g. apt-get install chromium", file=sys.stderr)
        return 2
    if args.notebooks:
        from tools.html_report import write_html_report

        notebooks = list(args.notebooks)
        page = write_html_report(notebooks, args.out / "report" / "index.html")
    else:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tools.demo", "--tiny", "--build-dir", str(args.out)],
                              cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
            print("FAIL: the tiny demo failed", file=sys.stderr)
            return 1
        print(f"ran the notebooks with the tiny model in {time.perf_counter() - started:.0f} s")
        notebooks = sorted((args.out / "notebooks-tiny").glob("[0-9][0-9]_*.ipynb"))
        page = args.out / "report-tiny" / "index.html"
    names = [n.stem for n in notebooks]
    if args.section not in names:
        print(f"--section {args.section}: not one of the notebooks ({', '.join(names)})", file=sys.stderr)
        return 2
    following = names[names.index(args.section) + 1] if names[-1] != args.section else ""
    expected = count_formulas(notebooks)
    screenshot = args.screenshot or args.out / f"report_{args.section}.png"
    facts = inspect_report(binary, page, screenshot, (f"nb-{args.section}", f"nb-{following}"), args.width)

    raw = sorted({m.group(0)[:40] for m in RAW_TEX.finditer(facts["text"])})
    outside = [u for u in facts["requests"] if not u.startswith(("file:", "data:", "about:"))]
    print(f"browser: {binary}, network offline")
    print(f"page: {page} ({facts['height']} px tall); requests beyond the file and data: URLs: {len(outside)}; "
          f"script sources: {facts['scripts']}")
    print(f"formulas in the notebooks: {expected['display']} display + {expected['inline']} inline; <math> on the "
          f"page: {facts['math']} ({facts['display']} display), {facts['math_sized']} laid out with a size; "
          f"fractions typeset: {facts['fractions_typeset']} of {facts['fractions']}; raw TeX visible: {len(raw)}")
    print(f"images: {facts['images']} on the page, {facts['loaded']} loaded")
    problems = []
    if outside:
        problems.append(f"the page requested {outside}")
    if facts["scripts"]:
        problems.append(f"the page loads scripts: {facts['scripts']}")
    if raw:
        problems.append(f"raw TeX visible: {raw}")
    if (facts["display"], facts["math"]) != (expected["display"], expected["display"] + expected["inline"]):
        problems.append(f"{facts['math']} <math> elements ({facts['display']} display), expected "
                        f"{expected['display'] + expected['inline']} ({expected['display']} display)")
    if facts["math_sized"] != facts["math"]:
        problems.append(f"{facts['math'] - facts['math_sized']} <math> elements have no size")
    if facts["fractions_typeset"] != facts["fractions"]:
        problems.append(f"{facts['fractions'] - facts['fractions_typeset']} fractions not typeset")
    if facts["loaded"] != facts["images"]:
        problems.append(f"{facts['images'] - facts['loaded']} images did not load")
    if facts["section"]["top"] is None:
        problems.append(f"no section nb-{args.section} on the page")
    else:
        print(f"screenshot of {args.section}: {screenshot}")
        docs_copy(screenshot, args.docs_screenshot)
    return verdict(problems, "OK: the report's mathematics is typeset offline")


if __name__ == "__main__":
    sys.exit(main())
