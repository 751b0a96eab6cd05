"""Shared fixtures: the tiny model for most tests, the real ViT-B-16-plus-240 architecture (random weights) once."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the precision probe remembers its choice per machine: keep the tests' memory out of the user's cache
os.environ["WINCLIP_CACHE_DIR"] = tempfile.mkdtemp(prefix="winclip-test-cache-")
os.environ["WINCLIP_PROGRESS"] = "0"
# with pytest-xdist (make test runs two workers) the cores are shared between the workers
torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

from winclip_lib.core.backbone import DEFAULT_MODEL, TINY_MODEL, load_backbone  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """The tiny same-family model (ViT, patch 16, 240 px -> 15 x 15 grid), random weights, fp32."""
    return load_backbone(TINY_MODEL, None, seed=0, precision="fp32", device="cpu")


@pytest.fixture(scope="session")
def vitb():
    """The real ViT-B-16-plus-240 architecture with random weights (fp32): ~3 s per image, use sparingly."""
    return load_backbone(DEFAULT_MODEL, None, seed=0, precision="fp32", device="cpu")


@pytest.fixture
def images():
    """Two seeded CLIP-normalised-range batches of shape (2, 3, 240, 240)."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 240, 240, generator=g)


def pytest_collection_modifyitems(session, config, items):
    """The notebooks run first: they are the longest file (with ``make test``'s two workers, one worker executes them
    while the other takes every other file)."""
    items.sort(key=lambda item: 0 if item.path.name == "test_notebooks.py" else 1)
