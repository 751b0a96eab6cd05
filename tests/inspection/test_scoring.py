"""Scoring through the feature cache: equal to WinCLIP.predict / fit on the same files; a second run encodes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.core.fewshot import few_shot_maps
from winclip_lib.core.model import WinCLIP
from winclip_lib.experiments.config import RunConfig
from winclip_lib.inspection.inputs import collect_inputs
from winclip_lib.inspection.scoring import predict_images


def test_a_second_run_encodes_nothing_and_gives_the_same_scores(few_shot):
    assert few_shot["first"]["encode_counts"]["encoded"] == 7  # 4 images + 3 references
    again = few_shot["second"]["encode_counts"]
    assert again["encoded"] == 0 and again["hits"] == 7
    pd.testing.assert_frame_equal(few_shot["first_scores"], few_shot["scores"])


def test_scores_equal_winclip_predict_on_the_same_images(photos, few_shot, tiny, tmp_path):
    """Few-shot (the command above) and zero-shot (the library) equal WinCLIP.predict / fit on the same files."""
    scores = few_shot["scores"]
    paths = list(scores["path"])
    model = WinCLIP(tiny, "metal disc").fit(photos["ref_files"])
    with torch.inference_mode():
        pred = model.predict(paths)
        visual = few_shot_maps(model.encode(paths), model.memory)["map"].flatten(1).amax(dim=1)
    # equal up to the rounding of another batch composition (the feature cache encodes in input order)
    np.testing.assert_allclose(scores["score"], pred.score.numpy(), atol=1e-5)
    np.testing.assert_allclose(scores["s0"], pred.image_score.numpy(), atol=1e-5)
    np.testing.assert_allclose(scores["visual_max"], visual.numpy(), atol=1e-5)
    cfg = RunConfig.from_settings(model_name=TINY_MODEL, pretrained="none", precision="fp32", device="cpu",
                                  cache_dir=str(tmp_path / "cache"))
    zero = predict_images(cfg, "metal disc", collect_inputs(paths), backbone=tiny, progress=False)
    with torch.inference_mode():
        expected = WinCLIP(tiny, "metal disc").predict(paths)
    assert zero.k == 0 and zero.visual_max is None and zero.threshold.value is None
    np.testing.assert_allclose(zero.score, expected.score.numpy(), atol=1e-5)
    np.testing.assert_allclose(zero.s0, zero.score)
    np.testing.assert_allclose(zero.maps, expected.map.numpy(), atol=1e-4)
