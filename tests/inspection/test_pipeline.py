"""``winclip predict``: your own images in a plain folder — scores, overlays, maps, the page, skipped files, exit
status, the leave-one-out threshold, the feature cache. Real files, the tiny model with random weights."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from winclip_lib.cli import PREDICT, main, predict_config
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.core.fewshot import few_shot_maps
from winclip_lib.core.model import WinCLIP
from winclip_lib.datasets.synthetic import _rng, make_loose_images, render_normal
from winclip_lib.experiments import cli as experiments_cli
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.labels import demo_label
from winclip_lib.experiments.predict import (
    MIN_IMAGE_SIDE,
    PREDICT_SETTINGS,
    choose_threshold,
    collect_inputs,
    decide,
    loo_threshold,
    predict_images,
)
from winclip_lib.report.inspection import OVERLAY_LONG_SIDE, OVERLAY_MARGIN, PHOTO_BOX_KEY, inspect_images

LABEL = demo_label(True, False)


def _photo(seed: int, h: int, w: int) -> np.ndarray:
    """A synthetic disc photo of h x w (rendered square, resized)."""
    img, _, _ = render_normal("disc", _rng(seed, "predict-test"), max(h, w))
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    """A plain folder: mixed sizes and aspect ratios, a grayscale and an RGBA image in a subfolder, a corrupt PNG, a
    text file, an image too small to score; the normal references in a folder of their own."""
    root = tmp_path_factory.mktemp("photos")
    data = root / "line-3"
    (data / "sub").mkdir(parents=True)
    Image.fromarray(_photo(1, 64, 96)).save(data / "wide.png")
    Image.fromarray(_photo(2, 96, 48)).save(data / "tall.jpg", quality=95)
    Image.fromarray(_photo(3, 64, 64)).convert("L").save(data / "sub" / "gray.png")
    rgba = np.dstack([_photo(4, 48, 80), np.full((48, 80), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(data / "sub" / "alpha.png")
    good = (data / "wide.png").read_bytes()
    (data / "corrupt.png").write_bytes(good[: len(good) // 2])
    (data / "notes.txt").write_text("not an image\n")
    Image.fromarray(_photo(5, 8, 12)).save(data / "thumb.png")
    refs = root / "good"
    refs.mkdir()
    for i in range(3):
        Image.fromarray(_photo(10 + i, 64, 64)).save(refs / f"ref{i}.png")
    readable = {data / "wide.png": (64, 96), data / "tall.jpg": (96, 48), data / "sub" / "gray.png": (64, 64),
                data / "sub" / "alpha.png": (48, 80)}
    return {"root": root, "data": data, "refs": refs, "readable": readable,
            "ref_files": sorted(refs.glob("*.png"))}


def _tiny_flags(tmp: Path, cache: Path) -> list[str]:
    return ["--model", TINY_MODEL, "--pretrained", "none", "--precision", "fp32", "--device", "cpu",
            "--cache-dir", str(cache), "--no-progress"]


@pytest.fixture(scope="module")
def few_shot(photos, tmp_path_factory) -> dict:
    """``winclip predict <folder> --normal <refs>`` run twice into the same output folder."""
    tmp = tmp_path_factory.mktemp("few")
    out = tmp / "out"
    argv = ["predict", str(photos["data"]), "--class-name", "metal disc", "--normal", str(photos["refs"]), "--out",
            str(out), *_tiny_flags(tmp, tmp / "cache")]
    first_status = main(argv)
    first = json.loads((out / "run.json").read_text())
    first_scores = pd.read_csv(out / "scores.csv")
    second_status = main(argv)
    return {"out": out, "status": (first_status, second_status), "first": first, "first_scores": first_scores,
            "second": json.loads((out / "run.json").read_text()), "scores": pd.read_csv(out / "scores.csv")}


def test_every_readable_image_is_scored_and_the_rest_listed_with_reasons(photos, few_shot):
    assert few_shot["status"] == (3, 3)
    scores = few_shot["scores"]
    assert {Path(p) for p in scores["path"]} == set(photos["readable"])
    assert list(scores["rank"]) == [1, 2, 3, 4] and scores["score"].is_monotonic_decreasing
    assert (scores["banner"] == LABEL).all()
    for row in scores.itertuples():
        assert (row.height, row.width) == photos["readable"][Path(row.path)]
    errors = pd.read_csv(few_shot["out"] / "errors.csv").set_index("path")
    data = photos["data"]
    assert set(errors.index) == {str(data / "corrupt.png"), str(data / "notes.txt"), str(data / "thumb.png")}
    assert errors.loc[str(data / "corrupt.png"), "problem"] == "unreadable"
    assert "truncated" in errors.loc[str(data / "corrupt.png"), "reason"]
    assert errors.loc[str(data / "notes.txt"), "problem"] == "not an image"
    assert ".txt" in errors.loc[str(data / "notes.txt"), "reason"]
    thumb = errors.loc[str(data / "thumb.png")]
    assert thumb["problem"] == "too small" and "12 x 8 px" in thumb["reason"]
    assert f"{MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} px" in thumb["reason"]
    assert all(str(data) in r for r in errors["reason"])  # every reason names its file
    info = few_shot["first"]
    assert info["k"] == 3 and info["mode"] == "WinCLIP+ (few-shot, k = 3)" and info["n_skipped"] == 3
    assert sorted(info["references"]) == [str(p) for p in photos["ref_files"]]
    assert info["label"] == LABEL and info["settings"]["precision"] == "fp32"


def test_a_second_run_encodes_nothing_and_gives_the_same_scores(few_shot):
    assert few_shot["first"]["encode_counts"]["encoded"] == 7  # 4 images + 3 references
    again = few_shot["second"]["encode_counts"]
    assert again["encoded"] == 0 and again["hits"] == 7
    pd.testing.assert_frame_equal(few_shot["first_scores"], few_shot["scores"])


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


def test_maps_npz_holds_every_map_at_the_model_resolution(photos, few_shot):
    scores = few_shot["scores"]
    with np.load(few_shot["out"] / "maps.npz") as npz:
        index = dict(zip(npz["_names"], npz["_paths"], strict=True))
        assert str(npz["_label"]) == LABEL
        maps = {n: npz[n] for n in index}
    assert index == dict(zip(scores["name"], scores["path"], strict=True))
    for m in maps.values():
        assert m.shape == (240, 240) and m.dtype == np.float32 and np.isfinite(m).all()


def test_the_page_lists_every_image_the_threshold_and_the_skipped_files(photos, few_shot):
    page = (few_shot["out"] / "report.html").read_text()
    scores = few_shot["scores"]
    assert page.count('<div class="card"') == 4 and page.count('src="data:image/png;base64,') == 5
    positions = [page.index(f'id="{n}"') for n in scores["name"]]
    assert positions == sorted(positions)  # highest score first
    assert LABEL in page and "leave-one-out" in page and "population standard deviation" in page
    for name in ("corrupt.png", "notes.txt", "thumb.png"):
        assert name in page
    threshold = few_shot["first"]["threshold"]["value"]
    assert f"threshold {threshold:.4f}" in page


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


def test_the_leave_one_out_threshold_by_hand(photos, few_shot, tiny):
    """Each reference scored by WinCLIP+ fitted on the other two; threshold = max + population std."""
    refs = photos["ref_files"]
    loo = []
    with torch.inference_mode():
        for i, ref in enumerate(refs):
            model = WinCLIP(tiny, "metal disc").fit([r for j, r in enumerate(refs) if j != i])
            loo.append(float(model.predict([ref]).score[0]))
    mean = sum(loo) / 3
    by_hand = max(loo) + math.sqrt(sum((s - mean) ** 2 for s in loo) / 3)
    recorded = few_shot["first"]["threshold"]
    assert recorded["source"] == "leave-one-out"
    assert recorded["value"] == pytest.approx(by_hand, abs=1e-5)
    assert sorted(recorded["loo_scores"]) == pytest.approx(sorted(loo), abs=1e-5)
    decisions = few_shot["scores"].set_index("name")
    for row in decisions.itertuples():
        assert row.decision == ("anomalous" if row.score > recorded["value"] else "normal")


def test_threshold_rules():
    assert loo_threshold([0.2, 0.4]) == pytest.approx(0.4 + 0.1)
    assert choose_threshold(None, [0.3]).value is None and "only one normal reference" in choose_threshold(
        None, [0.3]).explanation
    assert choose_threshold(0.5, [0.1, 0.2]).value == 0.5 and choose_threshold(0.5, [0.1, 0.2]).source == "given"
    assert decide([0.1, 0.5, 0.7], 0.5) == ["normal", "normal", "anomalous"]
    assert decide([0.1, 0.9], None) == ["n/a", "n/a"]
    with pytest.raises(ValueError, match="finite"):
        choose_threshold(float("nan"))


def test_a_given_threshold_decides_and_zero_shot_without_one_says_why(photos, tiny, tmp_path):
    cfg = RunConfig.from_settings(model_name=TINY_MODEL, pretrained="none", precision="fp32", device="cpu",
                                  cache_dir=str(tmp_path / "cache"))
    files = [str(p) for p in photos["readable"]]
    undecided = inspect_images(cfg, "metal disc", files, out_dir=tmp_path / "a", backbone=tiny, progress=False,
                               log=None)
    assert undecided.exit_status == 0 and set(undecided.run.table()["decision"]) == {"n/a"}
    assert "no decision: no normal reference and no --threshold" in undecided.page.read_text()
    t = float(np.median(undecided.run.score))
    decided = inspect_images(cfg, "metal disc", files, out_dir=tmp_path / "b", threshold=t, backbone=tiny,
                             progress=False, log=None, embed=False)
    table = pd.read_csv(tmp_path / "b" / "scores.csv")
    assert list(table["decision"]) == ["anomalous" if s > t else "normal" for s in table["score"]]
    assert (table["decision"] == "anomalous").sum() == 2
    page = decided.page.read_text()  # linked, not embedded: every link is a file next to the page
    links = re.findall(r'<img src="([^"]+)"', page)
    assert len(links) == 5 and all((tmp_path / "b" / link).is_file() for link in links)


def test_no_matching_input_is_a_usage_error_naming_the_pattern(tmp_path, capsys):
    out = tmp_path / "out"
    pattern = str(tmp_path / "nowhere" / "*.png")
    assert main(["predict", pattern, "--class-name", "x", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and pattern in err and "Traceback" not in err
    assert not out.exists()
    (tmp_path / "img").mkdir()
    Image.fromarray(_photo(0, 32, 32)).save(tmp_path / "img" / "a.png")
    assert main(["predict", str(tmp_path / "img"), "--class-name", "x", "--normal", str(tmp_path / "none"),
                 "--out", str(out)]) == 2
    assert "--normal" in capsys.readouterr().err and not out.exists()


def test_when_every_file_fails_the_errors_are_written_and_the_status_is_3(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (bad / "b.csv").write_text("x,y\n")
    out = tmp_path / "out"
    assert main(["predict", str(bad), "--class-name", "x", "--out", str(out), "--model", TINY_MODEL,
                 "--pretrained", "none", "--no-progress"]) == 3
    assert "2 file(s) skipped" in capsys.readouterr().err
    assert len(pd.read_csv(out / "errors.csv")) == 2 and pd.read_csv(out / "scores.csv").empty
    page = (out / "report.html").read_text()
    assert "No image could be scored" in page and "a.png" in page and "b.csv" in page


def test_an_output_folder_holding_other_files_is_refused(photos, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    assert main(["predict", str(photos["data"] / "wide.png"), "--class-name", "x", "--out", str(out)]) == 2
    assert "holds other files" in capsys.readouterr().err and (out / "thesis.tex").read_text() == "keep me"


def test_predict_offers_the_run_settings_with_the_same_flags_and_defaults():
    parser = experiments_cli.build_parser(extra=(PREDICT,))
    sub = parser._subparsers._group_actions[0].choices
    run_help, predict_help = (" ".join(sub[c].format_help().split()) for c in ("run", "predict"))
    for name in PREDICT_SETTINGS:
        action = next(a for a in sub["predict"]._actions if a.dest == name)
        twin = next(a for a in sub["run"]._actions if a.dest == name)
        assert action.option_strings == twin.option_strings and action.help == twin.help
        assert action.choices == twin.choices and " ".join(action.help.split()) in run_help
    assert "--shots" not in predict_help and "--model" in predict_help and "{auto,fp32,bf16,fp16}" in predict_help
    cfg = predict_config(parser.parse_args(["predict", "x", "--class-name", "y"]))
    assert cfg.precision == "auto" and cfg.model_name == RunConfig().model_name
    with pytest.raises(ValueError, match="not command-line settings"):
        experiments_cli.add_config_arguments(argparse.ArgumentParser(), include=("datasets",))


def test_the_console_command_is_the_top_level_cli():
    """`winclip` is winclip_lib.cli:main (the experiment commands plus predict), not the experiments layer's."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["winclip"] == "winclip_lib.cli:main"


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
