"""Finding the inputs: folders searched, the references left out of the queries, the files that cannot be scored
listed with their problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from winclip_lib.datasets.synthetic import make_loose_images
from winclip_lib.inspection.inputs import collect_inputs


def test_loose_demo_images(tmp_path):
    loose = make_loose_images(tmp_path / "demo")
    assert len(loose.images) == 9 and len(loose.anomalous) == 3 and len(loose.normal) == 3
    shapes = {Image.open(p).size for p in loose.images}
    assert len({round(w / h, 2) for w, h in shapes}) >= 5  # mixed aspect ratios
    inputs = collect_inputs(loose.folder, loose.folder / "normal", progress=False)
    assert [p for p, _ in inputs.images] == list(loose.images)  # the references are not scored as queries
    assert len(inputs.normal) == 3 and len(inputs.excluded) == 3 and inputs.synthetic
    assert {Path(s.path).name: s.problem for s in inputs.skipped} == {"broken.png": "unreadable",
                                                                       "notes.txt": "not an image"}
    assert make_loose_images(tmp_path / "demo").images == loose.images  # an earlier demo folder is replaced
    with pytest.raises(FileExistsError):
        make_loose_images(tmp_path)
