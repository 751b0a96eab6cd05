"""Extract a downloaded official dataset archive into the layout the loaders expect, then verify it.

    python -m data_prep.extract --dataset mvtec --archive ~/Downloads/mvtec_anomaly_detection.tar.xz --root data/mvtec
    python -m data_prep.extract --dataset visa --archive ~/Downloads/VisA_20220922.tar --root data/visa \\
        --split-csv ~/Downloads/1cls.csv
    python -m data_prep.extract --dataset mpdd --archive ~/Downloads/MPDD.zip --root data/mpdd
    python -m data_prep.extract --dataset btad --archive ~/Downloads/btad.zip --root data/btad

Accepts ``.tar.xz``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar`` and ``.zip``. Every member is checked before
anything is written: absolute paths, ``..`` components, links and special files are refused (the whole archive is
refused, naming the member). The archive is unpacked into a temporary folder inside ``--root``; the folder that holds
the category folders is found (wherever the archive nests it) and its contents are moved into ``--root`` only once
extraction succeeded, so an interrupted run leaves nothing that looks complete. No network access.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from data_prep.verify import VerifyReport, format_report, verify_root
from winclip_lib.datasets.catalog import CATEGORIES, DATASETS
from winclip_lib.datasets.formats import FORMATS
from winclip_lib.datasets.layout import VISA_SPLIT_CSV

__all__ = [
    "ARCHIVE_NAMES",
    "ArchiveError",
    "archive_kind",
    "check_members",
    "safe_extract",
    "find_dataset_root",
    "install_split_csv",
    "extract_dataset",
    "main",
]

# File names of the official downloads (any name works; these are what the publishers serve).
ARCHIVE_NAMES = {
    "mvtec": ("mvtec_anomaly_detection.tar.xz",),
    "visa": ("VisA_20220922.tar",),
    "mpdd": ("MPDD.zip", "mpdd.zip"),
    "btad": ("btad.zip",),
    "ksdd": ("KolektorSDD.zip",),
    "ksdd2": ("KolektorSDD2.zip",),
    "dagm": ("Class1.zip", "archive.zip"),
    "dtd": ("DTD-Synthetic.zip",),
    "loco": ("mvtec_loco_anomaly_detection.tar.xz",),
    "mvtec2": ("mvtec_ad_2.tar.gz",),
}
#: Datasets that come as one archive (DAGM: one per class, extracted one after the other). Real-IAD comes as one
#: archive per object plus the split files: unzip them as its README says (data_prep/README.md), then verify.
ARCHIVED = tuple(ARCHIVE_NAMES)


class ArchiveError(ValueError):
    """The archive is unreadable, unsafe, or does not hold the expected dataset."""


def archive_kind(path: str | Path) -> str:
    """``"tar"`` or ``"zip"`` from the file name (.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2, .zip)."""
    name = Path(path).name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")):
        return "tar"
    raise ArchiveError(f"{path}: unsupported archive type; expected .tar.xz, .tar.gz, .tar, .tar.bz2 or .zip")


def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to extract, or None."""
    if not name or "\x00" in name:
        return "empty or NUL in name"
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "'..' in path (path traversal)"
    return None


def check_members(archive: str | Path) -> list[str]:
    """Validate every member of ``archive``; return their names or raise :class:`ArchiveError` naming the first
    unsafe member (absolute path, '..', link, device or other special file)."""
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"archive {archive} does not exist")
    names: list[str] = []
    try:
        if archive_kind(archive) == "zip":
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    why = _unsafe_name(info.filename)
                    mode = info.external_attr >> 16
                    if why is None and mode and stat.S_ISLNK(mode):
                        why = "symbolic link"
                    if why:
                        raise ArchiveError(f"refusing {archive}: unsafe member {info.filename!r} ({why})")
                    names.append(info.filename)
        else:
            with tarfile.open(archive, "r:*") as tf:
                for m in tf.getmembers():
                    why = _unsafe_name(m.name)
                    if why is None and (m.issym() or m.islnk()):
                        why = f"link to {m.linkname!r}"
                    elif why is None and not (m.isfile() or m.isdir()):
                        why = "special file"
                    if why:
                        raise ArchiveError(f"refusing {archive}: unsafe member {m.name!r} ({why})")
                    names.append(m.name)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"cannot read archive {archive}: {exc}; re-download it") from exc
    return names


def safe_extract(archive: str | Path, dest: str | Path) -> None:
    """Extract ``archive`` into the folder ``dest`` after :func:`check_members` accepted every member."""
    archive, dest = Path(archive), Path(dest)
    check_members(archive)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive_kind(archive) == "zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(dest)
        else:
            with tarfile.open(archive, "r:*") as tf:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12: a second line of defence
                    tf.extractall(dest, filter="data")
                else:  # pragma: no cover - every member was already checked by check_members
                    tf.extractall(dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"extracting {archive} failed: {exc}; the archive may be truncated, re-download it") from exc


def _is_dataset_dir(folder: Path, dataset: str) -> bool:
    if dataset in FORMATS:
        return FORMATS[dataset].looks_like(folder)
    if dataset == "visa" and (folder / VISA_SPLIT_CSV).is_file():
        return True
    for c in CATEGORIES[dataset]:
        sub = folder / c
        if (sub / "train").is_dir() or (sub / "test").is_dir() or (sub / "Data").is_dir():
            return True
    return False


def find_dataset_root(tree: str | Path, dataset: str, max_depth: int = 4) -> Path:
    """The shallowest folder under ``tree`` that holds category folders of ``dataset``."""
    tree = Path(tree)
    level = [tree]
    for _ in range(max_depth + 1):
        for d in level:
            if _is_dataset_dir(d, dataset):
                return d
        level = sorted(c for d in level for c in d.iterdir() if c.is_dir())
    top = ", ".join(sorted(p.name for p in tree.iterdir())[:10]) or "nothing"
    wanted = FORMATS[dataset].expected if dataset in FORMATS else f"{', '.join(CATEGORIES[dataset][:4])}, ..."
    raise ArchiveError(
        f"the archive holds no {dataset} category folders ({wanted}); "
        f"its top level holds: {top}. Is it the right archive?"
    )


def install_split_csv(split_csv: str | Path, root: str | Path) -> Path:
    """Copy VisA's ``1cls.csv`` to ``<root>/split_csv/1cls.csv`` after checking its columns."""
    src = Path(split_csv)
    if not src.is_file():
        raise ArchiveError(f"split file {src} does not exist")
    header = src.read_text(errors="replace").splitlines()[:1]
    if not header or not {"object", "split", "label", "image", "mask"} <= {h.strip() for h in header[0].split(",")}:
        raise ArchiveError(f"{src} is not VisA's split file: expected the columns object,split,label,image,mask")
    dst = Path(root) / VISA_SPLIT_CSV
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def extract_dataset(
    dataset: str,
    archive: str | Path,
    root: str | Path,
    split_csv: str | Path | None = None,
    overwrite: bool = False,
    verify: bool = True,
    check_files: bool = True,
) -> VerifyReport | None:
    """Extract an official archive so that ``root`` holds the category folders, then (by default) verify it.

    Existing entries of ``root`` with the same names are an error unless ``overwrite``. For VisA, ``split_csv``
    (``split_csv/1cls.csv`` of the VisA repository) is copied to ``<root>/split_csv/1cls.csv``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid datasets are {', '.join(DATASETS)}")
    archive, root = Path(archive), Path(root)
    check_members(archive)  # refuse unsafe or unreadable archives before touching root
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        safe_extract(archive, staging)
        found = find_dataset_root(staging, dataset)
        entries = sorted(found.iterdir())
        clashes = [root / e.name for e in entries if (root / e.name).exists()]
        if clashes and not overwrite:
            raise ArchiveError(f"{', '.join(map(str, clashes[:5]))} already exist(s); remove them or pass --overwrite")
        for e in entries:
            target = root / e.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            e.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if split_csv is not None:
        install_split_csv(split_csv, root)
    if not verify:
        return None
    return verify_root(dataset, root, check_files=check_files)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep.extract", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=ARCHIVED)
    p.add_argument("--archive", required=True, type=Path, help="the downloaded archive")
    p.add_argument("--root", required=True, type=Path, help="dataset root to create (holds the category folders)")
    p.add_argument("--split-csv", type=Path, help="VisA only: split_csv/1cls.csv from the VisA repository")
    p.add_argument("--overwrite", action="store_true", help="replace existing category folders under --root")
    p.add_argument("--no-verify", action="store_true", help="skip the verify step")
    p.add_argument("--quick", action="store_true", help="verify layout and counts only, without decoding files")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.split_csv is not None and args.dataset != "visa":
        print("error: --split-csv is for --dataset visa only", file=sys.stderr)
        return 2
    try:
        report = extract_dataset(
            args.dataset, args.archive, args.root, args.split_csv, args.overwrite,
            verify=not args.no_verify, check_files=not args.quick,
        )  # fmt: skip
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"extracted {args.archive} into {args.root}")
    if report is None:
        return 0
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
