"""Loaders on tiny generated folders in each official layout, image/mask I/O, resizing, references, class names."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from winclip_lib.core.geometry import resize_image, resize_mask
from winclip_lib.core.imageio import ImageError, load_image
from winclip_lib.datasets.catalog import (
    CATEGORIES,
    DATASETS,
    MPDD_CATEGORIES,
    MVTEC_CATEGORIES,
    VISA_CATEGORIES,
    DatasetError,
    Sample,
    class_name,
)
from winclip_lib.datasets.counts import EXPECTED_COUNTS, EXPECTED_TOTALS, Counts
from winclip_lib.datasets.layout import detect_layout, list_categories
from winclip_lib.datasets.masks import load_mask
from winclip_lib.datasets.references import sample_references
from winclip_lib.datasets.scan import load_split, scan_split

H, W = 24, 32  # non-square, to catch transposed shapes


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def write_mask(path: Path, mask: np.ndarray, value: int = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * value).save(path)
    return path


def rand_rgb(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def box_mask(y0: int, x0: int, h: int = H, w: int = W, s: int = 5) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0 : y0 + s, x0 : x0 + s] = True
    return m


def make_mvtec_tree(
    root: Path, categories=("bottle", "carpet"), n_train=3, n_good=2, defects=("broken", "crack"), suffix="_mask"
) -> Path:
    """MVTec layout: train/good, test/good, test/<defect>, ground_truth/<defect>/<name><suffix>.png."""
    rng = np.random.default_rng(0)
    for c in categories:
        for i in range(n_train):
            write_rgb(root / c / "train" / "good" / f"{i:03d}.png", rand_rgb(rng))
        for i in range(n_good):
            write_rgb(root / c / "test" / "good" / f"{i:03d}.png", rand_rgb(rng))
        for d in defects:
            for i in range(2):
                write_rgb(root / c / "test" / d / f"{i:03d}.png", rand_rgb(rng))
                write_mask(root / c / "ground_truth" / d / f"{i:03d}{suffix}.png", box_mask(3 + i, 4))
    return root


def make_visa_raw(root: Path, objects=("candle", "pcb1")) -> Path:
    """Official VisA layout with JPEG images, multi-class masks (values 1, 2) and split_csv/1cls.csv."""
    rng = np.random.default_rng(1)
    rows = []
    for obj in objects:
        for i in range(5):
            p = write_rgb(root / obj / "Data" / "Images" / "Normal" / f"{i:04d}.JPG", rand_rgb(rng))
            rows.append([obj, "train" if i < 3 else "test", "normal", str(p.relative_to(root)), ""])
        for i in range(3):
            p = write_rgb(root / obj / "Data" / "Images" / "Anomaly" / f"{i:03d}.JPG", rand_rgb(rng))
            m = np.zeros((H, W), np.uint8)
            m[2:6, 2:6] = 1
            m[10:12, 20:25] = 2
            mp = root / obj / "Data" / "Masks" / "Anomaly" / f"{i:03d}.png"
            mp.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(mp)
            rows.append([obj, "test", "anomaly", str(p.relative_to(root)), str(mp.relative_to(root))])
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    with (root / "split_csv" / "1cls.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["object", "split", "label", "image", "mask"])
        w.writerows(rows)
    return root


@pytest.fixture
def mvtec(tmp_path: Path) -> Path:
    return make_mvtec_tree(tmp_path / "mvtec")


# ------------------------------------------------------------------------------------------ constants


def test_constants_and_expected_counts():
    assert DATASETS[:3] == ("mvtec", "visa", "mpdd")
    assert (len(MVTEC_CATEGORIES), len(VISA_CATEGORIES), len(MPDD_CATEGORIES)) == (15, 12, 6)
    for name, cats in CATEGORIES.items():
        if name not in EXPECTED_TOTALS:
            continue
        assert tuple(EXPECTED_COUNTS[name]) == cats
        total = sum(EXPECTED_COUNTS[name].values(), Counts(0, 0, 0))
        assert total == EXPECTED_TOTALS[name]
    assert EXPECTED_TOTALS["mvtec"] == Counts(3629, 467, 1258) and EXPECTED_TOTALS["mvtec"].test == 1725
    assert EXPECTED_TOTALS["visa"].test == 2162 and EXPECTED_TOTALS["visa"].train == 8659
    assert EXPECTED_TOTALS["mpdd"].test == 458 and EXPECTED_TOTALS["mpdd"].train == 888


# ------------------------------------------------------------------------------------------ loaders


def test_list_categories_canonical_order_then_extras(tmp_path):
    root = make_mvtec_tree(tmp_path / "r", categories=("zipper", "bottle", "aaa_extra"), n_train=1)
    (root / "not_a_category").mkdir()
    assert list_categories("mvtec", root) == ["bottle", "zipper", "aaa_extra"]
    with pytest.raises(ValueError, match="mvtec, visa, mpdd"):
        list_categories("mvtec_ad", root)


def test_load_split_mvtec(mvtec):
    train = load_split("mvtec", mvtec, "bottle", "train")
    assert [s.image_path.name for s in train] == ["000.png", "001.png", "002.png"]
    assert all(s.label == 0 and s.defect == "good" and s.mask_path is None and s.split == "train" for s in train)
    test = load_split("mvtec", mvtec, "bottle", "test")
    assert [(s.defect, s.image_path.name) for s in test] == [
        ("broken", "000.png"), ("broken", "001.png"), ("crack", "000.png"), ("crack", "001.png"),
        ("good", "000.png"), ("good", "001.png"),
    ]  # fmt: skip
    bad = [s for s in test if s.label == 1]
    assert len(bad) == 4 and all(s.mask_path.name.endswith("_mask.png") for s in bad)
    assert bad[0].mask_path == mvtec / "bottle" / "ground_truth" / "broken" / "000_mask.png"
    assert all(s.dataset == "mvtec" and s.category == "bottle" for s in test)
    assert test == load_split("mvtec", str(mvtec), "bottle", "test")  # deterministic, str root accepted
    with pytest.raises(dataclasses.FrozenInstanceError):
        test[0].label = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown split"):
        load_split("mvtec", mvtec, "bottle", "val")


def test_load_split_mpdd(tmp_path):
    root = make_mvtec_tree(tmp_path / "mpdd", categories=("tubes", "bracket_black"), defects=("flattening",))
    assert list_categories("mpdd", root) == ["bracket_black", "tubes"]
    test = load_split("mpdd", root, "tubes", "test")
    assert sum(s.label for s in test) == 2 and len(test) == 4
    assert {s.dataset for s in test} == {"mpdd"}
    assert load_mask(test[0]).sum() == 25


def test_load_split_visa_raw(tmp_path):
    root = make_visa_raw(tmp_path / "visa")
    assert detect_layout("visa", root) == "visa_raw"
    assert list_categories("visa", root) == ["candle", "pcb1"]
    train = load_split("visa", root, "pcb1", "train")
    assert len(train) == 3 and all(s.label == 0 and s.split == "train" for s in train)
    test = load_split("visa", root, "pcb1", "test")
    assert [s.label for s in test] == [0, 0, 1, 1, 1]
    anomalous = test[2]
    assert anomalous.mask_path == root / "pcb1" / "Data" / "Masks" / "Anomaly" / "000.png"
    assert anomalous.image_path.suffix == ".JPG" and anomalous.defect == "bad"
    mask = load_mask(anomalous)  # multi-class values 1 and 2 are both defect
    assert mask.dtype == bool and mask.shape == (H, W) and mask.sum() == 16 + 10
    assert load_image(anomalous.image_path).shape == (H, W, 3)


def test_load_split_visa_reorganised_1cls(tmp_path):
    root = make_mvtec_tree(tmp_path / "visa_1cls", categories=("pcb1", "candle"), defects=("bad",), suffix="")
    assert detect_layout("visa", root) == "mvtec"
    assert list_categories("visa", root) == ["candle", "pcb1"]
    test = load_split("visa", root, "candle", "test")
    bad = [s for s in test if s.label]
    assert len(bad) == 2 and bad[0].mask_path == root / "candle" / "ground_truth" / "bad" / "000.png"


# ------------------------------------------------------------------------------------------ image I/O


def test_load_image_rgb_order_grayscale_rgba_palette(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[:, :5, 2] = 50
    p = tmp_path / "bgr.png"
    cv2.imwrite(str(p), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(load_image(p), rgb)

    gray = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.stack([gray] * 3, axis=2))

    rgba = np.concatenate([rgb, np.full((H, W, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgb)  # alpha dropped, colour kept

    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))


def test_load_image_16bit_scaled_not_clipped(tmp_path):
    v8 = np.arange(H * W, dtype=np.uint16).reshape(H, W) % 256
    g16 = v8 * 257
    g16[0, 0], g16[0, 1] = 1000, 65535  # 1000 / 257 = 3.89 -> 4
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    out = load_image(tmp_path / "g16.png")
    expected = v8.astype(np.uint8)
    expected[0, 0], expected[0, 1] = 4, 255
    np.testing.assert_array_equal(out, np.stack([expected] * 3, axis=2))

    rgb16 = np.zeros((H, W, 3), np.uint16)
    rgb16[..., 0] = 40000  # red -> round(40000 / 257) = 156
    rgb16[..., 2] = 257 * 10
    cv2.imwrite(str(tmp_path / "c16.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    out = load_image(tmp_path / "c16.png")
    assert out.dtype == np.uint8 and tuple(out[0, 0]) == (156, 0, 10)

    Image.fromarray(g16.astype(np.uint16)).save(tmp_path / "g16.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "g16.tif")[..., 0], expected)


@pytest.mark.parametrize("kind", ["garbage", "truncated_png", "truncated_jpg", "empty"])
def test_load_image_corrupt_raises_naming_file(tmp_path, kind):
    rng = np.random.default_rng(0)
    p = tmp_path / ("x.jpg" if kind == "truncated_jpg" else "x.png")
    if kind == "garbage":
        p.write_bytes(b"not an image at all" * 10)
    elif kind == "empty":
        p.write_bytes(b"")
    else:
        write_rgb(p, rand_rgb(rng, 64, 64))
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="re-download") as info:
        load_image(p)
    assert str(p) in str(info.value)
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")


def test_load_mask_variants(tmp_path):
    m = box_mask(2, 3)
    write_mask(tmp_path / "m255.png", m)
    write_mask(tmp_path / "m1.png", m, value=1)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[m] = (0, 0, 9)  # only the blue channel is set
    Image.fromarray(rgb).save(tmp_path / "mrgb.png")
    for name in ("m255.png", "m1.png", "mrgb.png"):
        out = load_mask(tmp_path / name)
        assert out.dtype == bool
        np.testing.assert_array_equal(out, m)
    sample = Sample(
        "mvtec", "x", "test", 0, "good", write_rgb(tmp_path / "n.png", rand_rgb(np.random.default_rng())), None
    )
    normal = load_mask(sample)
    assert normal.shape == (H, W) and not normal.any()
    assert load_mask(None, image_shape=(5, 6)).shape == (5, 6)
    with pytest.raises(ValueError, match="image_shape"):
        load_mask(None)


def test_mask_of_different_size_names_both_files(tmp_path):
    img = write_rgb(tmp_path / "img.png", rand_rgb(np.random.default_rng(), H, W))
    mask = write_mask(tmp_path / "img_mask.png", np.ones((H + 1, W), bool))
    s = Sample("mvtec", "x", "test", 1, "d", img, mask)
    with pytest.raises(DatasetError) as info:
        load_mask(s)
    assert str(img) in str(info.value) and str(mask) in str(info.value)
    with pytest.raises(DatasetError, match=str(mask)):
        load_mask(mask, image_shape=(H, W))


# ------------------------------------------------------------------------------------------ bad layouts


def test_anomalous_image_without_mask_names_file(mvtec):
    (mvtec / "bottle" / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(DatasetError) as info:
        load_split("mvtec", mvtec, "bottle", "test")
    assert str(mvtec / "bottle" / "test" / "crack" / "001.png") in str(info.value)
    assert "001_mask.png" in str(info.value)
    samples, problems = scan_split("mvtec", mvtec, "bottle", "test")
    assert len(problems) == 1 and len(samples) == 6
    assert [s for s in samples if s.label and s.mask_path is None][0].image_path.name == "001.png"


def test_visa_raw_missing_mask_and_missing_image(tmp_path):
    root = make_visa_raw(tmp_path / "visa")
    (root / "candle" / "Data" / "Masks" / "Anomaly" / "001.png").unlink()
    (root / "candle" / "Data" / "Images" / "Normal" / "0004.JPG").unlink()
    with pytest.raises(DatasetError) as info:
        load_split("visa", root, "candle", "test")
    msg = str(info.value)
    assert "Anomaly/001.JPG has no mask" in msg and "Normal/0004.JPG" in msg


def test_unknown_empty_category_and_wrong_root(mvtec, tmp_path):
    with pytest.raises(DatasetError, match="'cable' not found.*bottle, carpet"):
        load_split("mvtec", mvtec, "cable", "test")
    (mvtec / "cable").mkdir()
    with pytest.raises(DatasetError, match="cable is empty"):
        load_split("mvtec", mvtec, "cable", "test")
    (mvtec / "pill" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no train images"):
        load_split("mvtec", mvtec, "pill", "train")
    with pytest.raises(DatasetError, match="single category folder; pass its parent"):
        load_split("mvtec", mvtec / "bottle", "bottle", "test")
    with pytest.raises(DatasetError, match=f"one level down: pass {mvtec}"):
        load_split("mvtec", tmp_path, "bottle", "test")
    with pytest.raises(DatasetError, match="does not exist"):
        load_split("mvtec", tmp_path / "nope", "bottle", "test")
    with pytest.raises(ValueError, match="valid datasets"):
        load_split("no_such_dataset", mvtec, "bottle", "test")


def test_visa_raw_without_split_csv(tmp_path):
    root = make_visa_raw(tmp_path / "visa")
    (root / "split_csv" / "1cls.csv").unlink()
    with pytest.raises(DatasetError, match="split_csv/1cls.csv"):
        load_split("visa", root, "candle", "test")


# ------------------------------------------------------------------------------------------ resizing


def test_resize_image_cubic_and_clipping():
    rng = np.random.default_rng(0)
    img = rand_rgb(rng, 50, 70)
    out = resize_image(img, 24)
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.resize(img, (24, 24), interpolation=cv2.INTER_CUBIC))
    checker = ((np.indices((40, 40)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)
    up = resize_image(checker, 97)  # bicubic overshoots; must saturate, not wrap around
    ref = np.clip(np.rint(cv2.resize(checker.astype(np.float32), (97, 97), interpolation=cv2.INTER_CUBIC)), 0, 255)
    assert np.abs(up.astype(int) - ref).max() <= 1 and up.max() == 255 and up.min() == 0
    assert resize_image(np.full((30, 40, 3), 77, np.uint8), (10, 20)).shape == (10, 20, 3)
    assert (resize_image(np.full((30, 40, 3), 77, np.uint8), 16, interpolation="pil_bicubic") == 77).all()
    with pytest.raises(ValueError, match="interpolation"):
        resize_image(img, 10, interpolation="lanczos")


def test_resize_mask_area_threshold_vs_nearest():
    m = np.zeros((8, 8), bool)
    m[0:4, 0:2] = True  # left half of the top-left 4x4 block: coverage exactly 0.5 -> kept by ">= 0.5"
    m[4:8, 4:5] = True  # quarter of the bottom-right block: 0.25 -> dropped
    out = resize_mask(m, 2)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, [[True, False], [False, False]])
    line = np.zeros((40, 40), bool)
    line[:, 21] = True  # a 1-px line vanishes under area; under nearest it survives only where sampled
    assert not resize_mask(line, 10).any()
    assert resize_mask(line, 20, method="nearest")[:, 10].all()
    assert not resize_mask(np.roll(line, 1, axis=1), 20, method="nearest").any()
    up = resize_mask(np.eye(2, dtype=bool), 4)
    np.testing.assert_array_equal(up, np.kron(np.eye(2), np.ones((2, 2))).astype(bool))
    with pytest.raises(ValueError, match="method"):
        resize_mask(m, 4, method="cubic")


def test_mask_and_image_resized_with_same_geometry():
    h, w = 60, 90
    m = np.zeros((h, w), bool)
    m[10:30, 50:80] = True
    img = np.where(m[..., None], 255, 0).astype(np.uint8).repeat(3, 2)
    r_img = resize_image(img, 24)[..., 0] >= 128
    r_mask = resize_mask(m, 24)
    assert (r_img != r_mask).sum() <= 4  # same box, borders may differ by interpolation only
    ys, xs = np.nonzero(r_mask)
    assert ys.min() == 4 and ys.max() == 11 and xs.min() == 13 and xs.max() == 20


# ------------------------------------------------------------------------------------------ references


def test_sample_references_deterministic_without_replacement(tmp_path):
    root = make_mvtec_tree(tmp_path / "r", categories=("bottle",), n_train=10)
    normal = load_split("mvtec", root, "bottle", "train")
    draws = {seed: sample_references("mvtec", root, "bottle", 4, seed) for seed in (0, 1, 2, 3, 4)}
    for seed, refs in draws.items():
        assert len({r.image_path for r in refs}) == 4
        assert refs == sample_references("mvtec", root, "bottle", 4, seed)
        perm = np.random.default_rng(seed).permutation(10)[:4]
        assert refs == [normal[i] for i in perm]
        assert sample_references("mvtec", root, "bottle", 2, seed) == refs[:2]  # nested across k
    assert len({tuple(r.image_path for r in refs) for refs in draws.values()}) == 5
    assert [r.image_path.name for r in draws[0]] == [normal[i].image_path.name for i in [4, 6, 2, 7]]  # pinned draw


def test_sample_references_bad_k(tmp_path):
    root = make_mvtec_tree(tmp_path / "r", categories=("bottle",), n_train=3)
    with pytest.raises(DatasetError, match="only 3 normal training images"):
        sample_references("mvtec", root, "bottle", 4, 0)
    with pytest.raises(ValueError, match="positive"):
        sample_references("mvtec", root, "bottle", 0, 0)
    assert len(sample_references("mvtec", root, "bottle", 3, 0)) == 3


# ------------------------------------------------------------------------------------------ class names


def test_class_names():
    expected = {
        "metal_nut": "metal nut", "pcb1": "printed circuit board", "pcb4": "printed circuit board",
        "macaroni1": "macaroni", "macaroni2": "macaroni", "pipe_fryum": "pipe fryum", "chewinggum": "chewing gum",
        "bracket_black": "black bracket", "bracket_white": "white bracket", "metal_plate": "metal plate",
        "bottle": "bottle", "capsules": "capsules", "tubes": "tubes", "some_new_thing": "some new thing",
    }  # fmt: skip
    for folder, word in expected.items():
        assert class_name(folder) == word
    assert class_name("pcb1", "visa", overrides={"pcb1": "circuit board"}) == "circuit board"
    assert class_name("bottle", "mvtec", overrides={"pcb1": "x"}) == "bottle"
    with pytest.raises(ValueError):
        class_name("bottle", "nope")
