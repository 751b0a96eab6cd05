"""Preprocessing geometry: how an (H, W) photo becomes the model's S x S input, and how masks and maps follow it.

Modes (:data:`RESIZE_MODES`):

- ``"resize"`` (the default): the whole image is resized to S x S (PIL's antialiased bicubic), aspect ratio not
  kept; every pixel of the photo is seen and the map covers the whole photo.
- ``"crop"``: open_clip's own transform — the shorter side resized to S (same resampling), then the centre S x S
  crop; the part of a non-square photo outside the crop is not seen, and has no map.
- ``"resize_via_1024"``: as ``"resize"``, through an intermediate 1024 x 1024 (OpenCV's bilinear; masks nearest),
  as caoyunkang/WinClip prepares its images.

A mask goes through the same geometry as its image (:meth:`Geometry.mask`), so mask pixel (i, j) lines up with input
pixel (i, j); an S x S map is carried back onto the photo's own pixels by :meth:`Geometry.map_to_image` (NaN outside
the covered region) and onto the covered part of a full-resolution mask by :meth:`Geometry.region`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from winclip_lib.core.choices import check_choice

__all__ = ["MASK_METHODS", "RESIZE_MODES", "Geometry", "resize_image", "resize_mask"]

RESIZE_MODES = ("resize", "crop", "resize_via_1024")
MASK_METHODS = ("area", "nearest", "bilinear")
#: The intermediate side of ``"resize_via_1024"``.
VIA_SIDE = 1024


def _target(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from an int or an (H, W) pair."""
    if isinstance(size, int | np.integer):
        h = w = int(size)
    else:
        h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"resize target must be positive, got {size!r}")
    return h, w


def resize_image(img: np.ndarray | Image.Image, size: int | Sequence[int] = 240, interpolation: str = "cubic"
                 ) -> np.ndarray:
    """Resize an image (H, W, 3) uint8 (or a PIL RGB image) to (size, size, 3) uint8 — no crop, aspect ratio not kept.

    ``interpolation="cubic"`` (default): ``cv2.INTER_CUBIC``, result rounded and clipped to 0..255 (OpenCV's
    saturating cast). ``"pil_bicubic"``: PIL's antialiased bicubic, which is what torchvision/open_clip's
    ``Resize`` does to PIL images. ``size`` may be an int or an (H, W) pair.
    """
    h, w = _target(size)
    if isinstance(img, Image.Image):
        if img.mode != "RGB":
            raise ValueError(f"resize_image expects an RGB image, got PIL mode {img.mode!r}")
        if interpolation == "pil_bicubic":  # PIL's own image: no copy into an array and back
            return np.asarray(img.resize((w, h), Image.Resampling.BICUBIC))
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"resize_image expects uint8 RGB, got dtype {img.dtype}")
    if interpolation == "cubic":
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    if interpolation == "linear":
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    if interpolation == "pil_bicubic":
        return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))
    raise ValueError(f"unknown interpolation {interpolation!r}; expected 'cubic', 'linear' or 'pil_bicubic'")


def resize_mask(mask: np.ndarray, size: int | Sequence[int] = 240, method: str = "area") -> np.ndarray:
    """Resize a bool mask (H, W) to (size, size) bool with the same geometry as :func:`resize_image`.

    ``method="area"`` (default): the mask is resized as a float image — ``cv2.INTER_AREA`` when shrinking (each
    output pixel is the exact fraction of its footprint covered by defect), ``cv2.INTER_LINEAR`` when enlarging —
    and thresholded at >= 0.5. This keeps region areas and boundaries unbiased (no half-pixel shift, no aliasing
    of borders); structures thinner than about half an output pixel (e.g. 1-px scratches at 1024 -> 240) vanish.
    ``method="nearest"``: ``cv2.INTER_NEAREST_EXACT`` (pixel-centre sampling, as PIL's NEAREST that the public
    reproductions apply to PIL masks): thin structures survive or drop depending on where samples fall.
    ``method="bilinear"``: PIL's bilinear resize of the 0/255 mask (what torchvision's default ``Resize`` does to a
    PIL mask), then > 0.5 — the AnomalyCLIP authors' WinCLIP code.
    """
    h, w = _target(size)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"resize_mask expects a 2-D mask (H, W), got shape {mask.shape}")
    if method == "bilinear":
        pil = Image.fromarray(((mask != 0) * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(pil).astype(np.float32) / 255.0 > 0.5
    m = (mask != 0).astype(np.uint8 if method == "nearest" else np.float32)
    if method == "nearest":
        return cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST_EXACT).astype(bool)
    if method != "area":
        raise ValueError(f"unknown mask resize method {method!r}; expected one of {', '.join(MASK_METHODS)}")
    shrink = h <= mask.shape[0] and w <= mask.shape[1]
    out = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out >= 0.5


@dataclass(frozen=True)
class Geometry:
    """The mapping between a photo of (H, W) pixels and the model's S x S input (see the module docstring).

    Attributes:
        size: S, the model's input side (240 for ViT-B/16+).
        mode: "resize" or "crop".
    """

    size: int = 240
    mode: str = "resize"

    def __post_init__(self) -> None:
        check_choice("resize mode", self.mode, RESIZE_MODES)
        if int(self.size) < 1:
            raise ValueError(f"input size must be positive, got {self.size}")

    def resized_shape(self, h: int, w: int) -> tuple[int, int]:
        """(rows, cols) of the photo after resizing, before any crop."""
        if self.mode != "crop":
            return self.size, self.size
        scale = self.size / min(h, w)
        return max(self.size, round(h * scale)), max(self.size, round(w * scale))

    def crop_offset(self, h: int, w: int) -> tuple[int, int]:
        """(top, left) of the S x S input inside the resized photo."""
        rh, rw = self.resized_shape(h, w)
        return (rh - self.size) // 2, (rw - self.size) // 2

    def image(self, rgb: np.ndarray | Image.Image) -> np.ndarray:
        """(H, W, 3) uint8 photo (or a PIL RGB image, e.g. :func:`~winclip_lib.core.imageio.load_rgb`'s) -> (S, S, 3)
        uint8 model input."""
        if isinstance(rgb, Image.Image):
            w, h = rgb.size
        else:
            rgb = np.asarray(rgb)
            h, w = rgb.shape[:2]
        if self.mode == "resize_via_1024":
            rgb = resize_image(rgb, VIA_SIDE, interpolation="linear")
        rh, rw = self.resized_shape(h, w)
        out = resize_image(rgb, (rh, rw), interpolation="pil_bicubic")
        return self._crop(out, h, w)

    def mask(self, mask: np.ndarray, method: str = "area") -> np.ndarray:
        """(H, W) bool mask -> (S, S) bool, through the same resize and crop as :meth:`image` (:func:`resize_mask`)."""
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
        h, w = mask.shape
        if self.mode == "resize_via_1024":
            mask = resize_mask(mask, VIA_SIDE, "nearest")
        return self._crop(resize_mask(mask, self.resized_shape(h, w), method), h, w)

    def _crop(self, arr: np.ndarray, h: int, w: int) -> np.ndarray:
        top, left = self.crop_offset(h, w)
        return np.ascontiguousarray(arr[top : top + self.size, left : left + self.size])

    def _input_coords(self, n: int, resized: int, offset: int) -> np.ndarray:
        """Input-space coordinate (in input pixels) of the centres of n photo pixels along one axis."""
        return (np.arange(n) + 0.5) * resized / n - offset

    def region(self, h: int, w: int) -> tuple[slice, slice]:
        """(rows, cols) of the photo pixels whose centres the input covers: everything for "resize", the centre crop
        for "crop". ``mask[region]`` is the part of a full-resolution mask a map can be compared with."""
        rh, rw = self.resized_shape(h, w)
        top, left = self.crop_offset(h, w)
        out = []
        for n, resized, offset in ((h, rh, top), (w, rw, left)):
            inside = np.nonzero((lambda c: (c >= 0) & (c < self.size))(self._input_coords(n, resized, offset)))[0]
            out.append(slice(int(inside[0]), int(inside[-1]) + 1))
        return out[0], out[1]

    def map_to_region(self, maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, S', S') maps over the input (any S', e.g. the S x S map or the G x G grid) -> (B, h', w') values at the
        centres of the photo pixels of :meth:`region`, bilinear (align_corners=False, as the input covers them).

        For "resize" this is exactly ``F.interpolate(maps, (h, w), mode="bilinear", align_corners=False)``.
        """
        maps = maps.float()
        if self.mode != "crop":
            return F.interpolate(maps[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        rows, cols = self.region(h, w)
        rh, rw = self.resized_shape(h, w)
        top, left = self.crop_offset(h, w)
        ys = self._input_coords(h, rh, top)[rows] / self.size * 2 - 1  # normalised to [-1, 1] over the input
        xs = self._input_coords(w, rw, left)[cols] / self.size * 2 - 1
        grid = torch.stack(torch.meshgrid(torch.as_tensor(ys, dtype=torch.float64),
                                          torch.as_tensor(xs, dtype=torch.float64), indexing="ij")[::-1], dim=-1)
        grid = grid.to(maps.device)[None].expand(maps.shape[0], -1, -1, -1)
        out = F.grid_sample(maps[:, None].double(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out[:, 0].float()

    def map_to_image(self, maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, S', S') maps -> (B, h, w) over the whole photo: :meth:`map_to_region` inside the covered region, NaN
        outside it (only "crop" leaves anything outside)."""
        inside = self.map_to_region(maps, h, w)
        if self.mode != "crop":
            return inside
        out = torch.full((maps.shape[0], h, w), float("nan"), dtype=inside.dtype, device=inside.device)
        rows, cols = self.region(h, w)
        out[:, rows, cols] = inside
        return out
