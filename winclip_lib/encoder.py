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

The transformer blocks themselves are driven by :mod:`winclip_lib.vit_blocks` (layout-correct and fast).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from winclip_lib.backbone import Backbone
from winclip_lib.vit_blocks import block_qkv, cls_only_pooling, fast_block, fast_path_supported, run_transformer

DEFAULT_SCALES: tuple[int, ...] = (2, 3)
DEFAULT_MAX_TOKENS = 65536  # tokens per transformer call; bounds activation memory
CPU_CALL_TOKENS = 2048  # on the CPU, calls stay this small: the GEMMs' operands stay in cache


def call_tokens(max_tokens: int, device: torch.device) -> int:
    """Tokens per transformer call: ``max_tokens``, capped at :data:`CPU_CALL_TOKENS` on the CPU (a call always
    holds at least one image or window)."""
    return min(max_tokens, CPU_CALL_TOKENS) if device.type == "cpu" else max_tokens


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


def _window_chunk(visual, seqs: torch.Tensor, qkv: torch.Tensor, cls_only: bool) -> torch.Tensor:
    """Fast path for a chunk of window sequences (P, L, W) with their gathered first-block q/k/v (P, L, 3W): the
    projected class embeddings (P, D). One function of the chunk, so ``torch.compile`` can take it whole."""
    blocks = list(visual.transformer.resblocks)
    y = fast_block(blocks[0], seqs, qkv=qkv, cls_only=cls_only and len(blocks) == 1)
    for i, block in enumerate(blocks[1:], start=2):
        y = fast_block(block, y, cls_only=cls_only and i == len(blocks))
    return pool_and_project(visual, y)[0]


def _image_chunk(visual, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fast path for whole images' tokens (B, 1+G*G, W): (transformer output (B, 1+G*G, W), first-block q/k/v
    (B, 1+G*G, 3W) for the windows to gather)."""
    blocks = list(visual.transformer.resblocks)
    qkv = block_qkv(blocks[0], tokens)
    out = fast_block(blocks[0], tokens, qkv=qkv)
    for block in blocks[1:]:
        out = fast_block(block, out)
    return out, qkv


def _encode_windows(visual, tokens: torch.Tensor, qkv1: torch.Tensor | None, seq_idx: torch.Tensor,
                    max_tokens: int) -> torch.Tensor:
    """Projected class embeddings of every window of every image, (B, n, D).

    Args:
        tokens: (B, 1+G*G, W) the whole images' input tokens (:func:`token_embeddings`).
        qkv1: (B, 1+G*G, 3W) the first block's q/k/v of those tokens (fast path), or None (open_clip's blocks).
        seq_idx: (n, L) token indices of each window's sequence (class token first).
        max_tokens: tokens per transformer call; the (image, window) pairs are chunked to fit.
    """
    b, n, length = tokens.shape[0], seq_idx.shape[0], seq_idx.shape[1]
    cls_only = qkv1 is not None and cls_only_pooling(visual)
    per_call = max(1, max_tokens // length)
    out = []
    for start in range(0, b * n, per_call):
        pair = torch.arange(start, min(start + per_call, b * n), device=tokens.device)
        img, sel = (pair // n)[:, None], seq_idx[pair % n]  # (P, 1), (P, L)
        seqs = tokens[img, sel]  # (P, L, W)
        if qkv1 is None:
            out.append(pool_and_project(visual, run_transformer(visual.transformer, seqs))[0])
        else:
            out.append(_window_chunk(visual, seqs, qkv1[img, sel], cls_only))
    return torch.cat(out).reshape(b, n, -1)


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
        max_tokens: tokens per transformer call (memory bound); images and windows are chunked to fit. On the
            CPU calls hold at most :data:`CPU_CALL_TOKENS` tokens (cache-sized: measured ~10% faster than
            65536-token calls, and less memory).

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

    tokens = token_embeddings(visual, x)  # (B, 1+G*G, W)
    budget = call_tokens(max_tokens, tokens.device)
    fast = fast_path_supported(visual)

    # the whole images, in chunks of images; the fast path keeps the first block's q/k/v for the windows
    per_call = max(1, budget // tokens.shape[1])
    outs, qkvs = [], []
    for i in range(0, tokens.shape[0], per_call):
        t = tokens[i : i + per_call]
        if fast:
            o, qkv = _image_chunk(visual, t)
            qkvs.append(qkv)
        else:
            o = run_transformer(visual.transformer, t)
        outs.append(o)
    out = torch.cat(outs)
    qkv1 = torch.cat(qkvs) if fast else None
    image, patches = pool_and_project(visual, out)
    if not patch_ln_post:
        patches = out[:, 1:]

    windows: dict[int, torch.Tensor] = {}
    for k in scales:
        idx = window_indices(grid, k, stride).to(tokens.device)  # (n_k, k*k)
        seq_idx = torch.cat([torch.zeros(idx.shape[0], 1, dtype=idx.dtype, device=idx.device), idx + 1], dim=1)
        windows[k] = _encode_windows(visual, tokens, qkv1, seq_idx, budget).float()

    return Features(image.float(), windows, patches.float(), grid, stride,
                    {"patch_ln_post": patch_ln_post})
