"""A small synthetic anomaly-detection dataset in the exact MVTec-AD layout, for tests and the demo.

``make_synthetic(root)`` writes::

    <root>/<category>/train/good/000.png ...
    <root>/<category>/test/good/000.png ...
    <root>/<category>/test/{scratch,spot,missing}/000.png ...
    <root>/<category>/ground_truth/{scratch,spot,missing}/000_mask.png     (0 / 255)
    <root>/winclip_synthetic.json                                          (parameters and counts)

``make_loose_images(folder)`` writes a few images of mixed sizes into a plain folder instead (what a user's own
photos look like; for ``winclip predict`` and its demo): some anomalous, a ``normal/`` subfolder of references, a
corrupt image and a text file.

Categories: ``tiles`` (texture: a grid of tiles with grout, random phase, per-tile shading and noise) and ``disc``
(object: a machined disc with a centre hole and bolt holes, random position and rotation, on a dark background).
Defects: scratches (thick polylines), spots (stains), missing parts (a bite out of the disc rim / a hole through the
tiles). Each defect is drawn by first building its mask and then changing exactly the pixels of that mask, so the
written masks are exact. Output is deterministic by seed (the same bytes twice) and takes well under a second at the
defaults. The set is built in a temporary sibling folder and moved into place at the end, so an interrupted run never
leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "SYNTHETIC_CATEGORIES",
    "DEFECT_TYPES",
    "MANIFEST_NAME",
    "LooseImages",
    "make_loose_images",
    "make_synthetic",
    "read_manifest",
    "render_normal",
    "add_defect",
]

SYNTHETIC_CATEGORIES: dict[str, str] = {"tiles": "texture", "disc": "object"}
DEFECT_TYPES = ("scratch", "spot", "missing")
MANIFEST_NAME = "winclip_synthetic.json"
_MIN_SIZE = 32

Rendered = tuple[np.ndarray, np.ndarray, np.ndarray]  # image (H,W,3) uint8, object mask (H,W) bool, background


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent generator per (seed, keys...), stable across machines (strings hashed with crc32)."""
    entropy = [int(seed)] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(entropy)


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    return rng.normal(0.0, sigma, size=shape).astype(np.float32)


def _finish(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _render_tiles(rng: np.random.Generator, size: int) -> Rendered:
    """Texture: tiles of period ~size/4 separated by grout lines, with random phase and per-tile shading."""
    period = max(8, size // 4)
    grout = max(2, size // 48)
    yy, xx = np.mgrid[0:size, 0:size]
    oy, ox = rng.integers(0, period, size=2)
    ty, tx = (yy + oy) // period, (xx + ox) // period
    in_grout = ((yy + oy) % period < grout) | ((xx + ox) % period < grout)
    shade = rng.normal(0.0, 8.0, size=(size // period + 3, size // period + 3)).astype(np.float32)
    base = np.array([176.0, 98.0, 70.0], dtype=np.float32) * rng.uniform(0.95, 1.05)  # terracotta, RGB
    img = base[None, None, :] + shade[ty, tx][:, :, None]
    img[in_grout] = np.array([205.0, 200.0, 190.0], dtype=np.float32)
    img += _noise(rng, img.shape, 5.0)
    background = _finish(np.full((size, size, 3), 25.0, np.float32) + _noise(rng, (size, size, 3), 4.0))
    return _finish(img), np.ones((size, size), dtype=bool), background


def _render_disc(rng: np.random.Generator, size: int) -> Rendered:
    """Object: a metallic disc with a centre hole and six bolt holes, jittered position and rotation."""
    c = size / 2 + rng.uniform(-0.04, 0.04, size=2) * size
    radius, hole = 0.34 * size, 0.10 * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = yy - c[1], xx - c[0]
    r = np.hypot(dx, dy)
    obj = (r <= radius) & (r >= hole)
    angle0 = rng.uniform(0, 2 * np.pi)
    for i in range(6):
        a = angle0 + i * np.pi / 3
        by, bx = c[1] + 0.22 * size * np.sin(a), c[0] + 0.22 * size * np.cos(a)
        obj &= np.hypot(yy - by, xx - bx) > 0.035 * size
    background = np.full((size, size, 3), 38.0, np.float32) + _noise(rng, (size, size, 3), 3.0)
    theta = np.arctan2(dy, dx)
    metal = 150.0 + 40.0 * np.cos(2 * (theta - angle0)) * (r / radius) - 30.0 * (r / radius)
    brushed = 4.0 * np.sin(r * 1.3)
    disc = (metal + brushed)[:, :, None] * np.array([1.0, 1.0, 1.04], np.float32)
    disc += _noise(rng, disc.shape, 3.0)
    img = np.where(obj[:, :, None], disc, background)
    return _finish(img), obj, _finish(background)


_RENDERERS: dict[str, Callable[[np.random.Generator, int], Rendered]] = {
    "tiles": _render_tiles,
    "disc": _render_disc,
}


def render_normal(category: str, rng: np.random.Generator, size: int) -> Rendered:
    """A defect-free image of a synthetic category: (image (H,W,3) uint8 RGB, object mask (H,W) bool, background
    (H,W,3) uint8 that shows through a missing part)."""
    if category not in _RENDERERS:
        raise ValueError(f"unknown synthetic category {category!r}; expected one of {sorted(_RENDERERS)}")
    return _RENDERERS[category](rng, size)


def _random_point_in(rng: np.random.Generator, region: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(region)
    i = int(rng.integers(len(ys)))
    return int(xs[i]), int(ys[i])


def _scratch_mask(rng: np.random.Generator, obj: np.ndarray) -> np.ndarray:
    size = obj.shape[0]
    m = np.zeros(obj.shape, np.uint8)
    x, y = _random_point_in(rng, obj)
    pts = [(x, y)]
    direction = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(2, 4))):
        direction += rng.uniform(-0.6, 0.6)
        length = rng.uniform(0.10, 0.18) * size
        x, y = int(round(x + length * np.cos(direction))), int(round(y + length * np.sin(direction)))
        pts.append((x, y))
    thickness = max(2, round(size / 90))
    cv2.polylines(m, [np.array(pts, np.int32)], isClosed=False, color=1, thickness=thickness, lineType=cv2.LINE_8)
    return (m > 0) & obj


def _spot_mask(rng: np.random.Generator, obj: np.ndarray) -> np.ndarray:
    size = obj.shape[0]
    m = np.zeros(obj.shape, np.uint8)
    x, y = _random_point_in(rng, obj)
    axes = (int(rng.uniform(0.035, 0.07) * size) + 1, int(rng.uniform(0.035, 0.07) * size) + 1)
    cv2.ellipse(m, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, color=1, thickness=-1)
    return (m > 0) & obj


def _missing_mask(rng: np.random.Generator, obj: np.ndarray) -> np.ndarray:
    size = obj.shape[0]
    m = np.zeros(obj.shape, np.uint8)
    if obj.all():  # texture: an irregular hole through the surface
        cx, cy = rng.uniform(0.2, 0.8, size=2) * size
        n = 7
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(0.05, 0.11, n) * size
        poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(m, [np.rint(poly).astype(np.int32)], color=1)
    else:  # object: a bite out of the rim, centred on the boundary of the object
        edge = obj & ~cv2.erode(obj.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        ys, xs = np.nonzero(obj)
        r = np.hypot(*(np.mgrid[0:size, 0:size] - np.array([ys.mean(), xs.mean()])[:, None, None]))
        outer = edge & (r >= 0.95 * r[edge].max())  # the outer rim, not the edges of the holes
        x, y = _random_point_in(rng, outer)
        cv2.circle(m, (x, y), int(rng.uniform(0.07, 0.11) * size) + 1, color=1, thickness=-1)
    return (m > 0) & obj


_DEFECT_MASKS = {"scratch": _scratch_mask, "spot": _spot_mask, "missing": _missing_mask}


def add_defect(
    img: np.ndarray, obj: np.ndarray, background: np.ndarray, defect: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one defect on a copy of ``img`` (H,W,3) uint8; returns (image, mask (H,W) bool). Exactly the pixels
    of the mask are changed (every one of them, by at least 40 grey levels in some channel)."""
    if defect not in _DEFECT_MASKS:
        raise ValueError(f"unknown defect {defect!r}; expected one of {DEFECT_TYPES}")
    mask = np.zeros(obj.shape, bool)
    for _ in range(50):
        mask = _DEFECT_MASKS[defect](rng, obj)
        if mask.sum() >= 4:
            break
    out = img.astype(np.float32)
    n = int(mask.sum())
    if defect == "scratch":
        value = 250.0 if out[mask].mean() < 150 else 30.0
        out[mask] = value + rng.normal(0.0, 3.0, size=(n, 3))
    elif defect == "spot":
        out[mask] = np.array([70.0, 45.0, 20.0]) + rng.normal(0.0, 4.0, size=(n, 3))
    else:
        fill = background.astype(np.float32)
        if obj.all():
            fill = fill * 0.0 + 12.0
        out[mask] = fill[mask]
    new = _finish(out)
    # guarantee a visible change at every mask pixel (the mask is the set of changed pixels)
    same = mask & (np.abs(new.astype(np.int16) - img.astype(np.int16)).max(axis=2) < 40)
    if same.any():  # push those pixels 40 levels further, towards the defect's colour where there is room
        src, tgt = img[same].astype(np.int16), new[same].astype(np.int16)
        can_down, can_up = src.max(axis=1) >= 40, src.min(axis=1) <= 215
        down = ((tgt.mean(axis=1) <= src.mean(axis=1)) & can_down) | ~can_up
        new[same] = np.clip(np.where(down[:, None], src - 40, src + 40), 0, 255).astype(np.uint8)
    return new, mask


def _write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), data, [cv2.IMWRITE_PNG_COMPRESSION, 6]):
        raise OSError(f"could not write {path}")


def _defect_counts(n_test_bad: int) -> dict[str, int]:
    return {d: len(range(i, n_test_bad, len(DEFECT_TYPES))) for i, d in enumerate(DEFECT_TYPES)}


def _write_category(tmp: Path, category: str, n_train: int, n_good: int, n_bad: int, size: int, seed: int) -> dict:
    base = tmp / category
    for i in range(n_train):
        img, _, _ = render_normal(category, _rng(seed, category, "train", i), size)
        _write_png(base / "train" / "good" / f"{i:03d}.png", img)
    for i in range(n_good):
        img, _, _ = render_normal(category, _rng(seed, category, "test_good", i), size)
        _write_png(base / "test" / "good" / f"{i:03d}.png", img)
    counters = dict.fromkeys(DEFECT_TYPES, 0)
    for j in range(n_bad):
        defect = DEFECT_TYPES[j % len(DEFECT_TYPES)]
        idx = counters[defect]
        counters[defect] += 1
        rng = _rng(seed, category, defect, idx)
        img, obj, bg = render_normal(category, rng, size)
        bad, mask = add_defect(img, obj, bg, defect, rng)
        _write_png(base / "test" / defect / f"{idx:03d}.png", bad)
        _write_png(base / "ground_truth" / defect / f"{idx:03d}_mask.png", mask.astype(np.uint8) * 255)
    return {
        "kind": SYNTHETIC_CATEGORIES[category],
        "train": n_train,
        "test_normal": n_good,
        "test_anomalous": n_bad,
        "defects": _defect_counts(n_bad),
    }


def make_synthetic(
    root: str | Path,
    categories: Sequence[str] = ("tiles", "disc"),
    n_train: int = 8,
    n_test_good: int = 4,
    n_test_bad: int = 6,
    size: int = 256,
    seed: int = 0,
) -> Path:
    """Write a synthetic dataset in the exact MVTec layout under ``root`` and return ``root``.

    ``root`` must not exist, be empty, or hold an earlier synthetic set (identified by its manifest), which is
    replaced; any other existing content raises ``FileExistsError`` so that real data is never overwritten.
    ``size`` >= 32 (e.g. 64 for fast tests). Anomalous test images are spread round-robin over
    :data:`DEFECT_TYPES`.
    """
    root = Path(root)
    cats = tuple(categories)
    unknown = [c for c in cats if c not in SYNTHETIC_CATEGORIES]
    if unknown or not cats or len(set(cats)) != len(cats):
        raise ValueError(f"categories must be distinct names from {sorted(SYNTHETIC_CATEGORIES)}, got {cats}")
    if size < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE}, got {size}")
    if min(n_train, n_test_good, n_test_bad) < 0 or n_train + n_test_good + n_test_bad == 0:
        raise ValueError("image counts must be non-negative and not all zero")
    if root.exists() and any(root.iterdir()) and not (root / MANIFEST_NAME).is_file():
        raise FileExistsError(f"{root} exists and is not a synthetic dataset; choose an empty or new folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        manifest = {
            "generator": "winclip_lib.datasets.synthetic.make_synthetic",
            "format": 1,
            "seed": int(seed),
            "size": int(size),
            "categories": {c: _write_category(tmp, c, n_train, n_test_good, n_test_bad, size, seed) for c in cats},
        }
        _publish(tmp, manifest, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root



def _publish(tmp: Path, manifest: dict, target: Path) -> None:
    """Write the manifest into the finished temporary folder ``tmp`` and move it to ``target`` (replacing an older
    set there), so that a set on disk is always complete."""
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the set gets the folder mode of the umask
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_manifest(root: str | Path) -> dict | None:
    """The manifest of a synthetic set under ``root``, or None when ``root`` is not one."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------ loose images

#: (height, width) of the loose demo images: landscape, portrait, square, wide; and which of them are anomalous.
LOOSE_SHAPES: tuple[tuple[int, int], ...] = ((96, 128), (128, 96), (80, 80), (64, 144), (112, 84), (72, 120),
                                             (100, 100), (90, 150))
LOOSE_DEFECTS: dict[int, str] = {1: "scratch", 4: "spot", 6: "missing"}


@dataclass(frozen=True)
class LooseImages:
    """What :func:`make_loose_images` wrote (absolute paths): ``images`` (every readable query image),
    ``anomalous`` (the subset with a drawn defect), ``normal`` (the references in ``normal/``), ``corrupt`` (a
    truncated PNG) and ``not_image`` (a text file)."""

    folder: Path
    images: tuple[Path, ...]
    anomalous: tuple[Path, ...]
    normal: tuple[Path, ...]
    corrupt: Path
    not_image: Path


def _render_rect(category: str, rng: np.random.Generator, h: int, w: int, defect: str | None
                 ) -> np.ndarray:
    """An (h, w, 3) image of ``category``: rendered square at the shorter side (with the defect, if any) and
    widened to (h, w): an object is centred on more of its background, a texture is mirrored at its border."""
    side = min(h, w)
    img, obj, background = render_normal(category, rng, side)
    if defect is not None:
        img, _ = add_defect(img, obj, background, defect, rng)
    dh, dw = h - side, w - side
    pad = ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0))
    if SYNTHETIC_CATEGORIES[category] == "texture":
        return np.pad(img, pad, mode="reflect")
    canvas = np.pad(background, pad, mode="reflect")
    canvas[pad[0][0] : pad[0][0] + side, pad[1][0] : pad[1][0] + side] = img
    return canvas


def make_loose_images(folder: str | Path, category: str = "disc", seed: int = 0) -> LooseImages:
    """Write a few demo images into a plain folder (not the MVTec layout) and return what was written::

        <folder>/img_00.png ... img_07.png     8 images of mixed sizes and aspect ratios (img_01, img_04 and img_06
                                               have a scratch, a spot and a missing part; img_02 is grayscale)
        <folder>/img_08.jpg                    a JPEG
        <folder>/normal/ref_0.png ... ref_2.png  3 normal references
        <folder>/broken.png                    a truncated PNG (cannot be read)
        <folder>/notes.txt                     a text file (not an image)
        <folder>/winclip_synthetic.json        the manifest (the images are synthetic: results are labelled DEMO)

    ``folder`` must be new, empty, or an earlier synthetic folder (replaced); anything else raises
    ``FileExistsError``. Deterministic by ``seed``.
    """
    folder = Path(folder)
    if category not in SYNTHETIC_CATEGORIES:
        raise ValueError(f"unknown synthetic category {category!r}; expected one of {sorted(SYNTHETIC_CATEGORIES)}")
    if folder.exists() and any(folder.iterdir()) and not (folder / MANIFEST_NAME).is_file():
        raise FileExistsError(f"{folder} exists and is not a synthetic folder; choose an empty or new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        images, anomalous, manifest_images = [], [], {}
        for i, (h, w) in enumerate(LOOSE_SHAPES):
            defect = LOOSE_DEFECTS.get(i)
            img = _render_rect(category, _rng(seed, "loose", i), h, w, defect)
            if i == 2:
                img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
            name = f"img_{i:02d}.png"
            _write_png(tmp / name, img[:, :, 0] if i == 2 else img)
            images.append(name)
            if defect:
                anomalous.append(name)
            manifest_images[name] = {"size": [h, w], "defect": defect}
        jpeg = _render_rect(category, _rng(seed, "loose", "jpeg"), 120, 90, None)
        cv2.imwrite(str(tmp / "img_08.jpg"), cv2.cvtColor(jpeg, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append("img_08.jpg")
        manifest_images["img_08.jpg"] = {"size": [120, 90], "defect": None}
        normal = []
        for i in range(3):
            ref = _render_rect(category, _rng(seed, "loose-ref", i), 96, 96, None)
            _write_png(tmp / "normal" / f"ref_{i}.png", ref)
            normal.append(f"normal/ref_{i}.png")
        png = (tmp / images[0]).read_bytes()
        (tmp / "broken.png").write_bytes(png[: len(png) // 3])
        (tmp / "notes.txt").write_text("Not an image: winclip predict lists this file as skipped.\n")
        manifest = {"generator": "winclip_lib.datasets.synthetic.make_loose_images", "format": 1, "layout": "loose",
                    "seed": int(seed), "category": category, "images": manifest_images, "normal": normal,
                    "corrupt": "broken.png", "not_image": "notes.txt"}
        _publish(tmp, manifest, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    root = folder.resolve()
    return LooseImages(root, tuple(root / n for n in images), tuple(root / n for n in anomalous),
                       tuple(root / n for n in normal), root / "broken.png", root / "notes.txt")
