"""Window-masked image encoding (WinCLIP §3.3, Fig. 6).

For an image the ViT turns into a G x G grid of patch tokens (G = 15 for ViT-B/16+ at 240 px), a *window* of scale k
is a k x k block of patches. Its embedding is what the ViT outputs when it sees *only* those tokens::

    sequence(w) = [cls + pos_0,  conv(p) + pos_p  for p in w]      (1 + k*k tokens)
    f(w)        = proj(ln_post(transformer(ln_pre(sequence(w)))[cls]))

Windows slide with stride 1 and are ordered row-major by their top-left patch, so scale 2 gives 14 x 14 = 196
windows and scale 3 gives 13 x 13 = 169. All windows of a scale go through the transformer as one batch of short
sequences (chunked only to bound memory) — no Python loop over windows.

The same call also runs the whole image once, which gives the image embedding (the class token) and the final-layer
patch tokens used by WinCLIP+'s patch memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from winclip_lib.backbone import Backbone

DEFAULT_SCALES: tuple[int, ...] = (2, 3)
DEFAULT_MAX_TOKENS = 65536  # tokens per transformer call; bounds activation memory


def window_indices(grid: int, k: int, stride: int = 1) -> torch.Tensor:
    """Patch indices (row-major in the grid) of every k x k window, windows row-major by top-left patch.

    Returns:
        LongTensor (n_k, k*k), n_k = ((grid - k) // stride + 1) ** 2.
    """
    if not 1 <= k <= grid:
        raise ValueError(f"window scale k={k} must be between 1 and the grid size {grid}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    starts = torch.arange(0, grid - k + 1, stride)
    offsets = torch.arange(k)
    rows = starts[:, None, None, None] + offsets[None, None, :, None]  # (n, 1, k, 1)
    cols = starts[None, :, None, None] + offsets[None, None, None, :]  # (1, n, 1, k)
    idx = rows * grid + cols  # (n, n, k, k)
    return idx.reshape(-1, k * k)


def window_masks(grid: int, k: int, stride: int = 1) -> torch.Tensor:
    """BoolTensor (n_k, grid, grid): the patches each window covers (for drawing and brute-force checks)."""
    idx = window_indices(grid, k, stride)
    masks = torch.zeros(idx.shape[0], grid * grid, dtype=torch.bool)
    masks.scatter_(1, idx, True)
    return masks.reshape(-1, grid, grid)


@dataclass
class Features:
    """What one encoding pass gives for a batch of B images.

    Attributes:
        image: (B, D) projected class-token embedding of the whole image (not normalised).
        windows: {k: (B, n_k, D)} projected class-token embedding of every k x k window (not normalised).
        patches: (B, G*G, W) final-layer patch tokens of the whole image (after ``ln_post`` unless the encoder
            was asked otherwise), not projected.
        grid: G, patches per side.
        stride: the window stride.
    """

    image: torch.Tensor
    windows: dict[int, torch.Tensor]
    patches: torch.Tensor
    grid: int
    stride: int = 1
    meta: dict = field(default_factory=dict)

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(sorted(self.windows))

    def __len__(self) -> int:
        return self.image.shape[0]

    def to(self, *args, **kwargs) -> Features:
        return Features(
            self.image.to(*args, **kwargs),
            {k: v.to(*args, **kwargs) for k, v in self.windows.items()},
            self.patches.to(*args, **kwargs),
            self.grid,
            self.stride,
            dict(self.meta),
        )

    def __getitem__(self, sel) -> Features:
        """Select images: an int, slice or index tensor along the batch dimension."""
        if isinstance(sel, int):
            sel = slice(sel, sel + 1)
        return Features(
            self.image[sel], {k: v[sel] for k, v in self.windows.items()}, self.patches[sel], self.grid, self.stride,
            dict(self.meta),
        )

    @staticmethod
    def cat(parts: list[Features]) -> Features:
        if not parts:
            raise ValueError("Features.cat needs at least one part")
        first = parts[0]
        return Features(
            torch.cat([p.image for p in parts]),
            {k: torch.cat([p.windows[k] for p in parts]) for k in first.windows},
            torch.cat([p.patches for p in parts]),
            first.grid,
            first.stride,
            dict(first.meta),
        )

    def state_dict(self) -> dict:
        return {
            "image": self.image,
            "windows": {int(k): v for k, v in self.windows.items()},
            "patches": self.patches,
            "grid": self.grid,
            "stride": self.stride,
            "meta": self.meta,
        }

    @staticmethod
    def from_state_dict(d: dict) -> Features:
        return Features(d["image"], dict(d["windows"]), d["patches"], int(d["grid"]), int(d["stride"]), d["meta"])


def token_embeddings(visual, x: torch.Tensor) -> torch.Tensor:
    """The ViT's input sequence for whole images, after ``ln_pre``.

    Args:
        visual: an open_clip ``VisionTransformer``.
        x: (B, 3, H, W) normalised images.

    Returns:
        (B, 1 + G*G, W): row 0 is cls + pos_0, row 1 + p is conv(patch p) + pos_{1+p}. ``ln_pre`` acts per token,
        so a window's sequence is exactly a gather of these rows.
    """
    t = visual.conv1(x.to(visual.conv1.weight.dtype))  # (B, W, G, G)
    t = t.flatten(2).transpose(1, 2)  # (B, G*G, W)
    cls = visual.class_embedding.to(t.dtype).expand(t.shape[0], 1, -1)
    t = torch.cat([cls, t], dim=1) + visual.positional_embedding.to(t.dtype)
    return visual.ln_pre(t)


def run_transformer(transformer, x: torch.Tensor) -> torch.Tensor:
    """Run open_clip's transformer blocks on batch-first sequences x (N, L, W) and return (N, L, W).

    The blocks are driven directly and fed the layout they expect: open_clip >= 3 builds them batch-first
    (``transformer.batch_first`` is True), older releases sequence-first. Handing sequence-first input to batch-first
    blocks attends across windows instead of within them — every window then gets the same embedding (the bug of
    anomalib's WinCLIP with open_clip 3, its issue #2571).
    """
    batch_first = getattr(transformer, "batch_first", False)
    if not batch_first:
        x = x.transpose(0, 1)
    for block in transformer.resblocks:
        x = block(x)
    if not batch_first:
        x = x.transpose(0, 1)
    return x


def pool_and_project(visual, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """open_clip's own pooling (``ln_post`` and the class token) and projection.

    Args:
        x: (N, L, W) transformer output.

    Returns:
        pooled (N, D) projected embedding, tokens (N, L-1, W) the non-class tokens after ``ln_post``.
    """
    pooled, tokens = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled, tokens


def _encode_sequences(visual, seqs: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """(N, L, W) token sequences -> (N, D) projected class embeddings, in chunks of at most max_tokens tokens."""
    n, length = seqs.shape[:2]
    per_call = max(1, max_tokens // length)
    out = [pool_and_project(visual, run_transformer(visual.transformer, seqs[i : i + per_call]))[0]
           for i in range(0, n, per_call)]
    return torch.cat(out)


@torch.inference_mode()
def encode_images(
    backbone: Backbone,
    x: torch.Tensor,
    scales: tuple[int, ...] = DEFAULT_SCALES,
    *,
    stride: int = 1,
    patch_ln_post: bool = True,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Features:
    """Encode a batch: the whole image, every window of every scale, and the patch tokens.

    Args:
        backbone: the CLIP backbone.
        x: (B, 3, S, S) CLIP-normalised images, S = the model's input size (240).
        scales: window sizes in patches (paper: 2 and 3).
        stride: window stride in patches (paper: 1).
        patch_ln_post: patch tokens after ``ln_post`` (True) or straight out of the last block (False) — public
            reproductions differ on this; both are reachable.
        max_tokens: tokens per transformer call (memory bound); windows are chunked to fit.

    Returns:
        :class:`Features` with image (B, D), windows {k: (B, n_k, D)}, patches (B, G*G, W), all float32 on the
        backbone's device.
    """
    visual = backbone.visual
    size, grid = backbone.image_size, backbone.grid_size
    if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (size, size):
        raise ValueError(f"expected a (B, 3, {size}, {size}) batch, got {tuple(x.shape)}; use winclip_lib.preprocess")
    if x.shape[0] == 0:
        raise ValueError("empty batch: nothing to encode")
    x = x.to(device=backbone.device, dtype=backbone.dtype)
    b = x.shape[0]

    tokens = token_embeddings(visual, x)  # (B, 1+G*G, W)

    out = run_transformer(visual.transformer, tokens)  # whole images
    image, patches = pool_and_project(visual, out)
    if not patch_ln_post:
        patches = out[:, 1:]

    windows: dict[int, torch.Tensor] = {}
    for k in scales:
        idx = window_indices(grid, k, stride).to(tokens.device)  # (n_k, k*k)
        n_k = idx.shape[0]
        seq_idx = torch.cat([torch.zeros(n_k, 1, dtype=idx.dtype, device=idx.device), idx + 1], dim=1)
        seqs = tokens[:, seq_idx].reshape(b * n_k, 1 + k * k, -1)  # (B*n_k, 1+k*k, W)
        windows[k] = _encode_sequences(visual, seqs, max_tokens).reshape(b, n_k, -1).float()

    return Features(image.float(), windows, patches.float(), grid, stride,
                    {"patch_ln_post": patch_ln_post})
