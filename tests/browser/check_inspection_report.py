"""Open the inspection page of ``winclip predict`` in a real browser (``make test-browser``, i.e.
``python -m tests.browser.check_inspection_report``; not collected by pytest).

1. makes the demo report with the tiny model (:func:`tools.predict_demo.make_demo_report`), unless ``--page`` names
   an existing ``report.html``;
2. starts headless Chromium with ``--remote-debugging-port=0`` and reads the port it chose from
   ``DevToolsActivePort`` in its profile folder;
3. over the Chrome DevTools Protocol (a websocket): ``Page.navigate`` to the page, waits for ``Page.loadEventFired``,
   counts ``document.images`` and those that loaded (``complete && naturalWidth > 0``) with ``Runtime.evaluate``,
   and takes a screenshot (``Page.captureScreenshot``);
4. checks that every image loaded, that there is one card per scored image (``run.json``), one row per skipped file,
   and the DEMO label when the weights are random; prints the counts and exits 1 on a failure (2 when no browser).

``--docs-screenshot PATH`` also writes a small optimised copy of the screenshot (at most 1200 px wide, a palette
PNG) for the README.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websocket  # websocket-client
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: What the page reports about itself, evaluated in the browser.
PAGE_FACTS = """JSON.stringify({
  images: document.images.length,
  loaded: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
  broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
               .map(i => i.src.slice(0, 80)),
  cards: document.querySelectorAll('#images .card').length,
  skipped_rows: Math.max(0, document.querySelectorAll('#skipped + p + table tr').length - 1),
  demo: document.getElementById('demo-label') ? document.getElementById('demo-label').textContent : null,
  title: document.title,
  height: document.documentElement.scrollHeight
})"""


def find_browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str, timeout: float = 30.0) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == method:
                return msg
            self.events.append(msg)
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self) -> None:
        self.ws.close()


def start_browser(binary: str, profile: Path, width: int, height: int) -> tuple[subprocess.Popen, int]:
    """Headless Chromium on a free debugging port; returns (process, port)."""
    args = [binary, "--headless", "--remote-debugging-port=0", f"--user-data-dir={profile}", "--no-first-run",
            "--no-default-browser-check", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}",
            "--allow-file-access-from-files", "about:blank"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_file.is_file() and port_file.read_text().strip():
            return proc, int(port_file.read_text().splitlines()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"{binary} exited with status {proc.returncode} before opening its debugging port")
        time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"{binary} wrote no {port_file} within 60 s")


def page_websocket(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        targets = json.loads(r.read())
    pages = [t for t in targets if t.get("type") == "page"]
    if not pages:
        raise RuntimeError("the browser has no page target")
    return pages[0]["webSocketDebuggerUrl"]


@contextlib.contextmanager
def browser_page(binary: str, width: int = 1200, height: int = 900) -> Iterator[DevTools]:
    """Headless Chromium on a fresh profile, its page (``Page`` events on, ``width`` x ``height``) over the DevTools
    Protocol; the browser is closed on leaving."""
    with tempfile.TemporaryDirectory(prefix="winclip-chromium-") as tmp:
        proc, port = start_browser(binary, Path(tmp), width, height)
        try:
            tools = DevTools(page_websocket(port))
            try:
                tools.call("Page.enable")
                tools.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                           mobile=False)
                yield tools
            finally:
                tools.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def inspect_page(binary: str, page: Path, screenshot: Path, width: int = 1200, height: int = 900
                 ) -> dict[str, Any]:
    """Open ``page`` headless, return its facts (:data:`PAGE_FACTS`) and write a screenshot of its top."""
    with browser_page(binary, width, height) as tools:
        tools.call("Page.navigate", url=page.resolve().as_uri())
        tools.wait_event("Page.loadEventFired", timeout=60)
        result = tools.call("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True)
        facts = json.loads(result["result"]["value"])
        shot = tools.call("Page.captureScreenshot", format="png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return facts


def small_png(src: Path, dst: Path, max_width: int = 1200, colors: int = 256) -> int:
    """An optimised copy of a screenshot for the docs (palette PNG, at most ``max_width`` wide); returns its bytes."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.Resampling.LANCZOS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        im.quantize(colors=colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            dst, optimize=True)
    return dst.stat().st_size


def docs_copy(screenshot: Path, dst: Path | None) -> None:
    """With ``dst``, write the small copy of ``screenshot`` for the docs (:func:`small_png`) there and say so."""
    if dst:
        size = small_png(screenshot, dst)
        print(f"docs screenshot: {dst} ({size / 1024:.0f} KB)")


def verdict(problems: list[str], ok: str) -> int:
    """Print each problem (stderr) and the verdict; the exit status: 1 on a problem, else 0."""
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print(ok if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "browser-check",
                   help="work folder: the demo images, cache, report and screenshot (default: build/browser-check)")
    p.add_argument("--page", type=Path, help="check this report.html instead of making the demo report")
    p.add_argument("--screenshot", type=Path, help="where the screenshot goes (default: <out>/screenshot.png)")
    p.add_argument("--docs-screenshot", type=Path, help="also write a small optimised screenshot here")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=900)
    args = p.parse_args(argv)

    binary = find_browser()
    if binary is None:
        print(f"no browser found (looked for {', '.join(BROWSERS)}); install one, e.g. apt-get install chromium",
              file=sys.stderr)
        return 2
    if args.page is None:
        from tools.predict_demo import make_demo_report

        started = time.perf_counter()
        result = make_demo_report(args.out, tiny=True, progress=False)
        print(f"made the demo report in {time.perf_counter() - started:.1f} s: {result.page}")
        page = result.page
    else:
        page = args.page
    info = json.loads((page.parent / "run.json").read_text())
    screenshot = args.screenshot or args.out / "screenshot.png"
    facts = inspect_page(binary, page, screenshot, args.width, args.height)
    expected_images = info["n_scored"] + (1 if info["n_scored"] else 0)  # the overlays and the histogram
    print(f"browser: {binary}")
    print(f"page: {page} ({facts['height']} px tall), title: {facts['title']!r}")
    print(f"images: {facts['images']} on the page, {facts['loaded']} loaded, expected {expected_images}; cards: "
          f"{facts['cards']} (scored images: {info['n_scored']}); skipped rows: {facts['skipped_rows']} "
          f"(skipped files: {info['n_skipped']}); DEMO label: {facts['demo'] is not None}")
    print(f"screenshot: {screenshot}")
    problems = []
    if facts["loaded"] != facts["images"]:
        problems.append(f"broken images: {facts['broken']}")
    if facts["images"] != expected_images:
        problems.append(f"{facts['images']} images on the page, expected {expected_images}")
    if facts["cards"] != info["n_scored"]:
        problems.append(f"{facts['cards']} image cards, expected {info['n_scored']}")
    if facts["skipped_rows"] != info["n_skipped"]:
        problems.append(f"{facts['skipped_rows']} skipped rows, expected {info['n_skipped']}")
    if info.get("label") and not (facts["demo"] or "").startswith(info["label"]):
        problems.append(f"the DEMO label {info['label']!r} is not shown")
    docs_copy(screenshot, args.docs_screenshot)
    return verdict(problems, "OK: the page shows every image")


if __name__ == "__main__":
    sys.exit(main())
