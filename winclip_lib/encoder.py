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

Speed (same weights, same math; ``benchmarks/bench_speed.py`` measures it, tests check it against open_clip's own
modules). Almost all the time is the GEMMs of ~2,900 tokens per image through 12 blocks, so:

- fewer FLOPs, exactly: a window's first-block q/k/v are a gather of the whole image's (``ln_1`` and the input
  projection act per token), and its last block runs queries, output projection and MLP for the class token alone
  (the only token pooled) — together ~7% of the work;
- on the CPU, oneDNN's GEMMs with GELU and the residual adds fused (``WINCLIP_ONEDNN=0`` turns this off): fp32
  ~1.7x faster than PyTorch's default GEMM on the AMD CPU measured, bf16 a little faster;
- on the CPU, transformer calls of at most :data:`CPU_CALL_TOKENS` tokens (cache-sized, ~15% faster than 64k-token
  calls) and attention as two small matmuls (faster than the fused CPU kernel for 5-10 token sequences);
- elsewhere (CUDA) large calls (``max_tokens``), ``scaled_dot_product_attention`` and the blocks' own fused forward.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock

from winclip_lib.backbone import Backbone

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


def run_transformer(transformer, x: torch.Tensor) -> torch.Tensor:
    """Run open_clip's transformer blocks on batch-first sequences x (N, L, W) and return (N, L, W).

    The blocks are driven directly and fed the layout they expect: open_clip >= 3 builds them batch-first
    (``transformer.batch_first`` is True), older releases sequence-first. Handing sequence-first input to batch-first
    blocks attends across windows instead of within them — every window then gets the same embedding (the bug of
    anomalib's WinCLIP with open_clip 3, its issue #2571).

    Plain open_clip ``ResidualAttentionBlock`` modules take :func:`fast_block` (the same weights and modules, the
    layout handled explicitly); any other block runs its own ``forward``.
    """
    blocks = list(transformer.resblocks)
    if blocks and all(fast_block_supported(b) for b in blocks):
        for block in blocks:
            x = fast_block(block, x)
        return x
    batch_first = getattr(transformer, "batch_first", False)
    if not batch_first:
        x = x.transpose(0, 1)
    for block in blocks:
        x = block(x)
    if not batch_first:
        x = x.transpose(0, 1)
    return x


def fast_block_supported(block) -> bool:
    """True when ``block`` is a plain open_clip ``ResidualAttentionBlock`` that :func:`fast_block` reproduces exactly:
    its own ``forward`` (not a subclass override), self-attention through an ``nn.MultiheadAttention`` with packed
    q/k/v weights, no bias_k/bias_v/zero-attention, no cross-attention norm, and in eval mode (no dropout)."""
    attn = getattr(block, "attn", None)
    return (
        isinstance(block, ResidualAttentionBlock)
        and type(block).forward is ResidualAttentionBlock.forward
        and isinstance(attn, torch.nn.MultiheadAttention)
        and attn._qkv_same_embed_dim
        and attn.in_proj_weight is not None
        and attn.bias_k is None
        and attn.bias_v is None
        and not attn.add_zero_attn
        and not hasattr(block, "ln_1_kv")
        and not block.training
    )


ONEDNN_ENV = "WINCLIP_ONEDNN"  # set to 0 to use PyTorch's default GEMMs on the CPU
_ONEDNN: dict[str, bool] = {}


def onednn_linear_available() -> bool:
    """True when this PyTorch has oneDNN's fused linear (``torch.ops.mkldnn._linear_pointwise``, the op Inductor
    uses on the CPU) and it runs here. Checked once."""
    if "ok" not in _ONEDNN:
        ok = False
        if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
            try:
                x, w, b = torch.ones(2, 4), torch.ones(3, 4), torch.zeros(3)
                ok = bool(torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "").eq(4).all())
                y = torch.ops.mkldnn._linear_pointwise.binary(x, torch.ones(2, 3), w, b, "add")
                ok = ok and bool(y.eq(5).all())
            except Exception:  # an op that exists but does not run on this build or CPU
                ok = False
        _ONEDNN["ok"] = ok
    return _ONEDNN["ok"]


def _onednn_dtype_ok(dtype: torch.dtype) -> bool:
    if dtype == torch.float32:
        return True
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return dtype == torch.bfloat16 and (check is None or bool(check()))


def _use_onednn(x: torch.Tensor) -> bool:
    """oneDNN's GEMM for CPU fp32 / bf16 (unless ``WINCLIP_ONEDNN=0``): for fp32 it ran about 2x faster than
    PyTorch's default CPU GEMM on the AMD CPU this was measured on (MKL's sgemm), and it fuses the GELU and the
    residual adds into the GEMMs. Same weights and math; results agree with the default path to float rounding.
    Not under ``torch.compile``."""
    return (
        x.device.type == "cpu"
        and _onednn_dtype_ok(x.dtype)
        and os.environ.get(ONEDNN_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}
        and not _compiling()
        and onednn_linear_available()
    )


def _compiling() -> bool:
    """True while ``torch.compile`` traces (Inductor does its own GEMM lowering and fusions then)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling()) if is_compiling is not None else False


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False) -> torch.Tensor:
    """``F.linear`` (then exact GELU when asked) on (..., K); oneDNN's fused kernel on the CPU."""
    if _use_onednn(x):
        lead = x.shape[:-1]
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), weight, bias,
                                               "gelu" if gelu else "none", [], "none" if gelu else "")
        return y.reshape(*lead, weight.shape[0])
    y = F.linear(x, weight, bias)
    return F.gelu(y) if gelu else y


def _linear_add(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                ) -> torch.Tensor:
    """``residual + F.linear(x, weight, bias)``; on the CPU one oneDNN GEMM with the add fused."""
    if _use_onednn(x):
        y = torch.ops.mkldnn._linear_pointwise.binary(x.reshape(-1, x.shape[-1]),
                                                      residual.reshape(-1, residual.shape[-1]), weight, bias, "add")
        return y.reshape(residual.shape)
    return residual + F.linear(x, weight, bias)


def _in_proj(block, h: torch.Tensor, part: slice) -> torch.Tensor:
    """Rows ``part`` of the block's packed q/k/v input projection applied to h (..., W)."""
    attn = block.attn
    bias = attn.in_proj_bias
    return _linear(h, attn.in_proj_weight[part], None if bias is None else bias[part])


def _plain_mlp(block) -> bool:
    """True when the block's MLP is c_fc -> exact GELU -> c_proj and neither residual branch is layer-scaled, so
    GELU and the residual adds can be fused into the GEMMs."""
    mlp = block.mlp
    act = getattr(mlp, "gelu", None)
    return (
        isinstance(block.ls_1, torch.nn.Identity)
        and isinstance(block.ls_2, torch.nn.Identity)
        and list(getattr(mlp, "_modules", {})) == ["c_fc", "gelu", "c_proj"]
        and type(act) is torch.nn.GELU
        and act.approximate == "none"
    )


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (N, H, L, d). On the CPU as two matmuls and a softmax — for sequences of 5-10
    tokens faster than ``scaled_dot_product_attention``'s CPU kernel (measured); elsewhere the fused kernel."""
    if q.device.type == "cpu":
        return torch.matmul(torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2)).softmax(dim=-1), v)
    return F.scaled_dot_product_attention(q, k, v)


def block_qkv(block, x: torch.Tensor) -> torch.Tensor:
    """The block's packed q/k/v of ``ln_1(x)``: (..., W) -> (..., 3W). Per token, so the q/k/v of a gathered subset
    of tokens is the gather of these rows (how windows reuse the first layer of the whole-image pass)."""
    return _in_proj(block, block.ln_1(x), slice(None))


def fast_block(block, x: torch.Tensor, *, qkv: torch.Tensor | None = None, cls_only: bool = False) -> torch.Tensor:
    """One open_clip ``ResidualAttentionBlock`` on batch-first x (N, L, W), with its own weights and modules::

        x = x + ls_1(out_proj(attention(in_proj(ln_1(x)))))
        x = x + ls_2(mlp(ln_2(x)))

    Attention (:func:`_attention`: scale 1/sqrt(head dim), no mask — what ``nn.MultiheadAttention`` computes) runs on
    explicitly batch-first tensors, so the layout is right for batch-first and sequence-first blocks alike. On the
    CPU the GEMMs are oneDNN's with GELU and the residual adds fused (:func:`_linear`); elsewhere a plain call on a
    batch-first block is the block's own ``forward``.

    Args:
        qkv: (N, L, 3W) precomputed :func:`block_qkv` of x (skips ``ln_1`` and the input projection).
        cls_only: return only the class token, (N, 1, W): the queries, output projection and MLP then run for the
            class token alone — all the last block has to do for a window's pooled embedding.
    """
    attn = block.attn
    fused = _use_onednn(x) and _plain_mlp(block)
    if qkv is None and not cls_only and attn.batch_first and not fused:
        return block(x)
    n, length, width = x.shape
    heads = attn.num_heads
    if qkv is None:
        h = block.ln_1(x)
        if cls_only:
            q = _in_proj(block, h[:, :1], slice(0, width))
            kv = _in_proj(block, h, slice(width, None))
        else:
            qkv = _in_proj(block, h, slice(None))
    if qkv is not None:
        q, kv = qkv[..., :width], qkv[..., width:]
        if cls_only:
            q = q[:, :1]
    lq = q.shape[1]
    q = q.reshape(n, lq, heads, -1).transpose(1, 2)  # (N, H, Lq, d)
    k, v = kv.reshape(n, length, 2, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (N, H, L, d) each
    o = _attention(q, k, v).transpose(1, 2).reshape(n, lq, width)
    if cls_only:
        x = x[:, :1]
    if fused:
        x = _linear_add(o, x, attn.out_proj.weight, attn.out_proj.bias)
        h = _linear(block.ln_2(x), block.mlp.c_fc.weight, block.mlp.c_fc.bias, gelu=True)
        return _linear_add(h, x, block.mlp.c_proj.weight, block.mlp.c_proj.bias)
    x = x + block.ls_1(F.linear(o, attn.out_proj.weight, attn.out_proj.bias))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _fast_path(visual) -> bool:
    blocks = list(visual.transformer.resblocks)
    return bool(blocks) and all(fast_block_supported(b) for b in blocks)


def _cls_only_pooling(visual) -> bool:
    """True when the pooled embedding depends on the class token alone (open_clip's 'tok' pooling, no attn_pool)."""
    return getattr(visual, "pool_type", "tok") == "tok" and getattr(visual, "attn_pool", None) is None


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
    cls_only = qkv1 is not None and _cls_only_pooling(visual)
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
    fast = _fast_path(visual)

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
