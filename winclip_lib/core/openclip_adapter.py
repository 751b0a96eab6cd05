"""The one place that reaches into open_clip's modules: recognise their layout, or refuse.

WinCLIP needs more of OpenCLIP than its public API offers: the ViT's input tokens, its transformer blocks run on
chosen subsets of tokens, its pooling, and the text tower's causal mask and pooled position. Everything that depends
on how open_clip builds those modules is decided here, structurally, from the modules themselves — never from a
version number or a guessed attribute default. A module that is not recognised raises
:class:`UnsupportedOpenCLIPError`, which names the installed open_clip version and the supported range, instead of
running a computation that may be silently wrong: batch-first blocks fed sequence-first input attend across windows,
and every window then gets the same embedding.

Recognised:

- a ``VisionTransformer`` with ``conv1``, ``class_embedding``, ``positional_embedding``, ``ln_pre``,
  ``transformer.resblocks``, ``ln_post``, ``proj`` and its pooling method ``_pool`` (open_clip >= 2.23);
- transformer blocks whose attention is torch's ``nn.MultiheadAttention``: its own ``batch_first`` flag is the layout
  the block expects (sequence-first up to open_clip 2.24, batch-first since 2.26);
- for the shortened text tower: open_clip's own ``CLIP`` class with its ``encode_text``, a causal mask, and
  ``argmax`` or ``eos`` pooling (any other text tower runs its own ``encode_text``).
"""

from __future__ import annotations

from typing import Any

import open_clip
import torch
from torch import nn

__all__ = [
    "SUPPORTED_OPENCLIP",
    "TESTED_OPENCLIP",
    "UnsupportedOpenCLIPError",
    "block_batch_first",
    "check_model",
    "check_transformer",
    "check_visual",
    "cls_only_pooling",
    "is_causal",
    "pool",
    "text_pooled_positions",
]

#: The open_clip releases whose module layout this adapter recognises.
SUPPORTED_OPENCLIP = "2.23 to 3.3"
#: The release the tests run against (requirements.lock).
TESTED_OPENCLIP = "3.3.0"

_VISUAL_PARTS = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post", "proj")


class UnsupportedOpenCLIPError(RuntimeError):
    """open_clip built a module whose layout winclip_lib does not recognise."""


def _unsupported(what: str) -> UnsupportedOpenCLIPError:
    return UnsupportedOpenCLIPError(
        f"{what}. open_clip {open_clip.__version__} is installed; winclip_lib recognises the modules of open_clip "
        f"{SUPPORTED_OPENCLIP} (tested with {TESTED_OPENCLIP}): install open_clip_torch=={TESTED_OPENCLIP}"
    )


def block_batch_first(block: nn.Module) -> bool:
    """The layout a transformer block expects: True for (N, L, W), False for (L, N, W).

    Read from the block's ``nn.MultiheadAttention``, which is what consumes the layout.

    Raises:
        UnsupportedOpenCLIPError: the block attends through anything else.
    """
    attn = getattr(block, "attn", None)
    if not isinstance(attn, nn.MultiheadAttention):
        raise _unsupported(
            f"transformer block {type(block).__name__} attends through {type(attn).__name__}, not torch's "
            "nn.MultiheadAttention, so the input layout it expects cannot be recognised"
        )
    return bool(attn.batch_first)


def check_transformer(transformer: nn.Module) -> bool:
    """The layout of every block of ``transformer`` (True: batch-first); they must all agree.

    Raises:
        UnsupportedOpenCLIPError: no ``resblocks``, an unrecognised block, or blocks of mixed layouts.
    """
    blocks = getattr(transformer, "resblocks", None)
    if blocks is None or len(blocks) == 0:
        raise _unsupported(f"{type(transformer).__name__} has no transformer blocks in 'resblocks'")
    layouts = {block_batch_first(b) for b in blocks}
    if len(layouts) > 1:
        raise _unsupported(f"{type(transformer).__name__} mixes batch-first and sequence-first blocks")
    return layouts.pop()


def check_visual(visual: nn.Module) -> None:
    """Raise :class:`UnsupportedOpenCLIPError` unless ``visual`` is a ViT this library can drive token by token."""
    missing = [name for name in _VISUAL_PARTS if not hasattr(visual, name)]
    if not callable(getattr(visual, "_pool", None)):
        missing.append("_pool")
    if missing:
        raise _unsupported(
            f"the image tower {type(visual).__name__} lacks {', '.join(missing)}; window encoding needs open_clip's "
            "VisionTransformer"
        )
    check_transformer(visual.transformer)


def check_model(model: nn.Module) -> None:
    """Check a CLIP model's image tower (:func:`check_visual`); the text tower needs no check (see
    :func:`text_pooled_positions`)."""
    visual = getattr(model, "visual", None)
    if visual is None:
        raise _unsupported(f"{type(model).__name__} has no image tower 'visual'")
    check_visual(visual)


def pool(visual: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """open_clip's own pooling of a transformer output x (N, L, W), then its projection.

    Returns:
        pooled (N, D) projected embedding, tokens (N, L-1, W) the non-class tokens (after ``ln_post`` for the usual
        ``tok`` pooling).
    """
    pooled, tokens = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled, tokens


def cls_only_pooling(visual: nn.Module) -> bool:
    """True when the pooled embedding depends on the class token alone (``tok`` pooling without attention pooling),
    so a last block may run for the class token only."""
    return getattr(visual, "pool_type", None) == "tok" and getattr(visual, "attn_pool", None) is None


def is_causal(mask: torch.Tensor | None) -> bool:
    """True for an additive (L, L) mask that is -inf strictly above the diagonal and 0 elsewhere."""
    if mask is None or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.isneginf(mask).eq(upper).all()) and bool(mask.masked_fill(upper, 0).eq(0).all())


def text_pooled_positions(model: Any, tokens: torch.Tensor) -> torch.Tensor | None:
    """(N,) position of the token the text tower pools, when the tower is open_clip's causal CLIP text transformer
    with recognised blocks and ``argmax`` (the end-of-text id is the largest) or ``eos`` pooling; else None, and the
    caller runs the tower's own ``encode_text``."""
    from open_clip.model import CLIP

    if not isinstance(model, CLIP) or type(model).encode_text is not CLIP.encode_text:
        return None
    if not is_causal(getattr(model, "attn_mask", None)):
        return None
    try:
        check_transformer(model.transformer)
    except UnsupportedOpenCLIPError:
        return None
    pool_type = getattr(model, "text_pool_type", None)
    if pool_type == "argmax":
        return tokens.argmax(dim=-1)
    eos = getattr(model, "text_eos_id", None)
    if pool_type == "eos" and eos is not None and bool((tokens == eos).any(dim=-1).all()):
        return (tokens == eos).int().argmax(dim=-1)
    return None
