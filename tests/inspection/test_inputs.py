"""Finding the inputs: folders searched (symbolic links followed, each folder once), the references left out of the
queries, the files that cannot be scored listed with their problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from winclip_lib.datasets.synthetic import make_loose_images
from winclip_lib.inspection.inputs import collect_inputs, expand_paths


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


def test_symlinked_folders_are_followed_once_and_a_broken_link_is_listed(tmp_path):
    """A linked sub-folder is scanned like any other; a link loop (a link to a folder above it) and a second link to
    one folder scan each folder once; a broken link is skipped as "not found", naming the link and its target."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(elsewhere / name)
    top = tmp_path / "input"
    (top / "real").mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), 64, np.uint8)).save(top / "real" / "c.png")
    (top / "linked").symlink_to(elsewhere)
    (top / "again").symlink_to(elsewhere)
    (top / "real" / "loop").symlink_to(top)
    (top / "broken.png").symlink_to(tmp_path / "gone.png")
    files, unmatched = expand_paths([top])
    assert unmatched == [] and sorted(p.name for p in files) == ["a.png", "b.png", "broken.png", "c.png"]
    inputs = collect_inputs(top, progress=False)
    assert sorted(p.name for p, _ in inputs.images) == ["a.png", "b.png", "c.png"]
    (skipped,) = inputs.skipped
    assert (skipped.path, skipped.problem) == (str(top / "broken.png"), "not found")
    assert skipped.reason == (f"image file {top / 'broken.png'} does not exist: it is a symbolic link to "
                              f"{tmp_path / 'gone.png'}, which does not exist; fix or remove the link")
