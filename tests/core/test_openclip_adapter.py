"""open_clip's module layout is recognised from the modules themselves, or refused with the version and the range.

Fake modules stand for each layout: open_clip >= 2.26 (batch-first blocks), <= 2.24 (sequence-first), and the
development branch that dropped ``Transformer.batch_first`` (still recognisable while its blocks use
``nn.MultiheadAttention``) and then ``nn.MultiheadAttention`` itself (refused).
"""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from winclip_lib.core.backbone import wrap_model
from winclip_lib.core.encoder import encode_images
from winclip_lib.core.openclip_adapter import (
    SUPPORTED_OPENCLIP,
    UnsupportedOpenCLIPError,
    block_batch_first,
    check_transformer,
    check_visual,
)
from winclip_lib.core.vit_blocks import fast_block_supported, run_transformer


class OwnForwardBlock(ResidualAttentionBlock):
    """A block with its own forward (so the fast path does not take it): the layout is then the block's business."""

    def forward(self, x, attn_mask=None):  # noqa: D401 - same computation as open_clip's
        return super().forward(x, attn_mask=attn_mask)


def _copy_blocks(tiny, batch_first: bool) -> nn.ModuleList:
    blocks = []
    for block in tiny.visual.transformer.resblocks:
        other = OwnForwardBlock(tiny.width, block.attn.num_heads).eval()
        other.load_state_dict(block.state_dict())
        other.attn.batch_first = batch_first
        blocks.append(other)
    return nn.ModuleList(blocks)


class BareTransformer(nn.Module):
    """A transformer with only its blocks: no ``batch_first`` attribute, like open_clip's development branch."""

    def __init__(self, blocks: nn.ModuleList):
        super().__init__()
        self.resblocks = blocks


class CustomAttention(nn.Module):
    """An attention module that is not torch's nn.MultiheadAttention (open_clip's development branch)."""

    def __init__(self, width: int):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)

    def forward(self, x):
        return x


def _x(tiny) -> torch.Tensor:
    return torch.randn(6, 5, tiny.width, generator=torch.Generator().manual_seed(0))


def test_batch_first_blocks_of_the_pinned_open_clip_are_recognised(tiny):
    assert check_transformer(tiny.visual.transformer) is True
    check_visual(tiny.visual)
    assert all(fast_block_supported(b) for b in tiny.visual.transformer.resblocks)


@pytest.mark.parametrize("batch_first", [True, False])
def test_blocks_without_a_transformer_flag_are_fed_the_layout_their_attention_expects(tiny, batch_first):
    """No ``batch_first`` on the transformer (it is read from each block's attention), sequence-first blocks of
    open_clip <= 2.24 included: the result equals the pinned open_clip's batch-first blocks."""
    x = _x(tiny)
    with torch.inference_mode():
        expected = run_transformer(tiny.visual.transformer, x)
        fake = BareTransformer(_copy_blocks(tiny, batch_first))
        assert not hasattr(fake, "batch_first") and check_transformer(fake) is batch_first
        assert not any(fast_block_supported(b) for b in fake.resblocks)  # their own forward runs
        torch.testing.assert_close(run_transformer(fake, x), expected, rtol=1e-5, atol=1e-5)


def test_feeding_the_wrong_layout_would_mix_windows(tiny):
    """What recognising the layout prevents: sequence-first blocks given batch-first input attend across the batch
    (every window sees every other window) and the results change."""
    x = _x(tiny)
    with torch.inference_mode():
        expected = run_transformer(tiny.visual.transformer, x)
        wrong = x
        for block in _copy_blocks(tiny, batch_first=False):
            wrong = block(wrong)
    assert (wrong - expected).abs().max() > 1e-2


def test_an_attention_that_is_not_multihead_attention_is_refused(tiny):
    blocks = _copy_blocks(tiny, batch_first=True)
    blocks[1].attn = CustomAttention(tiny.width)
    fake = BareTransformer(blocks)
    with pytest.raises(UnsupportedOpenCLIPError) as err:
        run_transformer(fake, _x(tiny))
    msg = str(err.value)
    assert "CustomAttention" in msg and open_clip.__version__ in msg and SUPPORTED_OPENCLIP in msg
    assert "open_clip_torch==3.3.0" in msg
    with pytest.raises(UnsupportedOpenCLIPError):
        block_batch_first(blocks[1])


def test_mixed_layouts_and_missing_parts_are_refused(tiny):
    blocks = _copy_blocks(tiny, batch_first=True)
    blocks[0].attn.batch_first = False
    with pytest.raises(UnsupportedOpenCLIPError, match="mixes batch-first and sequence-first"):
        check_transformer(BareTransformer(blocks))
    with pytest.raises(UnsupportedOpenCLIPError, match="no transformer blocks"):
        check_transformer(BareTransformer(nn.ModuleList()))
    visual = copy.deepcopy(tiny.visual)
    del visual.ln_post
    with pytest.raises(UnsupportedOpenCLIPError, match="lacks ln_post"):
        check_visual(visual)


def test_an_unrecognised_model_is_refused_when_loaded_and_when_encoding(tiny, images):
    model = copy.deepcopy(tiny.model)
    model.visual.transformer.resblocks[0].attn = CustomAttention(tiny.width)
    with pytest.raises(UnsupportedOpenCLIPError):
        wrap_model(model, "custom", precision="fp32", device="cpu")
    broken = copy.deepcopy(tiny)
    broken.model.visual.transformer.resblocks[0].attn = CustomAttention(tiny.width)
    with pytest.raises(UnsupportedOpenCLIPError):
        encode_images(broken, images[:1], (2,))
