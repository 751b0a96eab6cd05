"""Finding and checking the inputs of ``winclip predict``: files, folders (searched recursively) and glob patterns,
each file checked (an image extension, readable, at least :data:`MIN_IMAGE_SIDE` pixels on each side).

A file that fails is *skipped* with its reason (:class:`Skipped`) and the rest go on; only an input set with no file
at all is a usage error (:class:`NoInputError`). Symbolic links to folders are followed, each folder scanned once
(a link loop ends); a broken link is skipped as "not found".
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from winclip_lib.core.imageio import IMAGE_EXTENSIONS, ImageError, load_image
from winclip_lib.datasets.synthetic import MANIFEST_NAME
from winclip_lib.experiments.image_loader import default_workers
from winclip_lib.experiments.labels import is_synthetic_root
from winclip_lib.experiments.progress import bar

__all__ = [
    "MIN_IMAGE_SIDE",
    "Inputs",
    "NoInputError",
    "Skipped",
    "check_image",
    "collect_inputs",
    "expand_paths",
    "image_key",
]

#: The smallest image side accepted, in pixels: one 16-pixel patch of the ViT. Smaller images are skipped.
MIN_IMAGE_SIDE = 16
_GLOB_CHARS = frozenset("*?[")


class NoInputError(ValueError):
    """The IMAGES (or the --normal references) matched no file at all."""


@dataclass(frozen=True)
class Skipped:
    """A file that was not scored: ``role`` "image" or "normal", ``problem`` a short kind ("not found", "not an
    image", "unreadable", "too small"), ``reason`` the full message (names the file and the fix)."""

    path: str
    role: str
    problem: str
    reason: str


@dataclass(frozen=True)
class Inputs:
    """The checked inputs: ``images`` and ``normal`` as (path, (height, width)) pairs, in argument order."""

    images: list[tuple[Path, tuple[int, int]]]
    normal: list[tuple[Path, tuple[int, int]]]
    skipped: list[Skipped]
    #: files found among IMAGES that are also normal references (not scored as queries).
    excluded: list[Path] = field(default_factory=list)
    #: True when an input folder holds a synthetic set (the results are then labelled DEMO).
    synthetic: bool = False


def _scan(folder: Path) -> list[Path]:
    """Every visible file under ``folder`` (recursively, sorted), except a synthetic set's manifest.

    Symbolic links to folders are followed; a folder reached twice (a link to a folder above it, two links to one
    folder) is scanned once, so a link loop ends. A broken link is listed (it is then skipped as "not found", with
    its reason); pipes, sockets and devices are not files and are left out."""
    found: list[Path] = []
    visited: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in visited:
            dirnames[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            p = Path(dirpath) / name
            if not name.startswith(".") and name != MANIFEST_NAME and (p.is_file() or p.is_symlink()):
                found.append(p)
    return sorted(found)


def expand_paths(specs: Iterable[str | Path], exclude: Iterable[str | Path] = ()) -> tuple[list[Path], list[str]]:
    """Files named by ``specs``: a file as is, a folder searched recursively (hidden files and folders left out),
    anything else as a glob pattern (``**`` recurses). Duplicates are kept once, in order; files under an
    ``exclude`` folder are left out (the output folder).

    Returns:
        (absolute paths, the specs that matched no file).
    """
    excluded = [Path(e).expanduser().resolve() for e in exclude]
    out: dict[Path, Path] = {}
    unmatched = []
    for spec in specs:
        text = os.path.expanduser(str(spec))
        path = Path(text)
        if path.is_dir():
            found = _scan(path)
        elif path.is_file():
            found = [path]
        elif _GLOB_CHARS & set(text):
            found = []
            for match in sorted(glob.glob(text, recursive=True)):
                m = Path(match)
                found += _scan(m) if m.is_dir() else [m] if m.is_file() else []
        else:
            found = []
        kept = 0
        for f in found:
            real = f.resolve()
            if any(real.is_relative_to(e) for e in excluded):
                continue
            out.setdefault(real, Path(os.path.abspath(f)))
            kept += 1
        if not kept:
            unmatched.append(str(spec))
    return list(out.values()), unmatched


def check_image(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file that can be scored.

    Raises:
        ImageError: not an image file (its extension), unreadable (missing, no permission, corrupt, truncated), or
            smaller than :data:`MIN_IMAGE_SIDE` on a side. The message names the file and the fix.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise ImageError(f"image file {path} does not exist: it is a symbolic link to {os.readlink(path)}, which "
                         "does not exist; fix or remove the link")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ImageError(f"{path} is not an image file (extension {path.suffix or 'none'!r}); images must end in "
                         f"{', '.join(IMAGE_EXTENSIONS)}: convert it, or leave it out")
    try:
        with path.open("rb") as f:
            f.read(1)
    except PermissionError as exc:
        raise ImageError(f"cannot read {path}: permission denied; make it readable (chmod +r)") from exc
    except FileNotFoundError as exc:
        raise ImageError(f"image file {path} does not exist") from exc
    h, w = load_image(path).shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ImageError(f"image {path} is {w} x {h} px, smaller than the minimum of {MIN_IMAGE_SIDE} x "
                         f"{MIN_IMAGE_SIDE} px (one patch of the model); use a larger photo")
    return h, w


def _problem(message: str) -> str:
    for key, words in (("not an image", "is not an image file"), ("too small", "smaller than the minimum"),
                       ("not found", "does not exist"), ("unreadable", "")):
        if words in message:
            return key
    return "unreadable"


def _check_all(paths: Sequence[Path], role: str, progress: bool | None
               ) -> tuple[list[tuple[Path, tuple[int, int]]], list[Skipped]]:
    def check(p: Path) -> tuple[int, int] | ImageError:
        try:
            return check_image(p)
        except ImageError as exc:
            return exc

    ok, skipped = [], []
    with ThreadPoolExecutor(default_workers()) as pool:  # decoding PNGs releases the GIL
        checked = pool.map(check, paths)
        for p, got in zip(bar(paths, enabled=progress, desc=f"check {role}", unit="file", leave=False), checked,
                          strict=True):
            if isinstance(got, ImageError):
                skipped.append(Skipped(str(p), role, _problem(str(got)), str(got)))
            else:
                ok.append((p, got))
    return ok, skipped


def _is_synthetic(paths: Iterable[Path]) -> bool:
    """True when a folder holding one of ``paths`` (or above it) is a synthetic set."""
    seen: set[Path] = set()
    for p in paths:
        for folder in p.parents:
            if folder in seen:
                break
            seen.add(folder)
            if is_synthetic_root(folder):
                return True
    return False


def collect_inputs(images: Sequence[str | Path] | str | Path, normal: Sequence[str | Path] | str | Path | None = (),
                   out_dir: str | Path | None = None, progress: bool | None = None) -> Inputs:
    """Expand and check the IMAGES and the normal references (see :func:`expand_paths`, :func:`check_image`).

    A normal reference found among the IMAGES is not scored as a query (:attr:`Inputs.excluded`); files under
    ``out_dir`` are ignored (an earlier run's overlays). A spec that matched nothing, when others did, is listed as
    skipped ("not found").

    Raises:
        NoInputError: IMAGES (or, when given, the references) matched no file; the message names the specs.
    """
    image_specs = [images] if isinstance(images, str | Path) else list(images)
    normal_specs = [] if normal is None else [normal] if isinstance(normal, str | Path) else list(normal)
    exclude = [out_dir] if out_dir is not None else []
    image_files, image_unmatched = expand_paths(image_specs, exclude)
    normal_files, normal_unmatched = expand_paths(normal_specs, exclude)
    if not image_files:
        raise NoInputError(f"no file matched the IMAGES {', '.join(map(repr, image_unmatched)) or '(none given)'}: "
                           "pass image files, folders or glob patterns (quote a pattern so that the shell does "
                           "not expand it)")
    if normal_specs and not normal_files:
        raise NoInputError(f"no file matched the --normal references {', '.join(map(repr, normal_unmatched))}: "
                           "pass normal image files, folders or glob patterns, or leave out --normal (zero-shot)")
    refs = {p.resolve() for p in normal_files}
    excluded = [p for p in image_files if p.resolve() in refs]
    image_files = [p for p in image_files if p.resolve() not in refs]
    skipped = [Skipped(spec, role, "not found", f"{spec!r} matched no file (no such file or folder, an empty "
                                                "folder, or a pattern without matches): check the path")
               for role, specs in (("image", image_unmatched), ("normal", normal_unmatched)) for spec in specs]
    ok_images, bad_images = _check_all(image_files, "image", progress)
    ok_normal, bad_normal = _check_all(normal_files, "normal", progress)
    return Inputs(ok_images, ok_normal, skipped + bad_images + bad_normal, excluded,
                  _is_synthetic(image_files + normal_files))


def image_key(path: str | Path) -> str:
    """A stable name for an image file: its stem (letters, digits, ``._-``) and 8 hex digits of its absolute path,
    e.g. ``img_01-3fa2c1d0`` (names the overlay and the map in ``maps.npz``)."""
    p = Path(path)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem).strip("._-")[:60] or "image"
    digest = hashlib.sha256(os.path.abspath(p).encode()).hexdigest()[:8]
    return f"{stem}-{digest}"
