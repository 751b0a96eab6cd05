"""The overlay PNGs: each photo at its own aspect ratio, its box recorded in the PNG, the DEMO label stamped; the
score histogram without a threshold says why."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from tests.inspection.conftest import LABEL
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.experiments.config import RunConfig
from winclip_lib.inspection.figures import (
    NO_THRESHOLD,
    OVERLAY_LONG_SIDE,
    OVERLAY_MARGIN,
    PHOTO_BOX_KEY,
    plot_score_histogram,
)
from winclip_lib.inspection.inputs import collect_inputs
from winclip_lib.inspection.scoring import predict_images


def test_overlays_keep_each_photos_aspect_ratio(photos, few_shot):
    scores = few_shot["scores"]
    left, top, right, bottom = OVERLAY_MARGIN
    for row in scores.itertuples():
        with Image.open(few_shot["out"] / "overlays" / f"{row.name}.png") as im:
            png = im.convert("RGB")
            box = [int(v) for v in im.text[PHOTO_BOX_KEY].split(",")]
            assert im.text["Description"] == LABEL
        x0, y0, bw, bh = box
        h, w = photos["readable"][Path(row.path)]
        assert max(bw, bh) == OVERLAY_LONG_SIDE
        assert abs(bw / bh - w / h) <= 1.0 / min(bw, bh)  # the photo's aspect ratio, to the pixel
        assert png.height == top + max(bh, 120) + bottom and png.width >= left + bw + right
        pixels = np.asarray(png).astype(int)
        photo_area = pixels[y0 : y0 + bh, x0 : x0 + bw]
        assert photo_area.shape[:2] == (bh, bw) and np.abs(photo_area - 255).mean() > 60  # the photo, not paper
        assert (pixels[y0 + bh // 2, x0 - 3] >= 230).all()  # paper just left of the photo (under a faint watermark)


def test_score_histogram_says_why_there_is_no_threshold(photos, few_shot, tiny, tmp_path):
    """Zero-shot without --threshold: no threshold line, and the caption says "threshold: n/a — no decision: ..."
    with the fix; a given threshold is drawn and needs no such caption."""
    paths = list(few_shot["scores"]["path"])[:2]
    cfg = RunConfig.from_settings(model_name=TINY_MODEL, pretrained="none", precision="fp32", device="cpu",
                                  cache_dir=str(tmp_path / "cache"))
    without = plot_score_histogram(predict_images(cfg, "metal disc", collect_inputs(paths), backbone=tiny,
                                                  progress=False))
    given = plot_score_histogram(predict_images(cfg, "metal disc", collect_inputs(paths), 0.5, backbone=tiny,
                                                progress=False))
    try:
        caption = " ".join(without.get_supxlabel().split())
        assert NO_THRESHOLD == "threshold: n/a"
        assert caption.startswith("threshold: n/a — no decision: no normal reference and no --threshold")
        assert not any(line.get_label().startswith("threshold") for line in without.axes[0].get_lines())
        assert given.get_supxlabel() == ""
        assert any(line.get_label().startswith("threshold 0.500") for line in given.axes[0].get_lines())
    finally:
        plt.close(without)
        plt.close(given)
