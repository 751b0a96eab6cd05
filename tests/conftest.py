"""Shared fixtures: the tiny model for most tests, the real ViT-B-16-plus-240 architecture (random weights) for the
few tests marked ``slow``, and the synthetic dataset the tests share.

A test that builds the full-size model must be marked ``@pytest.mark.slow`` (``make test`` still runs it; ``-m "not
slow"`` leaves it out): the ``vitb`` fixture and any ``open_clip.create_model`` of that architecture in an unmarked
test fail the test.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import open_clip
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the precision probe remembers its choice per machine: keep the tests' memory out of the user's cache
os.environ["WINCLIP_CACHE_DIR"] = tempfile.mkdtemp(prefix="winclip-test-cache-")
os.environ["WINCLIP_PROGRESS"] = "0"
# with pytest-xdist the cores are shared between the workers
torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

from winclip_lib.core.backbone import DEFAULT_MODEL, TINY_MODEL, load_backbone  # noqa: E402

#: The synthetic set the tests share (MVTec layout): two categories, 4 normal training images, 2 normal and 3
#: anomalous test images each, 64 x 64.
SYNTHETIC_SET = {"categories": ("disc", "tiles"), "n_train": 4, "n_test_good": 2, "n_test_bad": 3, "size": 64}


def _require_slow(node: pytest.Item) -> None:
    if node.get_closest_marker("slow") is None:
        pytest.fail(f"{node.nodeid} builds the full-size {DEFAULT_MODEL}: mark it @pytest.mark.slow", pytrace=False)


@pytest.fixture(scope="session")
def tiny():
    """The tiny same-family model (ViT, patch 16, 240 px -> 15 x 15 grid), random weights, fp32."""
    return load_backbone(TINY_MODEL, None, seed=0, precision="fp32", device="cpu")


@pytest.fixture(scope="session")
def full_size_backbone():
    """ViT-B-16-plus-240 with random weights (fp32), built once; tests ask for it through ``vitb``."""
    return load_backbone(DEFAULT_MODEL, None, seed=0, precision="fp32", device="cpu")


@pytest.fixture
def vitb(request):
    """The real ViT-B-16-plus-240 architecture with random weights (fp32): ~3 s per image; ``slow`` tests only."""
    _require_slow(request.node)
    return request.getfixturevalue("full_size_backbone")


@pytest.fixture(autouse=True)
def full_size_model_only_in_slow_tests(request, monkeypatch):
    """An unmarked test that builds the full-size model fails (see the module docstring)."""
    if request.node.get_closest_marker("slow") is not None:
        return
    create_model = open_clip.create_model

    def guarded(model_name, *args, **kwargs):
        if model_name == DEFAULT_MODEL:
            _require_slow(request.node)
        return create_model(model_name, *args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model", guarded)


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    """The synthetic dataset the tests share (:data:`SYNTHETIC_SET`), written once. Read it only: a test that
    changes files works on a copy."""
    from winclip_lib.datasets.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("data") / "syn", **SYNTHETIC_SET)


@pytest.fixture
def images():
    """Two seeded CLIP-normalised-range batches of shape (2, 3, 240, 240)."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 240, 240, generator=g)


def pytest_collection_modifyitems(session, config, items):
    """The notebooks run first: they are the longest file (with pytest-xdist, one worker executes them while the
    others take every other file)."""
    items.sort(key=lambda item: 0 if item.path.name == "test_notebooks.py" else 1)
