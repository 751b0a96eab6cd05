"""``python -m tools.predict_demo`` (part of ``make demo``): ``winclip predict`` on a folder of demo images.

Writes a few synthetic photos into a plain folder (:func:`winclip_lib.datasets.synthetic.make_loose_images`: mixed
sizes, three anomalous, three normal references in ``normal/``, one corrupt file and one text file) and runs the
same pipeline as ``winclip predict <folder> --normal <folder>/normal`` into ``<build>/demo-predict/predictions``;
open its ``report.html``. The paper's weights are used when they are cached, otherwise random weights (the page
then says DEMO, as it does for the synthetic images anyway); ``--tiny`` uses the tiny test model.

Exit status: 0 (the corrupt and text files are skipped on purpose, so the page shows its skipped-files section).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from winclip_lib.core.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, TINY_MODEL, find_cached_weights
from winclip_lib.datasets.synthetic import make_loose_images
from winclip_lib.experiments.config import RunConfig
from winclip_lib.inspection import Inspection, inspect_images

__all__ = ["DEMO_CLASS", "demo_config", "make_demo_report", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CLASS = "metal disc"


def demo_config(base: Path, tiny: bool = False, precision: str | None = None) -> RunConfig:
    """The demo's settings: the tiny model with random weights, or ViT-B-16-plus-240 with the paper's weights when
    cached (random weights otherwise); the feature cache under ``base``."""
    if tiny:
        model, pretrained = TINY_MODEL, None
    else:
        model = DEFAULT_MODEL
        pretrained = DEFAULT_PRETRAINED if find_cached_weights(DEFAULT_MODEL, DEFAULT_PRETRAINED) else None
        if pretrained is None:
            print(f"!! the pretrained weights {DEFAULT_PRETRAINED} are not cached: {DEFAULT_MODEL} with RANDOM "
                  "weights (the page is labelled DEMO)", flush=True)
    return RunConfig.from_settings(model_name=model, pretrained=pretrained or "none", precision=precision,
                                   cache_dir=str(base / "cache"))


def make_demo_report(base: str | Path, tiny: bool = False, precision: str | None = None,
                     progress: bool | None = None) -> Inspection:
    """Write the demo images to ``<base>/images`` and the inspection to ``<base>/predictions``."""
    base = Path(base).resolve()
    loose = make_loose_images(base / "images")
    return inspect_images(demo_config(base, tiny, precision), DEMO_CLASS, [loose.folder], [loose.folder / "normal"],
                          base / "predictions", progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.predict_demo", description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="the tiny test model with random weights (seconds)")
    p.add_argument("--precision", default=None, help="weights precision (default: auto)")
    p.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build", help="(default: <repo>/build)")
    args = p.parse_args(argv)
    result = make_demo_report(args.build_dir / ("demo-predict-tiny" if args.tiny else "demo-predict"), args.tiny,
                              args.precision)
    print(f"open {result.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
