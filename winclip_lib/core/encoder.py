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

The transformer blocks themselves are driven by :mod:`winclip_lib.core.vit_blocks` (layout-correct and fast).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.features import Features
from winclip_lib.core.openclip_adapter import check_visual, cls_only_pooling, pool
from winclip_lib.core.vit_blocks import block_qkv, fast_block, fast_path_supported, run_blocks, run_transformer

#: Patch-token variants the encoder can keep (all from the one whole-image pass): the last block's output after
#: ``ln_post`` (open_clip's own tokens), without it, and the second-to-last block's output without and with ``ln_post``.
PATCH_TOKENS = ("ln_post", "raw", "penultimate", "penultimate_ln_post")
#: Side of each multi-crop view, as a fraction of the input side.
CROP_SCALE = 0.75
DEFAULT_MAX_TOKENS = 65536  # tokens per transformer call; bounds activation memory
CPU_CALL_TOKENS = 2048  # on the CPU, calls stay this small: the GEMMs' operands stay in cache
#: Images per encoding pass on the CPU under ``batch_size="auto"``: its calls are already cache-sized, and a larger
#: batch only holds more memory.
CPU_BATCH_SIZE = 8
#: The largest ``"auto"`` batch on a GPU: beyond it the encoder's calls are as large as :data:`DEFAULT_MAX_TOKENS`
#: lets them be and nothing is gained (an H200 ran 431 img/s in bf16 at 256).
MAX_AUTO_BATCH = 256


def call_tokens(max_tokens: int, device: torch.device) -> int:
    """Tokens per transformer call: ``max_tokens``, capped at :data:`CPU_CALL_TOKENS` on the CPU (a call always
    holds at least one image or window)."""
    return min(max_tokens, CPU_CALL_TOKENS) if device.type == "cpu" else max_tokens


def image_bytes(backbone: Backbone, scales: tuple[int, ...] = (2, 3), stride: int = 1) -> int:
    """Device memory one image of a batch holds while :func:`encode_images` runs on it, in bytes: its input, its
    whole-image tokens, first-block q/k/v and block outputs (kept for the windows), and its features (in the model's
    precision and as float32). The transformer calls' own activations are bounded by ``max_tokens`` instead
    (:func:`call_bytes`)."""
    size, grid, width, dim = backbone.image_size, backbone.grid_size, backbone.width, backbone.embed_dim
    item = torch.finfo(backbone.dtype).bits // 8
    tokens = grid * grid + 1
    windows = sum(((grid - k) // stride + 1) ** 2 for k in scales)
    features = dim * (1 + windows) + grid * grid * width
    return 3 * size * size * (4 + item) + tokens * width * item * 8 + features * (item + 4)


def call_bytes(backbone: Backbone, max_tokens: int = DEFAULT_MAX_TOKENS) -> int:
    """A bound on the activations of one transformer call of ``max_tokens`` tokens (q/k/v, attention, the MLP)."""
    item = torch.finfo(backbone.dtype).bits // 8
    return max_tokens * backbone.width * item * 16


def resolve_batch_size(batch_size: int | str, backbone: Backbone, free_bytes: int | None = None,
                       max_tokens: int = DEFAULT_MAX_TOKENS) -> int:
    """Images per encoding pass: ``batch_size`` itself, or for ``"auto"`` what fits the device.

    On the CPU (and any device that is not CUDA) ``"auto"`` is :data:`CPU_BATCH_SIZE`. On a GPU it is the largest
    power of two whose images (:func:`image_bytes`) fit in a quarter of the free memory (``free_bytes``, default
    ``torch.cuda.mem_get_info``) beside one transformer call (:func:`call_bytes`), between
    :data:`CPU_BATCH_SIZE` and :data:`MAX_AUTO_BATCH`.
    """
    if batch_size != "auto":
        n = int(batch_size)
        if n < 1:
            raise ValueError(f"batch_size must be >= 1 or 'auto', got {batch_size!r}")
        return n
    if backbone.device.type != "cuda":
        return CPU_BATCH_SIZE
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(backbone.device)[0]
    room = free_bytes // 4 - call_bytes(backbone, max_tokens)
    fits = max(1, room // image_bytes(backbone))
    return int(min(MAX_AUTO_BATCH, max(CPU_BATCH_SIZE, 2 ** int(math.log2(fits)))))


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


@functools.lru_cache(maxsize=64)
def _window_sequences(grid: int, k: int, stride: int, device: torch.device) -> torch.Tensor:
    """LongTensor (n_k, 1 + k*k) on ``device``: the class token's position, then :func:`window_indices` + 1 (the
    positions in the image's token sequence). Made once per device: a copy from pageable memory waits for the
    device's queued work, which on a GPU would hold the host at every call."""
    with torch.inference_mode(False):  # a normal tensor, whatever mode the first call ran in
        idx = window_indices(grid, k, stride)
        return torch.cat([torch.zeros(idx.shape[0], 1, dtype=idx.dtype), idx + 1], dim=1).to(device)


def window_masks(grid: int, k: int, stride: int = 1) -> torch.Tensor:
    """BoolTensor (n_k, grid, grid): the patches each window covers (for drawing and brute-force checks)."""
    idx = window_indices(grid, k, stride)
    masks = torch.zeros(idx.shape[0], grid * grid, dtype=torch.bool)
    masks.scatter_(1, idx, True)
    return masks.reshape(-1, grid, grid)


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
    """open_clip's own pooling (``ln_post`` and the class token) and projection
    (:func:`~winclip_lib.core.openclip_adapter.pool`).

    Args:
        x: (N, L, W) transformer output.

    Returns:
        pooled (N, D) projected embedding, tokens (N, L-1, W) the non-class tokens after ``ln_post``.
    """
    return pool(visual, x)


def _window_chunk(visual, seqs: torch.Tensor, qkv: torch.Tensor, cls_only: bool) -> torch.Tensor:
    """Fast path for a chunk of window sequences (P, L, W) with their gathered first-block q/k/v (P, L, 3W): the
    projected class embeddings (P, D). One function of the chunk, so ``torch.compile`` can take it whole."""
    blocks = list(visual.transformer.resblocks)
    y = fast_block(blocks[0], seqs, qkv=qkv, cls_only=cls_only and len(blocks) == 1)
    for i, block in enumerate(blocks[1:], start=2):
        y = fast_block(block, y, cls_only=cls_only and i == len(blocks))
    return pool_and_project(visual, y)[0]


def _image_chunk(visual, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fast path for whole images' tokens (B, 1+G*G, W): (transformer output (B, 1+G*G, W), the input of the last
    block (B, 1+G*G, W), first-block q/k/v (B, 1+G*G, 3W) for the windows to gather)."""
    blocks = list(visual.transformer.resblocks)
    qkv = block_qkv(blocks[0], tokens)
    out = fast_block(blocks[0], tokens, qkv=qkv)
    before_last = tokens if len(blocks) == 1 else out
    for i, block in enumerate(blocks[1:], start=2):
        if i == len(blocks):
            before_last = out
        out = fast_block(block, out)
    return out, before_last, qkv


def _whole_images(visual, tokens: torch.Tensor, budget: int, fast: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Whole images' tokens (B, 1+G*G, W) through the transformer in chunks of images: (output, input of the last
    block, first-block q/k/v or None off the fast path), each (B, 1+G*G, ·)."""
    per_call = max(1, budget // tokens.shape[1])
    outs, befores, qkvs = [], [], []
    for i in range(0, tokens.shape[0], per_call):
        t = tokens[i : i + per_call]
        if fast:
            o, before, qkv = _image_chunk(visual, t)
            qkvs.append(qkv)
        else:
            before = run_blocks(visual.transformer, t, stop=-1)
            o = run_blocks(visual.transformer, before, start=-1)
        outs.append(o)
        befores.append(before)
    return torch.cat(outs), torch.cat(befores), (torch.cat(qkvs) if fast else None)


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


def crop_boxes(size: int, scale: float = CROP_SCALE) -> list[tuple[int, int, int]]:
    """(top, left, side) of the multi-crop views of an S x S input: the centre and the four corners, each of side
    round(scale * S)."""
    side = round(scale * size)
    far, mid = size - side, (size - side) // 2
    return [(mid, mid, side), (0, 0, side), (0, far, side), (far, 0, side), (far, far, side)]


def tile_boxes(grid: int, patch: int, k: int, stride: int = 1) -> list[tuple[int, int, int]]:
    """(top, left, side) in input pixels of the region of every k x k window (the order of :func:`window_indices`)."""
    starts = range(0, grid - k + 1, stride)
    return [(r * patch, c * patch, k * patch) for r in starts for c in starts]


def _views(x: torch.Tensor, boxes: list[tuple[int, int, int]], size: int) -> torch.Tensor:
    """Every box of one image x (3, S, S), resized to S x S (bicubic): (len(boxes), 3, S, S)."""
    stacked = torch.stack([x[:, t : t + s, l : l + s] for t, l, s in boxes])
    if stacked.shape[-1] == size:
        return stacked
    return F.interpolate(stacked.float(), size=(size, size), mode="bicubic", align_corners=False).to(x.dtype)


def _embed_views(visual, x: torch.Tensor, boxes: list[tuple[int, int, int]], size: int, budget: int, fast: bool
                 ) -> torch.Tensor:
    """Projected class embedding of every view (:func:`_views`) of every image of x (B, 3, S, S): (B, len(boxes),
    D). Each view is a full pass; views are made and encoded a call's worth at a time."""
    per_call = max(1, budget // token_count(visual))
    out = []
    for image in x:
        for i in range(0, len(boxes), per_call):
            tokens = token_embeddings(visual, _views(image, boxes[i : i + per_call], size))
            whole, _, _ = _whole_images(visual, tokens, budget, fast)
            out.append(pool_and_project(visual, whole)[0])
    emb = torch.cat(out)
    return emb.reshape(x.shape[0], len(boxes), emb.shape[-1])


def token_count(visual) -> int:
    """Tokens of one whole image: the class token and G*G patches."""
    return int(visual.grid_size[0] * visual.grid_size[1]) + 1


@torch.inference_mode()
def encode_images(
    backbone: Backbone,
    x: torch.Tensor,
    scales: tuple[int, ...],
    *,
    stride: int = 1,
    patch_tokens: tuple[str, ...] = ("ln_post",),
    crops: bool = False,
    tile_scales: tuple[int, ...] = (),
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Features:
    """Encode a batch: the whole image, every window of every scale, and the patch tokens (and, when asked, the
    multi-crop views and the tiles).

    Args:
        backbone: the CLIP backbone.
        x: (B, 3, S, S) CLIP-normalised images, S = the model's input size (240).
        scales: window sizes in patches (paper: 2 and 3).
        stride: window stride in patches (paper: 1).
        patch_tokens: which patch tokens to keep, by name (:data:`PATCH_TOKENS`); the first becomes
            ``Features.patches``, the others go to ``Features.extra`` as ``"patches.<name>"``. Public reproductions
            differ on this; every variant comes from the same pass.
        crops: also embed the multi-crop views (:func:`crop_boxes`: centre and corners, resized to S) —
            ``Features.extra["crops"]`` (B, 5, D); 5 extra full passes per image.
        tile_scales: also embed every k x k window *region* cropped and resized to S, through a full pass (the
            paper's "image tiling" baseline) — ``Features.extra["tiles.<k>"]`` (B, n_k, D); n_k full passes each.
        max_tokens: tokens per transformer call (memory bound); images and windows are chunked to fit. On the
            CPU calls hold at most :data:`CPU_CALL_TOKENS` tokens (cache-sized operands).

    Returns:
        :class:`Features` with image (B, D), windows {k: (B, n_k, D)}, patches (B, G*G, W) and the extras, all
        float32 on the backbone's device.
    """
    visual = backbone.visual
    check_visual(visual)
    size, grid = backbone.image_size, backbone.grid_size
    if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (size, size):
        raise ValueError(f"expected a (B, 3, {size}, {size}) batch, got {tuple(x.shape)}; use winclip_lib.preprocess")
    if x.shape[0] == 0:
        raise ValueError("empty batch: nothing to encode")
    unknown = [p for p in patch_tokens if p not in PATCH_TOKENS]
    if not patch_tokens or unknown:
        raise ValueError(f"patch_tokens must name one or more of {', '.join(PATCH_TOKENS)}, got {list(patch_tokens)}")
    x = x.to(device=backbone.device, dtype=backbone.dtype)

    tokens = token_embeddings(visual, x)  # (B, 1+G*G, W)
    budget = call_tokens(max_tokens, tokens.device)
    fast = fast_path_supported(visual)

    # the whole images; the fast path keeps the first block's q/k/v for the windows
    out, before_last, qkv1 = _whole_images(visual, tokens, budget, fast)
    image, tokens_ln_post = pool_and_project(visual, out)
    variants = {
        "ln_post": lambda: tokens_ln_post,
        "raw": lambda: out[:, 1:],
        "penultimate": lambda: before_last[:, 1:],
        "penultimate_ln_post": lambda: visual.ln_post(before_last)[:, 1:],
    }
    patches = {name: variants[name]().float() for name in dict.fromkeys(patch_tokens)}

    windows: dict[int, torch.Tensor] = {}
    for k in scales:
        seq_idx = _window_sequences(grid, k, stride, tokens.device)
        windows[k] = _encode_windows(visual, tokens, qkv1, seq_idx, budget).float()

    extra = {f"patches.{name}": t for name, t in list(patches.items())[1:]}
    if crops:
        extra["crops"] = _embed_views(visual, x, crop_boxes(size), size, budget, fast).float()
    for k in tile_scales:
        boxes = tile_boxes(grid, backbone.patch_size, k, stride)
        extra[f"tiles.{k}"] = _embed_views(visual, x, boxes, size, budget, fast).float()
    first = patch_tokens[0]
    return Features(image.float(), windows, patches[first], grid, stride, {"patch_tokens": first}, extra)
