"""The overlay PNGs: each photo at its own aspect ratio, its box recorded in the PNG, the DEMO label stamped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.inspection.conftest import LABEL
from winclip_lib.inspection.figures import OVERLAY_LONG_SIDE, OVERLAY_MARGIN, PHOTO_BOX_KEY


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
