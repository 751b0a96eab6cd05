"""The analytic FLOP model of window encoding: how much work one image is, for our encoder and for the baseline.

Counted: the patch-embedding convolution, every linear layer and both attention matmuls of every block, and the
output projection of each pooled class token (2 FLOPs per multiply-add). Not counted: layer norms, softmax, GELU and
adds. ``tests/benchmarks/test_bench_speed.py`` checks these counts against the ops both encoders actually dispatch.
"""

from __future__ import annotations

from collections.abc import Sequence

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.openclip_adapter import cls_only_pooling
from winclip_lib.core.options import WinCLIPOptions
from winclip_lib.core.vit_blocks import fast_path_supported

__all__ = ["PAPER_SCALES", "encoder_flops", "model_flops"]

#: The window scales of the method's defaults (the paper's 2 and 3).
PAPER_SCALES: tuple[int, ...] = WinCLIPOptions().scales


def encoder_flops(width: int, layers: int, mlp_width: int, grid: int, patch_size: int, embed_dim: int,
                  scales: Sequence[int] = PAPER_SCALES, stride: int = 1, *,
                  reuse_first_qkv: bool = True, cls_only_last: bool = True) -> int:
    """Floating-point operations of encoding one image (whole image and every window of every scale).

    The image's 1+G*G tokens go through all blocks; each window's 1+k*k tokens too, except that with
    ``reuse_first_qkv`` the first block's q/k/v are gathered from the image pass (no input projection), and with
    ``cls_only_last`` the last block projects queries and runs attention, the output projection and the MLP for the
    class token alone (keys/values still for all tokens) — our encoder; both False: the one-window-per-call baseline.

    Args:
        width: W, the transformer width; layers: number of blocks; mlp_width: the MLP's hidden width.
        grid: G, patches per side; patch_size: pixels per patch side; embed_dim: D, the projection's output width
            (0 without a projection).
        scales: window sizes in patches; stride: window stride in patches.
    """
    w, m = width, mlp_width

    def block(keys: int, queries: int, q_rows: int, kv_rows: int) -> int:
        """One block: q projected for q_rows tokens, k/v for kv_rows, attention and the rest for ``queries``."""
        proj = 2 * w * w * q_rows + 2 * w * 2 * w * kv_rows
        attention = 2 * 2 * queries * keys * w  # q k^T and (softmax) v, all heads together
        return proj + attention + 2 * queries * w * w + 2 * 2 * queries * w * m  # + out-proj, MLP

    tokens = 1 + grid * grid
    total = 2 * grid * grid * 3 * patch_size**2 * w + layers * block(tokens, tokens, tokens, tokens)
    pooled = 1
    for k in scales:
        n, length = ((grid - k) // stride + 1) ** 2, 1 + k * k
        per_window = 0
        for i in range(layers):
            queries = 1 if cls_only_last and i == layers - 1 else length
            reused = reuse_first_qkv and i == 0
            per_window += block(length, queries, 0 if reused else queries, 0 if reused else length)
        total += n * per_window
        pooled += n
    return total + 2 * pooled * w * embed_dim


def model_flops(backbone: Backbone, *, fast: bool = True, scales: Sequence[int] = PAPER_SCALES) -> int:
    """:func:`encoder_flops` of a backbone's config: our encoder (``fast``: its shortcuts where the model allows
    them) or the baseline (no shortcuts)."""
    visual = backbone.visual
    blocks = list(visual.transformer.resblocks)
    fast = fast and fast_path_supported(visual)
    return encoder_flops(backbone.width, len(blocks), blocks[0].mlp.c_fc.out_features, backbone.grid_size,
                         backbone.patch_size, visual.proj.shape[1] if visual.proj is not None else 0, scales,
                         reuse_first_qkv=fast, cls_only_last=fast and cls_only_pooling(visual))
