"""The photos the inspection tests share: a plain folder of mixed sizes with files that cannot be scored, normal
references beside it, and one ``winclip predict`` run over them (twice, into the same folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from winclip_lib.cli import main
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.datasets.synthetic import render_normal
from winclip_lib.experiments.labels import demo_label

#: The label of every output of these runs (the tiny model with random weights; the photos are not a synthetic set).
LABEL = demo_label(True, False, tiny_model=True)


def photo(seed: int, h: int, w: int) -> np.ndarray:
    """A synthetic disc photo of h x w (rendered square, resized)."""
    img, _, _ = render_normal("disc", np.random.default_rng([seed, 3]), max(h, w))
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))


@pytest.fixture(scope="package")
def photos(tmp_path_factory) -> dict:
    """A plain folder: mixed sizes and aspect ratios, a grayscale and an RGBA image in a subfolder, a corrupt PNG, a
    text file, an image too small to score; the normal references in a folder of their own."""
    root = tmp_path_factory.mktemp("photos")
    data = root / "line-3"
    (data / "sub").mkdir(parents=True)
    Image.fromarray(photo(1, 64, 96)).save(data / "wide.png")
    Image.fromarray(photo(2, 96, 48)).save(data / "tall.jpg", quality=95)
    Image.fromarray(photo(3, 64, 64)).convert("L").save(data / "sub" / "gray.png")
    rgba = np.dstack([photo(4, 48, 80), np.full((48, 80), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(data / "sub" / "alpha.png")
    good = (data / "wide.png").read_bytes()
    (data / "corrupt.png").write_bytes(good[: len(good) // 2])
    (data / "notes.txt").write_text("not an image\n")
    Image.fromarray(photo(5, 8, 12)).save(data / "thumb.png")
    refs = root / "good"
    refs.mkdir()
    for i in range(3):
        Image.fromarray(photo(10 + i, 64, 64)).save(refs / f"ref{i}.png")
    readable = {data / "wide.png": (64, 96), data / "tall.jpg": (96, 48), data / "sub" / "gray.png": (64, 64),
                data / "sub" / "alpha.png": (48, 80)}
    return {"root": root, "data": data, "refs": refs, "readable": readable,
            "ref_files": sorted(refs.glob("*.png"))}


def tiny_flags(tmp: Path, cache: Path) -> list[str]:
    return ["--model", TINY_MODEL, "--pretrained", "none", "--precision", "fp32", "--device", "cpu",
            "--cache-dir", str(cache), "--no-progress"]


@pytest.fixture(scope="package")
def few_shot(photos, tmp_path_factory) -> dict:
    """``winclip predict <folder> --normal <refs>`` run twice into the same output folder."""
    tmp = tmp_path_factory.mktemp("few")
    out = tmp / "out"
    argv = ["predict", str(photos["data"]), "--class-name", "metal disc", "--normal", str(photos["refs"]), "--out",
            str(out), *tiny_flags(tmp, tmp / "cache")]
    first_status = main(argv)
    first = json.loads((out / "run.json").read_text())
    first_scores = pd.read_csv(out / "scores.csv")
    second_status = main(argv)
    return {"out": out, "status": (first_status, second_status), "first": first, "first_scores": first_scores,
            "second": json.loads((out / "run.json").read_text()), "scores": pd.read_csv(out / "scores.csv")}
