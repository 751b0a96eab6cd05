"""data_prep: verify (tables, counts, every bad file named), make_synthetic CLI, safe extraction of fake archives."""

from __future__ import annotations

import csv
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import extract as ex
from data_prep import make_synthetic as mk
from data_prep import verify as vf
from winclip_lib.datasets.counts import Counts
from winclip_lib.datasets.layout import detect_layout, list_categories
from winclip_lib.datasets.scan import load_split
from winclip_lib.datasets.synthetic import make_synthetic

H, W = 16, 20


def _img(path: Path, seed: int, size=(H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def _mask(path: Path, size=(H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros(size, np.uint8)
    m[2:6, 3:9] = 255
    Image.fromarray(m).save(path)


def fake_mvtec(root: Path, categories=("bottle", "screw")) -> Path:
    """2 train, 1 good test, 2 anomalous (one defect type) per category."""
    for k, c in enumerate(categories):
        for i in range(2):
            _img(root / c / "train" / "good" / f"{i:03d}.png", 10 * k + i)
        _img(root / c / "test" / "good" / "000.png", 10 * k + 5)
        for i in range(2):
            _img(root / c / "test" / "crack" / f"{i:03d}.png", 10 * k + 6 + i)
            _mask(root / c / "ground_truth" / "crack" / f"{i:03d}_mask.png")
    (root / "license.txt").write_text("fake\n")
    return root


def fake_visa_raw(root: Path, with_csv: bool = True) -> Path:
    rows = []
    for i in range(3):
        p = root / "candle" / "Data" / "Images" / "Normal" / f"{i:04d}.JPG"
        _img(p, i)
        rows.append(["candle", "train" if i < 2 else "test", "normal", str(p.relative_to(root)), ""])
    p = root / "candle" / "Data" / "Images" / "Anomaly" / "000.JPG"
    _img(p, 9)
    mp = root / "candle" / "Data" / "Masks" / "Anomaly" / "000.png"
    _mask(mp)
    rows.append(["candle", "test", "anomaly", str(p.relative_to(root)), str(mp.relative_to(root))])
    if with_csv:
        (root / "split_csv").mkdir(parents=True, exist_ok=True)
        with (root / "split_csv" / "1cls.csv").open("w", newline="") as f:
            csv.writer(f).writerows([["object", "split", "label", "image", "mask"], *rows])
    return root


# ------------------------------------------------------------------------------------------ verify


@pytest.fixture
def synthetic(tmp_path) -> Path:
    return make_synthetic(tmp_path / "syn", size=48, n_train=3, n_test_good=2, n_test_bad=3)


def test_verify_synthetic_ok(synthetic, capsys):
    report = vf.verify_root("mvtec", synthetic)
    assert report.ok, report.all_problems
    assert [r.category for r in report.rows] == ["disc", "tiles"]
    assert [(r.train, r.test, r.normal, r.anomalous, r.masks) for r in report.rows] == [(3, 5, 2, 3, 3)] * 2
    assert report.total == Counts(6, 4, 6) == report.expected_total
    assert vf.main(["--dataset", "mvtec", "--root", str(synthetic)]) == 0
    out = capsys.readouterr().out
    assert "disc" in out and "3/2/3" in out and "total" in out and "OK:" in out


def test_verify_names_every_bad_file(synthetic, capsys):
    tiles = synthetic / "tiles"
    (tiles / "ground_truth" / "spot" / "000_mask.png").unlink()
    corrupt = tiles / "train" / "good" / "001.png"
    corrupt.write_bytes(corrupt.read_bytes()[:60])
    wrong = synthetic / "disc" / "ground_truth" / "scratch" / "000_mask.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(wrong)
    report = vf.verify_root("mvtec", synthetic)
    problems = "\n".join(report.all_problems)
    assert not report.ok and len(report.all_problems) == 3, problems
    assert str(tiles / "test" / "spot" / "000.png") in problems and "has no mask" in problems
    assert f"cannot read image {corrupt}" in problems
    assert str(wrong) in problems and str(synthetic / "disc" / "test" / "scratch" / "000.png") in problems
    tiles_row = report.rows[1]
    assert (tiles_row.anomalous, tiles_row.masks) == (3, 2)
    assert vf.main(["--dataset", "mvtec", "--root", str(synthetic)]) == 1
    assert "3 problem(s)" in capsys.readouterr().out
    quick = vf.verify_root("mvtec", synthetic, check_files=False)
    assert len(quick.all_problems) == 1  # only the missing mask: files are not decoded


def test_verify_official_counts_and_missing_categories(tmp_path):
    root = fake_mvtec(tmp_path / "mvtec")
    report = vf.verify_root("mvtec", root)
    problems = report.all_problems
    assert sum("is missing" in p for p in problems) == 13  # 15 categories, 2 present
    assert "bottle: 2 train images, expected 209" in problems
    assert "screw: 2 test anomalous images, expected 119" in problems
    only = vf.verify_root("mvtec", root, categories=["bottle"])
    assert [r.category for r in only.rows] == ["bottle"] and not any("is missing" in p for p in only.all_problems)
    text = vf.format_report(report)
    assert "209/20/63" in text and "529/61/182" in text and "MISMATCH" in text  # total of the present categories


def test_verify_visa_raw_and_bad_roots(tmp_path):
    root = fake_visa_raw(tmp_path / "visa")
    report = vf.verify_root("visa", root, categories=["candle"])
    assert report.layout == "visa_raw"
    assert [(r.train, r.normal, r.anomalous, r.masks) for r in report.rows] == [(2, 1, 1, 1)]
    assert all("expected" in p for p in report.all_problems)  # only count mismatches vs the official split
    bad = vf.verify_root("mvtec", root / "candle")
    assert not bad.ok and not bad.rows and "no mvtec categories found" in bad.problems[0]
    missing = vf.verify_root("mpdd", tmp_path / "nowhere")
    assert "does not exist" in missing.problems[0]


def test_make_synthetic_cli(tmp_path, capsys):
    root = tmp_path / "cli"
    assert mk.main(["--root", str(root), "--size", "40", "--n-train", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "OK:" in out and list_categories("mvtec", root) == ["disc", "tiles"]
    (tmp_path / "occupied" / "x").mkdir(parents=True)
    assert mk.main(["--root", str(tmp_path / "occupied")]) == 2


# ------------------------------------------------------------------------------------------ extract


def _tar(path: Path, src: Path, arcroot: str, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        tf.add(src, arcname=arcroot)
    return path


def _zip(path: Path, src: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, prefix + str(p.relative_to(src)))
    return path


@pytest.mark.parametrize("kind", ["tar.xz", "tar.gz", "tar", "zip"])
def test_extract_archives(tmp_path, kind):
    src = fake_mvtec(tmp_path / "src")
    name = f"mvtec_anomaly_detection.{kind}"
    if kind == "zip":
        archive = _zip(tmp_path / name, src, prefix="MVTec/")  # nested one level
    else:
        archive = _tar(tmp_path / name, src, ".", {"tar.xz": "w:xz", "tar.gz": "w:gz", "tar": "w"}[kind])
    root = tmp_path / "data" / "mvtec"
    report = ex.extract_dataset("mvtec", archive, root)
    assert sorted(p.name for p in root.iterdir()) == ["bottle", "license.txt", "screw"]  # no staging left
    assert [(r.category, r.train, r.normal, r.anomalous, r.masks) for r in report.rows] == [
        ("bottle", 2, 1, 2, 2), ("screw", 2, 1, 2, 2),
    ]  # fmt: skip
    assert all("expected" in p for p in report.all_problems)  # layout and files fine; counts are not official
    assert len(load_split("mvtec", root, "screw", "test")) == 3


def test_extract_refuses_path_traversal_and_links(tmp_path):
    src = fake_mvtec(tmp_path / "src", categories=("bottle",))
    evil_tar = _tar(tmp_path / "evil.tar", src, ".", "w")
    with tarfile.open(evil_tar, "a") as tf:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    evil_zip = _zip(tmp_path / "evil.zip", src)
    with zipfile.ZipFile(evil_zip, "a") as zf:
        zf.writestr("bottle/../../evil.txt", b"evil")
    link_tar = tmp_path / "link.tar"
    with tarfile.open(link_tar, "w") as tf:
        info = tarfile.TarInfo("bottle/train/good/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    abs_zip = tmp_path / "abs.zip"
    with zipfile.ZipFile(abs_zip, "w") as zf:
        zf.writestr("/tmp/abs_evil.txt", b"evil")
    root = tmp_path / "out"
    for archive, member in ((evil_tar, "../evil.txt"), (evil_zip, "bottle/../../evil.txt"),
                            (link_tar, "bottle/train/good/link.png"), (abs_zip, "/tmp/abs_evil.txt")):  # fmt: skip
        with pytest.raises(ex.ArchiveError, match="unsafe member") as info:
            ex.extract_dataset("mvtec", archive, root)
        assert repr(member) in str(info.value)
    assert not (tmp_path / "evil.txt").exists() and not root.exists()  # nothing written at all
    assert ex.main(["--dataset", "mvtec", "--archive", str(evil_tar), "--root", str(root)]) == 2


def test_extract_errors(tmp_path):
    src = fake_mvtec(tmp_path / "src", categories=("bottle",))
    archive = _tar(tmp_path / "m.tar.gz", src, "mvtec")
    root = tmp_path / "out"
    ex.extract_dataset("mvtec", archive, root, verify=False)
    with pytest.raises(ex.ArchiveError, match="already exist"):
        ex.extract_dataset("mvtec", archive, root)
    (root / "bottle" / "train" / "good" / "000.png").unlink()
    ex.extract_dataset("mvtec", archive, root, overwrite=True, verify=False)
    assert (root / "bottle" / "train" / "good" / "000.png").is_file()
    with pytest.raises(ex.ArchiveError, match="no mpdd category folders"):
        ex.extract_dataset("mpdd", archive, tmp_path / "mpdd")
    assert not any((tmp_path / "mpdd").iterdir())  # staging removed
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(ex.ArchiveError, match="re-download"):
        ex.extract_dataset("mvtec", truncated, tmp_path / "t")
    with pytest.raises(ex.ArchiveError, match="unsupported archive type"):
        ex.archive_kind(tmp_path / "x.rar")
    with pytest.raises(ex.ArchiveError, match="does not exist"):
        ex.extract_dataset("mvtec", tmp_path / "none.zip", root)


def test_extract_visa_with_split_csv(tmp_path):
    src = fake_visa_raw(tmp_path / "src", with_csv=False)
    csv_src = tmp_path / "1cls.csv"
    shutil.copy(fake_visa_raw(tmp_path / "csvsrc") / "split_csv" / "1cls.csv", csv_src)
    archive = _tar(tmp_path / "VisA_20220922.tar", src, ".", "w")
    root = tmp_path / "visa"
    with pytest.raises(ex.ArchiveError, match="not VisA's split file"):
        bogus = tmp_path / "bogus.csv"
        bogus.write_text("a,b\n1,2\n")
        ex.install_split_csv(bogus, root)
    assert (
        ex.main(
            [
                "--dataset",
                "visa",
                "--archive",
                str(archive),
                "--root",
                str(root),
                "--split-csv",
                str(csv_src),
                "--quick",
            ]
        )
        == 1
    )  # fmt: skip  (counts are not the official ones)
    assert (root / "split_csv" / "1cls.csv").is_file() and detect_layout("visa", root) == "visa_raw"
    assert [s.label for s in load_split("visa", root, "candle", "test")] == [0, 1]


def test_verify_lists_masks_that_look_wrong_as_warnings(synthetic, capsys):
    empty = synthetic / "disc" / "ground_truth" / "scratch" / "000_mask.png"
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(empty)
    (synthetic / "tiles" / "ground_truth" / "good").mkdir()
    stray = synthetic / "tiles" / "ground_truth" / "good" / "001_mask.png"
    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(stray)
    report = vf.verify_root("mvtec", synthetic)
    assert report.ok and len(report.all_warnings) == 2  # the layout and files are right: warnings, not problems
    assert f"{synthetic / 'disc' / 'test' / 'scratch' / '000.png'} is an anomalous test image but its mask {empty}" \
        in report.all_warnings[0]
    assert f"{synthetic / 'tiles' / 'test' / 'good' / '001.png'} is a good test image but has a mask {stray}" \
        in report.all_warnings[1]
    assert vf.main(["--dataset", "mvtec", "--root", str(synthetic)]) == 0
    out = capsys.readouterr().out
    assert "2 warning(s):" in out and str(empty) in out and str(stray) in out
    assert vf.verify_root("mvtec", synthetic, check_files=False).all_warnings == report.all_warnings[1:]
