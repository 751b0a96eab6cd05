"""The overlay PNGs: each photo at its own aspect ratio, its box recorded in the PNG, the DEMO label stamped; the
score histogram without a threshold says why."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from tests.inspection.conftest import LABEL
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.core.png import idat_stream
from winclip_lib.experiments.config import RunConfig
from winclip_lib.inspection import figures
from winclip_lib.inspection.figures import (
    LAYOUTS_KEPT,
    NO_THRESHOLD,
    OVERLAY_COMPRESS_LEVEL,
    OVERLAY_DPI,
    OVERLAY_LONG_SIDE,
    OVERLAY_MARGIN,
    PHOTO_BOX_KEY,
    overlay_figure,
    overlay_layout,
    plot_score_histogram,
    write_overlays,
)
from winclip_lib.inspection.inputs import collect_inputs
from winclip_lib.inspection.scoring import predict_images
from winclip_lib.report.figures.style import save_figure


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


@pytest.mark.parametrize("layouts_kept", [LAYOUTS_KEPT, 1])
def test_write_overlays_draws_each_image_as_overlay_figure_does(photos, tiny, tmp_path, monkeypatch, layouts_kept):
    """write_overlays shares the run's table and colour range across its images, reuses one figure per layout
    (changing only the photo, heatmap and title; with one figure kept, rebuilding it when the layout changes) and
    decodes the photos ahead on threads: every PNG it writes has the pixels of overlay_figure(run, name) saved on its
    own, compressed at zlib's fastest level (the PNG's zlib header says so) instead of the default."""
    monkeypatch.setattr(figures, "LAYOUTS_KEPT", layouts_kept)
    cfg = RunConfig.from_settings(model_name=TINY_MODEL, pretrained="none", precision="fp32", device="cpu",
                                  cache_dir=str(tmp_path / "cache"))
    inputs = collect_inputs([*sorted(photos["readable"]), *photos["ref_files"]])  # 4 of the 7 photos are 64 x 64
    run = predict_images(cfg, "metal disc", inputs, 0.36, backbone=tiny, progress=False)
    layouts = [overlay_layout(h, w) for h, w in run.sizes]
    assert len(layouts) == 7 and len(set(layouts)) == 4  # figures reused
    written = write_overlays(run, tmp_path / "out", progress=False)
    assert sorted(written) == sorted(run.names)
    assert OVERLAY_COMPRESS_LEVEL == 1 and not plt.get_fignums()  # every figure closed
    for name, path in written.items():
        fig = overlay_figure(run, name, banner=run.label)
        alone = save_figure(fig, tmp_path / "alone" / f"{name}.png", dpi=OVERLAY_DPI)
        plt.close(fig)
        with Image.open(path) as ours, Image.open(alone) as reference:
            assert ours.size == reference.size and ours.mode == reference.mode
            assert np.array_equal(np.asarray(ours), np.asarray(reference)), name
            assert ours.text[PHOTO_BOX_KEY] == ",".join(map(str, overlay_layout(*run.sizes[run.index(name)])[1]))
        flevel = {p: idat_stream(p.read_bytes())[1] >> 6 for p in (path, alone)}  # zlib's FLEVEL bits
        assert flevel == {path: 0, alone: 2}  # fastest, default
