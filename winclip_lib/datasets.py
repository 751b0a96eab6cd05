"""Dataset loaders for MVTec-AD, VisA and MPDD, image/mask I/O, resizing and few-shot reference sampling.

Layouts understood (``root`` is the folder that holds the category folders):

* **MVTec layout** (MVTec-AD, MPDD, the reorganised VisA ``1cls`` layout, and the synthetic set)::

      <root>/<category>/train/good/*.png
      <root>/<category>/test/good/*.png
      <root>/<category>/test/<defect>/*.png
      <root>/<category>/ground_truth/<defect>/<name>_mask.png   (or <name>.png, as VisA's prepare script writes)

* **VisA raw layout** (the official ``VisA_20220922.tar``) plus the split file from the VisA repository::

      <root>/<object>/Data/Images/{Normal,Anomaly}/*.JPG
      <root>/<object>/Data/Masks/Anomaly/*.png
      <root>/split_csv/1cls.csv        (columns object, split, label, image, mask; paths relative to <root>)

  For ``dataset="visa"`` the raw layout is used when ``<root>/split_csv/1cls.csv`` exists, the MVTec layout otherwise.

Every problem with the data on disk raises :class:`DatasetError` (a ``ValueError``) naming the file or folder and what
is expected, so that a run never starts on a half-extracted dataset.
"""

from __future__ import annotations

import csv
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "DATASETS",
    "MVTEC_CATEGORIES",
    "VISA_CATEGORIES",
    "MPDD_CATEGORIES",
    "CATEGORIES",
    "Counts",
    "EXPECTED_COUNTS",
    "EXPECTED_TOTALS",
    "DEFAULT_SEEDS",
    "CLASS_NAMES",
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "Sample",
    "list_categories",
    "detect_layout",
    "layout_hint",
    "VISA_SPLIT_CSV",
    "scan_split",
    "load_split",
    "load_image",
    "load_mask",
    "image_size",
    "resize_image",
    "resize_mask",
    "sample_references",
    "class_name",
]

DATASETS = ("mvtec", "visa", "mpdd")

MVTEC_CATEGORIES = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip
VISA_CATEGORIES = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
    "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
)  # fmt: skip
MPDD_CATEGORIES = ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "mvtec": MVTEC_CATEGORIES,
    "visa": VISA_CATEGORIES,
    "mpdd": MPDD_CATEGORIES,
}

# Seeds of the few-shot reference draws: five, for mean ± std over draws as the paper reports.
DEFAULT_SEEDS = (0, 1, 2, 3, 4)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VISA_SPLIT_CSV = Path("split_csv") / "1cls.csv"
SPLITS = ("train", "test")


class Counts(NamedTuple):
    """Image counts of one category (or a whole dataset): train images, normal and anomalous test images."""

    train: int
    test_normal: int
    test_anomalous: int

    @property
    def test(self) -> int:
        return self.test_normal + self.test_anomalous

    @property
    def masks(self) -> int:
        """One mask per anomalous test image."""
        return self.test_anomalous

    def __add__(self, other: object) -> Counts:  # type: ignore[override]
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(*(a + b for a, b in zip(self, other, strict=True)))


# Per-category counts of the official releases (VisA: the official ``split_csv/1cls.csv`` split).
# Their sums are the totals of the papers: MVTec 3,629 train / 467 + 1,258 test; VisA 8,659 train / 962 + 1,200
# test; MPDD 888 train / 176 + 282 test (checked by the tests).
EXPECTED_COUNTS: dict[str, dict[str, Counts]] = {
    "mvtec": {
        "bottle": Counts(209, 20, 63),
        "cable": Counts(224, 58, 92),
        "capsule": Counts(219, 23, 109),
        "carpet": Counts(280, 28, 89),
        "grid": Counts(264, 21, 57),
        "hazelnut": Counts(391, 40, 70),
        "leather": Counts(245, 32, 92),
        "metal_nut": Counts(220, 22, 93),
        "pill": Counts(267, 26, 141),
        "screw": Counts(320, 41, 119),
        "tile": Counts(230, 33, 84),
        "toothbrush": Counts(60, 12, 30),
        "transistor": Counts(213, 60, 40),
        "wood": Counts(247, 19, 60),
        "zipper": Counts(240, 32, 119),
    },
    "visa": {
        "candle": Counts(900, 100, 100),
        "capsules": Counts(542, 60, 100),
        "cashew": Counts(450, 50, 100),
        "chewinggum": Counts(453, 50, 100),
        "fryum": Counts(450, 50, 100),
        "macaroni1": Counts(900, 100, 100),
        "macaroni2": Counts(900, 100, 100),
        "pcb1": Counts(904, 100, 100),
        "pcb2": Counts(901, 100, 100),
        "pcb3": Counts(905, 101, 100),
        "pcb4": Counts(904, 101, 100),
        "pipe_fryum": Counts(450, 50, 100),
    },
    "mpdd": {
        "bracket_black": Counts(289, 32, 47),
        "bracket_brown": Counts(185, 26, 51),
        "bracket_white": Counts(110, 30, 30),
        "connector": Counts(128, 30, 14),
        "metal_plate": Counts(54, 26, 71),
        "tubes": Counts(122, 32, 69),
    },
}
EXPECTED_TOTALS: dict[str, Counts] = {
    "mvtec": Counts(3629, 467, 1258),
    "visa": Counts(8659, 962, 1200),
    "mpdd": Counts(888, 176, 282),
}

# Folder names -> the words used in prompts, as the public WinCLIP reproductions name them; anything not listed
# becomes the folder name with underscores replaced by spaces.
CLASS_NAMES: dict[str, str] = {
    "metal_nut": "metal nut",
    "macaroni1": "macaroni",
    "macaroni2": "macaroni",
    "pcb1": "printed circuit board",
    "pcb2": "printed circuit board",
    "pcb3": "printed circuit board",
    "pcb4": "printed circuit board",
    "pipe_fryum": "pipe fryum",
    "chewinggum": "chewing gum",
    "bracket_black": "black bracket",
    "bracket_brown": "brown bracket",
    "bracket_white": "white bracket",
    "metal_plate": "metal plate",
}


class DatasetError(ValueError):
    """A dataset on disk does not match the expected layout, or one of its files cannot be used."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset split. ``mask_path`` is None for normal images (label 0)."""

    dataset: str
    category: str
    split: str
    label: int
    defect: str
    image_path: Path
    mask_path: Path | None


# --------------------------------------------------------------------------------------------------- layout


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid datasets are {', '.join(DATASETS)}")
    return dataset


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _images_in(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)


def _looks_like_category(folder: Path) -> bool:
    return folder.is_dir() and ((folder / "train").is_dir() or (folder / "test").is_dir())


def detect_layout(dataset: str, root: str | Path) -> str:
    """Return ``"visa_raw"`` for the official VisA layout with its split file, ``"mvtec"`` for folder layouts.

    Raises :class:`DatasetError` when ``root`` is missing or is a raw VisA folder without ``split_csv/1cls.csv``.
    """
    _check_dataset(dataset)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a folder")
    if dataset == "visa":
        if (root / VISA_SPLIT_CSV).is_file():
            return "visa_raw"
        raw = [d.name for d in sorted(root.iterdir()) if (d / "Data" / "Images").is_dir()]
        if raw and not any(_looks_like_category(d) for d in root.iterdir()):
            raise DatasetError(
                f"{root} holds the raw VisA layout ({', '.join(raw[:3])}, ...) but not the split file "
                f"{root / VISA_SPLIT_CSV}; copy split_csv/1cls.csv from the VisA repository "
                "(github.com/amazon-science/spot-diff) there, or run `python -m data_prep.extract --split-csv`"
            )
    return "mvtec"


def _read_visa_csv(root: Path) -> list[dict[str, str]]:
    path = root / VISA_SPLIT_CSV
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read the VisA split file {path}: {exc}; re-download it") from exc
    needed = {"object", "split", "label", "image", "mask"}
    if not rows or not needed <= set(rows[0]):
        raise DatasetError(f"{path} is not a VisA split file: expected the columns {sorted(needed)}")
    return rows


def _canonical_order(dataset: str, names: Sequence[str]) -> list[str]:
    canonical = CATEGORIES[dataset]
    known = [c for c in canonical if c in names]
    extra = sorted(n for n in set(names) if n not in canonical)
    return known + extra


def list_categories(dataset: str, root: str | Path) -> list[str]:
    """Categories present under ``root``: the dataset's canonical ones in canonical order, then any other folder
    in the same layout (e.g. synthetic categories) in alphabetical order. Missing root -> DatasetError."""
    layout = detect_layout(dataset, root)
    root = Path(root)
    if layout == "visa_raw":
        names = {r["object"] for r in _read_visa_csv(root)}
        return _canonical_order(dataset, [n for n in names if (root / n).is_dir()])
    return _canonical_order(dataset, [d.name for d in root.iterdir() if _looks_like_category(d)])


def layout_hint(dataset: str, root: Path) -> str:
    """A sentence explaining what ``root`` should look like, with a guess when it is one level off."""
    if (root / "train").is_dir() or (root / "test").is_dir():
        return f"{root} looks like a single category folder; pass its parent folder {root.parent} as the root"
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            nested = any(_looks_like_category(d) for d in child.iterdir()) or (child / VISA_SPLIT_CSV).is_file()
        except OSError:
            continue
        if nested:
            return f"the categories seem to be one level down: pass {child} as the root"
    return f"expected {root}/<category>/train/good/*.png and {root}/<category>/test/<defect>/*.png"


def _mask_candidates(gt_dir: Path, stem: str) -> list[Path]:
    return [gt_dir / f"{stem}_mask{ext}" for ext in (".png", ".PNG")] + [
        gt_dir / f"{stem}{ext}" for ext in (".png", ".PNG")
    ]


def _scan_mvtec(dataset: str, root: Path, category: str, split: str) -> tuple[list[Sample], list[str]]:
    base = root / category
    problems: list[str] = []
    samples: list[Sample] = []
    split_dir = base / split
    if not split_dir.is_dir():
        return [], [f"missing folder {split_dir} (expected {split_dir}/good/*.png)"]
    if split == "train":
        good = split_dir / "good"
        if not good.is_dir():
            return [], [f"missing folder {good} (expected the normal training images there)"]
        for p in _images_in(good):
            samples.append(Sample(dataset, category, "train", 0, "good", p, None))
        return samples, problems
    for defect_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        defect = defect_dir.name
        for p in _images_in(defect_dir):
            if defect == "good":
                samples.append(Sample(dataset, category, "test", 0, "good", p, None))
                continue
            gt_dir = base / "ground_truth" / defect
            mask = next((m for m in _mask_candidates(gt_dir, p.stem) if m.is_file()), None)
            if mask is None:
                problems.append(f"anomalous test image {p} has no mask: expected {gt_dir / (p.stem + '_mask.png')}")
            samples.append(Sample(dataset, category, "test", 1, defect, p, mask))
    return samples, problems


def _scan_visa_raw(root: Path, category: str, split: str) -> tuple[list[Sample], list[str]]:
    problems: list[str] = []
    samples: list[Sample] = []
    csv_path = root / VISA_SPLIT_CSV
    for row in _read_visa_csv(root):
        if row["object"] != category or row["split"] != split:
            continue
        label_word = row["label"].strip().lower()
        if label_word not in ("normal", "anomaly"):
            problems.append(f"{csv_path}: unknown label {row['label']!r} for {row['image']} (normal/anomaly)")
            continue
        image = root / row["image"]
        if not image.is_file():
            problems.append(f"missing image {image} (listed in {csv_path})")
            continue
        if label_word == "normal":
            samples.append(Sample("visa", category, split, 0, "good", image, None))
            continue
        mask_rel = (row.get("mask") or "").strip()
        mask = root / mask_rel if mask_rel else None
        if mask is None or not mask.is_file():
            expected = mask if mask is not None else "a mask path in the 'mask' column"
            problems.append(f"anomalous test image {image} has no mask: expected {expected} (from {csv_path})")
            mask = None
        samples.append(Sample("visa", category, split, 1, "bad", image, mask))
    samples.sort(key=lambda s: (s.label, str(s.image_path)))
    return samples, problems


def scan_split(dataset: str, root: str | Path, category: str, split: str) -> tuple[list[Sample], list[str]]:
    """Lenient version of :func:`load_split`: return the samples and a list of problems (one sentence each, naming
    the file) instead of raising. Anomalous images whose mask is missing are returned with ``mask_path`` None (and
    a problem); images listed in the VisA split file but missing on disk are left out (and a problem). An unknown
    dataset/split, a missing root and an unknown category still raise :class:`DatasetError`."""
    _check_dataset(dataset)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = Path(root)
    layout = detect_layout(dataset, root)
    present = list_categories(dataset, root)
    if category not in present:
        if layout == "mvtec" and (root / category).is_dir():
            raise DatasetError(
                f"category folder {root / category} is empty or has no train/ or test/ folder; "
                f"expected {root / category}/train/good/*.png — re-extract the dataset"
            )
        if not present:
            raise DatasetError(f"no {dataset} categories found under {root}: {layout_hint(dataset, root)}")
        raise DatasetError(f"category {category!r} not found under {root}; categories present: {', '.join(present)}")
    if layout == "visa_raw":
        samples, problems = _scan_visa_raw(root, category, split)
    else:
        samples, problems = _scan_mvtec(dataset, root, category, split)
    if not samples and not problems:
        where = root / VISA_SPLIT_CSV if layout == "visa_raw" else root / category / split
        problems.append(f"category {category!r} has no {split} images in {where}")
    return samples, problems


def load_split(dataset: str, root: str | Path, category: str, split: str) -> list[Sample]:
    """All samples of one category's split ("train" or "test"), sorted deterministically (MVTec layout: by defect
    folder then file name; VisA raw: normal first, then by path).

    Raises :class:`DatasetError` on an unknown or empty category, a root with the wrong layout, or an anomalous
    test image without its mask (naming the files).
    """
    samples, problems = scan_split(dataset, root, category, split)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DatasetError("; ".join(problems[:5]) + more)
    return samples


# ------------------------------------------------------------------------------------------------ image I/O


def _corrupt(path: Path, exc: BaseException | str) -> DatasetError:
    return DatasetError(
        f"cannot read image {path}: {exc}; the file is corrupt or truncated, re-extract or re-download the dataset"
    )


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR chunk, None if ``path`` is not a PNG."""
    with path.open("rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack("B", head[24:25])[0]


def _to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    """Scale an integer array of any bit depth to uint8 (16-bit: round(v / 257), exact inverse of v * 257)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DatasetError(f"image {path} holds values outside 0..65535; cannot convert it to 8-bit RGB")
        return np.rint(arr.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < 0 or np.nanmax(arr) > 1):
            raise DatasetError(f"float image {path} holds values outside 0..1; cannot convert it to 8-bit RGB")
        return np.rint(np.nan_to_num(arr) * 255.0).astype(np.uint8)
    raise DatasetError(f"image {path} has an unsupported pixel type {arr.dtype}")


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def _read_pil(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError as exc:
        raise DatasetError(f"image file {path} does not exist") from exc
    except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError) as exc:
        raise _corrupt(path, exc) from exc
    return img


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, shape (H, W, 3), whatever the file holds.

    Grayscale is replicated to three channels, alpha is dropped (no compositing), palette images are expanded,
    16-bit images are scaled with round(v / 257) (not clipped). EXIF orientation is ignored so that images stay
    aligned with their masks. A corrupt or truncated file raises :class:`DatasetError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image file {path} does not exist")
    img = _read_pil(path)  # full decode: catches truncated files, which cv2 would silently pad
    if _png_bit_depth(path) == 16 or img.mode in ("I;16", "I;16B", "I;16L", "I") and img.format != "PNG":
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keeps all 16 bits of RGB PNG/TIFF, unlike PIL
        if raw is not None:
            if raw.ndim == 3:
                raw = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA if raw.shape[2] == 4 else cv2.COLOR_BGR2RGB)
            return _to_rgb(_to_uint8(raw, path))
        if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise _corrupt(path, "OpenCV cannot decode this 16-bit image")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _to_rgb(_to_uint8(np.asarray(img), path))
    if img.mode == "F":
        return _to_rgb(_to_uint8(np.asarray(img), path))
    if img.mode == "L":
        return _to_rgb(np.asarray(img))
    if img.mode != "RGB":
        img = img.convert("RGBA" if img.mode in ("P", "PA", "LA") else "RGB")
    return _to_rgb(np.asarray(img))


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file read from its header only (cheap)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError as exc:
        raise DatasetError(f"image file {path} does not exist") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise _corrupt(path, exc) from exc
    return h, w


def load_mask(sample_or_path: Sample | str | Path | None, image_shape: Sequence[int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as a bool array (H, W): any non-zero value is a defect (VisA masks are multi-class
    index images; palette masks are read by index, not colour).

    ``sample_or_path`` is a :class:`Sample` or a mask path. A normal sample (``mask_path`` None, or a None path)
    gives an all-False mask of ``image_shape`` (read from the sample's image header when not given). When the
    image's (H, W) is known (``image_shape`` or the sample's image), a mask of another size raises
    :class:`DatasetError` naming both files.
    """
    image_path: Path | None = None
    if isinstance(sample_or_path, Sample):
        image_path = sample_or_path.image_path
        mask_path = sample_or_path.mask_path
    else:
        mask_path = None if sample_or_path is None else Path(sample_or_path)
    if image_shape is None and image_path is not None:
        image_shape = image_size(image_path)
    expected = None if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
    if mask_path is None:
        if expected is None:
            raise ValueError("load_mask of a normal sample needs image_shape (or a Sample with an image path)")
        return np.zeros(expected, dtype=bool)
    if not Path(mask_path).is_file():
        raise DatasetError(f"mask file {mask_path} does not exist")
    img = _read_pil(Path(mask_path))
    arr = np.asarray(img)
    if arr.ndim == 3:
        channels = arr[:, :, :3] if arr.shape[2] >= 3 else arr[:, :, :1]
        arr = channels.any(axis=2)
    mask = arr != 0
    if expected is not None and mask.shape != expected:
        of = f"its image {image_path}" if image_path is not None else "the image"
        raise DatasetError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but {of} is {expected[1]}x{expected[0]}; "
            "the mask does not belong to this image — re-extract the dataset"
        )
    return mask


# --------------------------------------------------------------------------------------------------- resize


def _target(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from an int or an (H, W) pair."""
    if isinstance(size, int | np.integer):
        h = w = int(size)
    else:
        h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"resize target must be positive, got {size!r}")
    return h, w


def resize_image(img: np.ndarray, size: int | Sequence[int] = 240, interpolation: str = "cubic") -> np.ndarray:
    """Resize an image (H, W, 3) uint8 to (size, size, 3) uint8 — no crop, aspect ratio not kept.

    ``interpolation="cubic"`` (default): ``cv2.INTER_CUBIC``, result rounded and clipped to 0..255 (OpenCV's
    saturating cast). ``"pil_bicubic"``: PIL's antialiased bicubic, which is what torchvision/open_clip's
    ``Resize`` does to PIL images. ``size`` may be an int or an (H, W) pair.
    """
    h, w = _target(size)
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"resize_image expects uint8 RGB, got dtype {img.dtype}")
    if interpolation == "cubic":
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    if interpolation == "pil_bicubic":
        return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))
    raise ValueError(f"unknown interpolation {interpolation!r}; expected 'cubic' or 'pil_bicubic'")


def resize_mask(mask: np.ndarray, size: int | Sequence[int] = 240, method: str = "area") -> np.ndarray:
    """Resize a bool mask (H, W) to (size, size) bool with the same geometry as :func:`resize_image`.

    ``method="area"`` (default): the mask is resized as a float image — ``cv2.INTER_AREA`` when shrinking (each
    output pixel is the exact fraction of its footprint covered by defect), ``cv2.INTER_LINEAR`` when enlarging —
    and thresholded at >= 0.5. This keeps region areas and boundaries unbiased (no half-pixel shift, no aliasing
    of borders); structures thinner than about half an output pixel (e.g. 1-px scratches at 1024 -> 240) vanish.
    ``method="nearest"``: ``cv2.INTER_NEAREST_EXACT`` (pixel-centre sampling, as PIL's NEAREST that the public
    reproductions apply to PIL masks): thin structures survive or drop depending on where samples fall.
    """
    h, w = _target(size)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"resize_mask expects a 2-D mask (H, W), got shape {mask.shape}")
    m = (mask != 0).astype(np.uint8 if method == "nearest" else np.float32)
    if method == "nearest":
        return cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST_EXACT).astype(bool)
    if method != "area":
        raise ValueError(f"unknown mask resize method {method!r}; expected 'area' or 'nearest'")
    shrink = h <= mask.shape[0] and w <= mask.shape[1]
    out = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out >= 0.5


# -------------------------------------------------------------------------------------------- few-shot refs


def sample_references(dataset: str, root: str | Path, category: str, k: int, seed: int) -> list[Sample]:
    """Draw ``k`` normal training images of a category without replacement.

    The draw is ``numpy.random.default_rng(seed).permutation(n)[:k]`` over the normal training images sorted by
    :func:`load_split`, so it is the same on every machine (with the pinned numpy) and nested: for one seed the
    k=1 draw is the first image of the k=2 draw, and so on. See :data:`DEFAULT_SEEDS`.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer number of reference images, got {k!r}")
    normal = [s for s in load_split(dataset, root, category, "train") if s.label == 0]
    if k > len(normal):
        raise DatasetError(
            f"k={k} reference images requested but {dataset}/{category} has only {len(normal)} normal training "
            f"images under {Path(root) / category}"
        )
    order = np.random.default_rng(seed).permutation(len(normal))[: int(k)]
    return [normal[i] for i in order]


def class_name(category: str, dataset: str | None = None, overrides: Mapping[str, str] | None = None) -> str:
    """The object word used in prompts for a category folder name (e.g. "pcb1" -> "printed circuit board",
    "bracket_black" -> "black bracket"). ``overrides`` takes precedence over :data:`CLASS_NAMES`; unknown names
    get underscores replaced by spaces. ``dataset``, when given, must be a known dataset."""
    if dataset is not None:
        _check_dataset(dataset)
    if overrides and category in overrides:
        return overrides[category]
    return CLASS_NAMES.get(category, category.replace("_", " "))
