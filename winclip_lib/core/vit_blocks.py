"""The ViT's transformer blocks, driven directly: in the right layout, and with less work.

open_clip's blocks are run here on batch-first (N, L, W) sequences of any length — whole images (226 tokens),
windows (5 or 10 tokens) and the text tower's prompts with its causal mask — with their own weights and modules.
Tests check every path against open_clip's own modules. What the fast path does differently (same math):

- a window's first-block q/k/v are a gather of the whole image's (``ln_1`` and the input projection act per token),
  and its last block runs queries, output projection and MLP for the class token alone (the only token pooled);
- on the CPU, the GEMMs are oneDNN's fused linear op with the GELU and the residual adds fused in
  (``WINCLIP_ONEDNN=0`` turns this off), calls hold at most :data:`winclip_lib.core.encoder.CPU_CALL_TOKENS`
  tokens, and attention is two small matmuls and a softmax;
- elsewhere (CUDA) large calls, ``scaled_dot_product_attention`` and the blocks' own fused forward.

The README's speed section has the measured effect of each.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock

from winclip_lib.core.openclip_adapter import check_transformer


def run_transformer(transformer, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Run open_clip's transformer blocks on batch-first sequences x (N, L, W) and return (N, L, W).

    Each block is fed the layout it expects, as recognised by
    :func:`~winclip_lib.core.openclip_adapter.check_transformer` from its attention module (batch-first since
    open_clip 2.26, sequence-first before). Handing sequence-first input to batch-first blocks attends across windows
    instead of within them, and every window gets the same embedding; an unrecognised block raises
    :class:`~winclip_lib.core.openclip_adapter.UnsupportedOpenCLIPError` instead.

    Plain open_clip ``ResidualAttentionBlock`` modules take :func:`fast_block` (the same weights and modules, the
    layout handled explicitly); any other recognised block runs its own ``forward``.

    Args:
        attn_mask: optional additive (L, L) float mask, as open_clip's text tower passes its causal mask.
    """
    return run_blocks(transformer, x, attn_mask=attn_mask)


def run_blocks(transformer, x: torch.Tensor, start: int | None = None, stop: int | None = None,
               attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`run_transformer` for the blocks ``transformer.resblocks[start:stop]`` only (e.g. ``stop=-1``: all
    but the last)."""
    batch_first = check_transformer(transformer)
    blocks = list(transformer.resblocks)[start:stop]
    if all(fast_block_supported(b) for b in blocks):
        for block in blocks:
            x = fast_block(block, x, attn_mask=attn_mask)
        return x
    if not batch_first:
        x = x.transpose(0, 1)
    for block in blocks:
        x = block(x) if attn_mask is None else block(x, attn_mask=attn_mask)
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


@functools.cache
def _onednn_dtype_ok(dtype: torch.dtype) -> bool:
    """Whether oneDNN's linear op takes this dtype on this CPU (asked once: every linear of the encoder asks)."""
    if dtype == torch.float32:
        return True
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return dtype == torch.bfloat16 and (check is None or bool(check()))


def uses_onednn(x: torch.Tensor) -> bool:
    """True when x's GEMMs go to oneDNN's fused linear op: CPU fp32 / bf16, unless ``WINCLIP_ONEDNN=0``, and not
    under ``torch.compile``. It fuses the GELU and the residual adds into the GEMMs; same weights and math, results
    agree with the default path to float rounding."""
    return (
        x.device.type == "cpu"
        and not _compiling()  # first: what follows is not traced under torch.compile
        and _onednn_dtype_ok(x.dtype)
        and os.environ.get(ONEDNN_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}
        and onednn_linear_available()
    )


def _compiling() -> bool:
    """True while ``torch.compile`` traces (Inductor does its own GEMM lowering and fusions then)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling()) if is_compiling is not None else False


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False) -> torch.Tensor:
    """``F.linear`` (then exact GELU when asked) on (..., K); oneDNN's fused kernel on the CPU."""
    if uses_onednn(x):
        lead = x.shape[:-1]
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), weight, bias,
                                               "gelu" if gelu else "none", [], "none" if gelu else "")
        return y.reshape(*lead, weight.shape[0])
    y = F.linear(x, weight, bias)
    return F.gelu(y) if gelu else y


def _linear_add(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                ) -> torch.Tensor:
    """``residual + F.linear(x, weight, bias)``; on the CPU one oneDNN GEMM with the add fused."""
    if uses_onednn(x):
        y = torch.ops.mkldnn._linear_pointwise.binary(x.reshape(-1, x.shape[-1]),
                                                      residual.reshape(-1, residual.shape[-1]), weight, bias, "add")
        return y.reshape(residual.shape)
    return residual + F.linear(x, weight, bias)


def _in_proj(block, h: torch.Tensor, part: slice) -> torch.Tensor:
    """Rows ``part`` of the block's packed q/k/v input projection applied to h (..., W)."""
    attn = block.attn
    bias = attn.in_proj_bias
    return linear(h, attn.in_proj_weight[part], None if bias is None else bias[part])


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


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
               ) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v over (N, H, L, d), mask an optional additive (Lq, L) float mask. On the CPU
    as two matmuls and a softmax (for the 5-10 token sequences of windows this beats the fused CPU kernel); elsewhere
    ``scaled_dot_product_attention``."""
    if mask is not None:
        mask = mask.to(q.dtype)
    if q.device.type == "cpu":
        scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
        if mask is not None:
            scores = scores + mask
        return torch.matmul(scores.softmax(dim=-1), v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def block_qkv(block, x: torch.Tensor) -> torch.Tensor:
    """The block's packed q/k/v of ``ln_1(x)``: (..., W) -> (..., 3W). Per token, so the q/k/v of a gathered subset
    of tokens is the gather of these rows (how windows reuse the first layer of the whole-image pass)."""
    return _in_proj(block, block.ln_1(x), slice(None))


def fast_block(block, x: torch.Tensor, *, qkv: torch.Tensor | None = None, cls_only: bool = False,
               attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One open_clip ``ResidualAttentionBlock`` on batch-first x (N, L, W), with its own weights and modules::

        x = x + ls_1(out_proj(attention(in_proj(ln_1(x)))))
        x = x + ls_2(mlp(ln_2(x)))

    Attention (:func:`_attention`: scale 1/sqrt(head dim), no mask — what ``nn.MultiheadAttention`` computes) runs on
    explicitly batch-first tensors, so the layout is right for batch-first and sequence-first blocks alike. On the
    CPU the GEMMs are oneDNN's with GELU and the residual adds fused (:func:`linear`); elsewhere a plain call on a
    batch-first block is the block's own ``forward``.

    Args:
        qkv: (N, L, 3W) precomputed :func:`block_qkv` of x (skips ``ln_1`` and the input projection).
        cls_only: return only the class token, (N, 1, W): the queries, output projection and MLP then run for the
            class token alone — all the last block has to do for a window's pooled embedding.
        attn_mask: optional additive (L, L) float mask (the text tower's causal mask); not with ``cls_only``.
    """
    attn = block.attn
    fused = uses_onednn(x) and _plain_mlp(block)
    if cls_only and attn_mask is not None:
        raise ValueError("cls_only takes no attn_mask (the class token's query row would need its own mask row)")
    if qkv is None and not cls_only and attn.batch_first and not fused:
        return block(x) if attn_mask is None else block(x, attn_mask=attn_mask)
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
    o = _attention(q, k, v, attn_mask).transpose(1, 2).reshape(n, lq, width)
    if cls_only:
        x = x[:, :1]
    if fused:
        x = _linear_add(o, x, attn.out_proj.weight, attn.out_proj.bias)
        h = linear(block.ln_2(x), block.mlp.c_fc.weight, block.mlp.c_fc.bias, gelu=True)
        return _linear_add(h, x, block.mlp.c_proj.weight, block.mlp.c_proj.bias)
    x = x + block.ls_1(F.linear(o, attn.out_proj.weight, attn.out_proj.bias))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def fast_path_supported(visual) -> bool:
    blocks = list(visual.transformer.resblocks)
    return bool(blocks) and all(fast_block_supported(b) for b in blocks)
