"""The files of a run: maps.npz holds every map at the model's resolution, under the names of scores.csv."""

from __future__ import annotations

import numpy as np

from tests.inspection.conftest import LABEL


def test_maps_npz_holds_every_map_at_the_model_resolution(photos, few_shot):
    scores = few_shot["scores"]
    with np.load(few_shot["out"] / "maps.npz") as npz:
        index = dict(zip(npz["_names"], npz["_paths"], strict=True))
        assert str(npz["_label"]) == LABEL
        maps = {n: npz[n] for n in index}
    assert index == dict(zip(scores["name"], scores["path"], strict=True))
    for m in maps.values():
        assert m.shape == (240, 240) and m.dtype == np.float32 and np.isfinite(m).all()
