"""Stand-in datasets in the official layouts of BTAD, KolektorSDD, KolektorSDD2, DAGM 2007, DTD-Synthetic, MVTec
LOCO AD, MVTec AD 2 and Real-IAD, and of a ``folder`` of one's own images — for the tests, the demo (a few of
them beside the synthetic set) and the memory measurement of a Real-IAD-sized grid
(``python -m benchmarks.realiad_scale``, with :func:`make_realiad`'s counts per category).

Files are named as in the releases (``train/ok/000.bmp``, ``kos01/Part0.jpg`` + ``Part0_label.bmp``,
``10000.png`` + ``10000_GT.png``, ``Class1/Train/0001.PNG`` + ``Label/0001_label.PNG``, LOCO's mask folders
``ground_truth/<kind>/000/000.png``, MVTec AD 2's ``000_regular.png`` + ``000_regular_mask.png``, Real-IAD's
``OK/S0001/<category>_0001_OK_C1_<time>.jpg`` with its JSON split file), in the releases' mask formats (0/255
label images, LOCO's per-region masks holding a region's pixel value, BMP and PNG). The pixels are the synthetic
renderings of :mod:`winclip_lib.datasets.synthetic` — textures or a disc with a drawn defect whose mask is exact —
at a small size, so that a generator writes hundreds of images in a second or two. Counts are parameters: a test can
reproduce a release's official per-category counts or write a handful of images.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from winclip_lib.datasets.synthetic import MANIFEST_NAME, add_defect, render_normal

DEFECTS = ("scratch", "spot", "missing")
#: Defects that survive resizing a rendering to a narrow shape (KolektorSDD's tall, narrow images).
WIDE_DEFECTS = ("spot", "missing")


def render(kind: str, key: tuple, size: int, defect: str | None = None, shape: tuple[int, int] | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8 RGB, mask (H, W) bool): a ``kind`` ("tiles" or "disc") rendering, with a drawn
    ``defect`` if given, resized to ``shape`` (H, W) if given."""
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))
    img, obj, background = render_normal(kind, rng, size)
    mask = np.zeros(obj.shape, bool)
    if defect is not None:
        img, mask = add_defect(img, obj, background, defect, rng)
    if shape is not None and shape != img.shape[:2]:
        img = cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return img, mask


def write_image(path: Path, rgb: np.ndarray, gray: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if gray else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), data):
        raise OSError(f"could not write {path}")
    return path


def write_mask(path: Path, mask: np.ndarray, value: int = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * value):
        raise OSError(f"could not write {path}")
    return path


def _pair(root: Path, image: Path, mask: Path | None, kind: str, key: tuple, size: int, defect: str | None,
          shape: tuple[int, int] | None = None, gray: bool = False, mask_value: int = 255) -> None:
    rgb, m = render(kind, key, size, defect, shape)
    write_image(image, rgb, gray)
    if mask is not None:
        write_mask(mask, m, mask_value)


# ------------------------------------------------------------------------------------------------ BTAD

#: Image extension per product in the stand-in (the loader accepts either for images and masks).
BTAD_EXT = {"01": ".bmp", "02": ".png", "03": ".bmp"}


def make_btad(root: Path, products: Mapping[str, tuple[int, int, int]], size: int = 32) -> Path:
    """``<root>/<product>/train/ok``, ``test/{ok,ko}``, ``ground_truth/ko/<stem>.png`` (product 03: ``.bmp``);
    ``products``: product -> (train, test ok, test ko)."""
    for product, (n_train, n_ok, n_ko) in products.items():
        base, ext = root / product, BTAD_EXT.get(product, ".png")
        for i in range(n_train):
            _pair(root, base / "train" / "ok" / f"{i:04d}{ext}", None, "tiles", ("btad", product, "tr", i), size, None)
        for i in range(n_ok):
            _pair(root, base / "test" / "ok" / f"{i:04d}{ext}", None, "tiles", ("btad", product, "ok", i), size, None)
        mask_ext = ".bmp" if product == "03" else ".png"
        for i in range(n_ko):
            _pair(root, base / "test" / "ko" / f"{i:04d}{ext}", base / "ground_truth" / "ko" / f"{i:04d}{mask_ext}",
                  "tiles", ("btad", product, "ko", i), size, DEFECTS[i % 3])
    return root


# ------------------------------------------------------------------------------------------------ KolektorSDD


def make_ksdd(root: Path, n_items: int = 50, parts: int = 8, defective: Sequence[tuple[int, int]] | int = 52,
              shape: tuple[int, int] = (48, 20)) -> Path:
    """``<root>/kosNN/PartK.jpg`` + ``PartK_label.bmp`` (0/255 grayscale) for NN = 01..n_items, K = 0..parts-1.
    ``defective``: (item, part) pairs with a drawn defect, or how many (spread over the items; never kos21/Part7,
    which the loader leaves out, but written like every other image)."""
    if isinstance(defective, int):
        slots = [(i, p) for p in range(parts) for i in range(1, n_items + 1) if (i, p) != (21, 7)]
        defective = slots[:defective]
    chosen = set(defective)
    for item in range(1, n_items + 1):
        for part in range(parts):
            folder = root / f"kos{item:02d}"
            defect = WIDE_DEFECTS[(item + part) % 2] if (item, part) in chosen else None
            _pair(root, folder / f"Part{part}.jpg", folder / f"Part{part}_label.bmp", "disc",
                  ("ksdd", item, part), 32, defect, shape, gray=True)
    return root


def make_ksdd2(root: Path, train: tuple[int, int] = (6, 2), test: tuple[int, int] = (3, 3),
               shape: tuple[int, int] = (40, 16)) -> Path:
    """``<root>/{train,test}/<n>.png`` + ``<n>_GT.png`` (0/255); ``train`` / ``test``: (negatives, positives).
    Train images are numbered from 10000, test images from 20000."""
    for split, (neg, pos), start in (("train", train, 10000), ("test", test, 20000)):
        for j in range(neg + pos):
            n = start + j
            defect = WIDE_DEFECTS[j % 2] if j >= neg else None
            _pair(root, root / split / f"{n}.png", root / split / f"{n}_GT.png", "disc", ("ksdd2", n), 32, defect,
                  shape)
    return root


# ------------------------------------------------------------------------------------------------ DAGM


def make_dagm(root: Path, classes: Mapping[str, tuple[int, int, int, int]], size: int = 32) -> Path:
    """``<root>/ClassN/{Train,Test}/<nnnn>.PNG`` (grayscale) and ``Label/<nnnn>_label.PNG`` (0/255) for the
    defective ones, plus ``Label/Labels.txt``; ``classes``: class -> (train normal, train defective, test normal,
    test defective). Defective images are numbered after the normal ones."""
    for cls, (tr_n, tr_d, te_n, te_d) in classes.items():
        for split, n_normal, n_defective in (("Train", tr_n, tr_d), ("Test", te_n, te_d)):
            folder = root / cls / split
            lines = ["1"]
            for j in range(n_normal + n_defective):
                name = f"{j + 1:04d}"
                bad = j >= n_normal
                _pair(root, folder / f"{name}.PNG", folder / "Label" / f"{name}_label.PNG" if bad else None, "tiles",
                      ("dagm", cls, split, j), size, DEFECTS[j % 3] if bad else None, gray=True)
                lines.append(f"{j + 1}\t{int(bad)}\t{name}.PNG\t0\t{name + '_label.PNG' if bad else '0'}")
            (folder / "Label").mkdir(parents=True, exist_ok=True)
            (folder / "Label" / "Labels.txt").write_text("\n".join(lines) + "\n")
    return root


# ------------------------------------------------------------------------------------------------ DTD-Synthetic


def make_dtd(root: Path, textures: Sequence[str] = ("Woven_001",), n_train: int = 3, n_good: int = 2,
             n_bad: int = 3, size: int = 32) -> Path:
    """MVTec layout: ``<texture>/train/good``, ``test/{good,bad}``, ``ground_truth/bad/<stem>_mask.png``."""
    for tex in textures:
        for folder, n in (("train/good", n_train), ("test/good", n_good)):
            for i in range(n):
                _pair(root, root / tex / folder / f"{i:03d}.png", None, "tiles", ("dtd", tex, folder, i), size, None)
        for i in range(n_bad):
            _pair(root, root / tex / "test" / "bad" / f"{i:03d}.png",
                  root / tex / "ground_truth" / "bad" / f"{i:03d}_mask.png", "tiles", ("dtd", tex, "b", i), size,
                  DEFECTS[i % 3])
    return root


# ------------------------------------------------------------------------------------------------ MVTec LOCO AD


def make_loco(root: Path, objects: Mapping[str, tuple[int, int, int, int, int]], size: int = 32) -> Path:
    """``<object>/{train,validation}/good``, ``test/{good,logical_anomalies,structural_anomalies}`` and mask folders
    ``ground_truth/<kind>/<stem>/000.png`` (every third anomalous image has a second region, ``001.png``; masks hold
    the region's pixel value, 255 or another value as in ``defects_config.json``). ``objects``: object -> (train,
    validation, test good, structural, logical)."""
    for obj, (n_train, n_val, n_good, n_struct, n_logic) in objects.items():
        base = root / obj
        for split, n in (("train", n_train), ("validation", n_val)):
            for i in range(n):
                _pair(root, base / split / "good" / f"{i:03d}.png", None, "disc", ("loco", obj, split, i), size, None)
        for i in range(n_good):
            _pair(root, base / "test" / "good" / f"{i:03d}.png", None, "disc", ("loco", obj, "good", i), size, None)
        for kind, n in (("structural_anomalies", n_struct), ("logical_anomalies", n_logic)):
            for i in range(n):
                rgb, m = render("disc", ("loco", obj, kind, i), size, DEFECTS[i % 3])
                write_image(base / "test" / kind / f"{i:03d}.png", rgb)
                regions = base / "ground_truth" / kind / f"{i:03d}"
                if i % 3 == 2:  # two regions: the mask split into its left and right halves, two pixel values
                    left = m.copy()
                    left[:, size // 2:] = False
                    write_mask(regions / "000.png", left, 255)
                    write_mask(regions / "001.png", m & ~left, 100)
                else:
                    write_mask(regions / "000.png", m, 255)
        (base / "defects_config.json").write_text(json.dumps([{"defect_name": "stand_in", "pixel_value": 255,
                                                                "saturation_threshold": 1.0,
                                                                "relative_saturation": True}]))
    return root


# ------------------------------------------------------------------------------------------------ MVTec AD 2


def make_mvtec2(root: Path, objects: Mapping[str, tuple[int, int, int, int]], n_private: int = 2,
                size: int = 32) -> Path:
    """``<object>/train/good/000_regular.png``, ``validation/good``, ``test_public/{good,bad}``,
    ``test_public/ground_truth/bad/<stem>_mask.png``, ``test_private/``, ``test_private_mixed/``; ``objects``:
    object -> (train, validation, test good, test bad)."""
    for obj, (n_train, n_val, n_good, n_bad) in objects.items():
        base = root / obj
        for folder, n in (("train/good", n_train), ("validation/good", n_val), ("test_public/good", n_good),
                          ("test_private", n_private), ("test_private_mixed", n_private)):
            for i in range(n):
                _pair(root, base / folder / f"{i:03d}_regular.png", None, "disc", ("ad2", obj, folder, i), size,
                      None)
        for i in range(n_bad):
            stem = f"{i:03d}_{'regular' if i % 2 == 0 else 'overexposed'}"
            _pair(root, base / "test_public" / "bad" / f"{stem}.png",
                  base / "test_public" / "ground_truth" / "bad" / f"{stem}_mask.png", "disc", ("ad2", obj, "bad", i),
                  size, DEFECTS[i % 3])
    return root


# ------------------------------------------------------------------------------------------------ Real-IAD

REALIAD_TIME = "20231021130525"


def make_realiad(root: Path, categories: Mapping[str, tuple[int, int, int]], resolution: str = "realiad_1024",
                 size: int = 32, nested_jsons: bool = False, views: Sequence[str] = ("C1", "C2")) -> Path:
    """``<resolution>/<category>/OK/S<nnnn>/<category>_<nnnn>_OK_C1_<time>.jpg`` and
    ``NG/<defect>/S<nnnn>/<category>_<nnnn>_NG_<defect>_C1_<time>.jpg`` + ``.png`` mask (every sample also has the
    other ``views`` on disk, C2 by default, which the single-view split does not list), and
    ``realiad_jsons_sv/<category>.json`` (``realiad_jsons/realiad_jsons_sv/`` with ``nested_jsons``, anomalib's
    layout); ``categories``: category -> (train OK, test OK, test NG)."""
    json_dir = root / ("realiad_jsons/realiad_jsons_sv" if nested_jsons else "realiad_jsons_sv")
    for cat, (n_train, n_ok, n_ng) in categories.items():
        base = root / resolution / cat
        splits: dict[str, list[dict]] = {"train": [], "test": []}
        sample = 0
        for split, n, bad in (("train", n_train, False), ("test", n_ok, False), ("test", n_ng, True)):
            for i in range(n):
                sample += 1
                defect = ("AK", "BX", "QS")[i % 3] if bad else None
                rel = f"NG/{defect}/S{sample:04d}" if bad else f"OK/S{sample:04d}"
                for view in dict.fromkeys(("C1", *views)):
                    stem = f"{cat}_{sample:04d}_{'NG_' + defect if bad else 'OK'}_{view}_{REALIAD_TIME}"
                    mask = base / rel / f"{stem}.png" if bad else None
                    _pair(root, base / rel / f"{stem}.jpg", mask, "disc", ("realiad", cat, sample, view), size,
                          DEFECTS[i % 3] if bad else None)
                stem = f"{cat}_{sample:04d}_{'NG_' + defect if bad else 'OK'}_C1_{REALIAD_TIME}"
                splits[split].append({"category": cat, "anomaly_class": defect or "OK",
                                      "image_path": f"{rel}/{stem}.jpg",
                                      "mask_path": f"{rel}/{stem}.png" if bad else None})
        json_dir.mkdir(parents=True, exist_ok=True)
        meta = {"prefix": cat, "normal_class": "OK", "pre_transform": None}
        (json_dir / f"{cat}.json").write_text(json.dumps({"meta": meta, **splits}, indent=1))
    return root


# ------------------------------------------------------------------------------------------------ your own folder


def make_folder(root: Path, n_good: int = 3, defects: Mapping[str, int] | None = None, masks: bool = True,
                n_train: int = 2, mask_suffix: str = "", size: int = 32) -> Path:
    """``ROOT/good/``, ``ROOT/<defect>/`` per entry of ``defects`` (default ``{"scratch": 2, "spot": 2}``),
    ``ROOT/masks/<defect>/<stem><mask_suffix>.png`` when ``masks``, ``ROOT/train/`` with ``n_train`` images."""
    defects = {"scratch": 2, "spot": 2} if defects is None else defects
    for i in range(n_good):
        _pair(root, root / "good" / f"good_{i}.jpg", None, "disc", ("folder", "good", i), size, None)
    for i in range(n_train):
        _pair(root, root / "train" / f"ref_{i}.png", None, "disc", ("folder", "train", i), size, None)
    for d, n in defects.items():
        for i in range(n):
            mask = root / "masks" / d / f"part_{i}{mask_suffix}.png" if masks else None
            _pair(root, root / d / f"part_{i}.png", mask, "disc", ("folder", d, i), size,
                  d if d in DEFECTS else DEFECTS[i % 3])
    return root


# ------------------------------------------------------------------------------------------------ small sets


def mark_stand_in(root: Path, dataset: str, **details: object) -> Path:
    """Write the synthetic-set manifest (:data:`~winclip_lib.datasets.synthetic.MANIFEST_NAME`) at a stand-in's
    root, so that every run and figure made from it is labelled synthetic data (DEMO) like the synthetic set's; it
    lists no categories (``verify`` then checks the layout and files only)."""
    manifest = {"generator": "winclip_lib.datasets.standins", "format": 1, "stand_in": dataset, "categories": {},
                **details}
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return root


def make_standins(root: Path, datasets: Sequence[str], n_train: int = 4, n_good: int = 2, n_bad: int = 4,
                  size: int = 64) -> dict[str, Path]:
    """Small stand-ins of later benchmarks under ``root/<dataset>``, one category each (BTAD ``01``, DAGM
    ``Class1``, DTD-Synthetic ``Woven_001``, MVTec AD 2 ``can``, Real-IAD ``audiojack``, KolektorSDD2's one; MVTec
    LOCO AD: ``pushpins``, as its two categories), each marked as synthetic data (:func:`mark_stand_in`):
    ``n_train`` normal training images and ``n_good + n_bad`` test images in the dataset's official layout (a
    ``folder`` without masks: image metrics only). A stand-in already written with the same counts is kept.
    Returns {dataset: its root}."""
    details = {"n_train": n_train, "n_good": n_good, "n_bad": n_bad, "size": size}
    writers = {
        "btad": lambda r: make_btad(r, {"01": (n_train, n_good, n_bad)}, size=size),
        "ksdd2": lambda r: make_ksdd2(r, train=(n_train, 0), test=(n_good, n_bad)),
        "dagm": lambda r: make_dagm(r, {"Class1": (n_train, 0, n_good, n_bad)}, size=size),
        "dtd": lambda r: make_dtd(r, ("Woven_001",), n_train, n_good, n_bad, size=size),
        "loco": lambda r: make_loco(r, {"pushpins": (n_train, 1, n_good, n_bad, n_bad)}, size=size),
        "mvtec2": lambda r: make_mvtec2(r, {"can": (n_train, 1, n_good, n_bad)}, n_private=0, size=size),
        "realiad": lambda r: make_realiad(r, {"audiojack": (n_train, n_good, n_bad)}, size=size, views=("C1",)),
        "folder": lambda r: make_folder(r, n_good, {"scratch": n_bad // 2, "spot": n_bad - n_bad // 2},
                                        masks=False, n_train=n_train, size=size),
    }
    if unknown := [d for d in datasets if d not in writers]:
        raise ValueError(f"no small stand-in for {unknown}; known: {', '.join(writers)}")
    out = {}
    for dataset in datasets:
        folder = Path(root) / dataset
        manifest = folder / MANIFEST_NAME
        written = json.loads(manifest.read_text()) if manifest.is_file() else None
        if written is None or any(written.get(k) != v for k, v in details.items()):
            if folder.exists():
                if not manifest.is_file():
                    raise FileExistsError(f"{folder} exists and is not a stand-in; choose an empty or new folder")
                shutil.rmtree(folder)
            writers[dataset](folder)
            mark_stand_in(folder, dataset, **details)
        out[dataset] = folder
    return out
