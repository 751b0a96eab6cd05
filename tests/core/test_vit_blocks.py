"""The encoder's transformer blocks (winclip_lib.core.vit_blocks) compute what open_clip's own blocks do."""

from __future__ import annotations

import pytest
import torch
from open_clip.transformer import QuickGELU, ResidualAttentionBlock

from winclip_lib.core import vit_blocks
from winclip_lib.core.vit_blocks import block_qkv, fast_block


@pytest.mark.parametrize("onednn", ["1", "0"])
def test_fast_block_equals_open_clip_block(tiny, monkeypatch, onednn):
    """The encoder's block (oneDNN GEMMs with fused GELU / residual adds, or PyTorch's default ones) computes what
    open_clip's own block does, with precomputed q/k/v and for the class token alone too."""
    monkeypatch.setenv(vit_blocks.ONEDNN_ENV, onednn)
    x = torch.randn(7, 10, tiny.width, generator=torch.Generator().manual_seed(3))
    assert vit_blocks.uses_onednn(x) == (onednn == "1" and vit_blocks.onednn_linear_available())
    with torch.inference_mode():
        for block in tiny.visual.transformer.resblocks:
            assert vit_blocks.fast_block_supported(block)
            ref = block(x)
            torch.testing.assert_close(fast_block(block, x), ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast_block(block, x, qkv=block_qkv(block, x)), ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast_block(block, x, cls_only=True), ref[:, :1], rtol=1e-5, atol=1e-5)
            qkv = block_qkv(block, x)
            torch.testing.assert_close(fast_block(block, x, qkv=qkv, cls_only=True), ref[:, :1], rtol=1e-5, atol=1e-5)


def _block_like(block, **kwargs) -> ResidualAttentionBlock:
    width = block.ln_1.normalized_shape[0]
    other = ResidualAttentionBlock(width, block.attn.num_heads, **kwargs).eval()
    missing = other.load_state_dict(block.state_dict(), strict=False).missing_keys
    assert all(k.startswith(("ls_1", "ls_2")) for k in missing)
    return other


@pytest.mark.parametrize("kwargs", [{"batch_first": False}, {"ls_init_value": 0.5}, {"act_layer": QuickGELU}])
def test_fast_block_on_other_block_kinds(tiny, kwargs):
    """A sequence-first block gets batch-first input handled explicitly; layer-scaled or QuickGELU blocks skip the
    fused kernels and use their own modules — every kind equals the block's own forward."""
    block = _block_like(tiny.visual.transformer.resblocks[0], **kwargs)
    x = torch.randn(5, 5, tiny.width, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        seq_first = kwargs.get("batch_first", True) is False
        ref = block(x.transpose(0, 1)).transpose(0, 1) if seq_first else block(x)
        assert vit_blocks.fast_block_supported(block)
        assert vit_blocks._plain_mlp(block) is not ("ls_init_value" in kwargs or "act_layer" in kwargs)
        torch.testing.assert_close(fast_block(block, x), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast_block(block, x, cls_only=True), ref[:, :1], rtol=1e-5, atol=1e-5)
