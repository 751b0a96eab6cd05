"""CLIP's text tower, shortened: the prompt embeddings of :mod:`winclip_lib.core.prompts` with less work.

CLIP's text tower is causal (a token attends to itself and earlier tokens) and pools one token per prompt, the
end-of-text token. Nothing after the last pooled position can change a pooled output, so the sequences are cut just
past it — 17 of 77 tokens for the CPE prompts — and run through the fast blocks of
:mod:`winclip_lib.core.vit_blocks`. Exact up to float rounding (tested against ``model.encode_text``). Text towers
the adapter does not recognise as such (:func:`~winclip_lib.core.openclip_adapter.text_pooled_positions`) run their
own ``encode_text``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from winclip_lib.core.backbone import Backbone
from winclip_lib.core.openclip_adapter import text_pooled_positions
from winclip_lib.core.vit_blocks import run_transformer

__all__ = ["encode_text", "encode_text_tokens"]


@torch.inference_mode()
def encode_text(backbone: Backbone, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """CLIP text embeddings of prompts, (N, D) float32, not normalised (= open_clip's ``model.encode_text``)."""
    out = []
    for i in range(0, len(prompts), batch_size):
        tokens = backbone.tokenizer(list(prompts[i : i + batch_size])).to(backbone.device)
        out.append(encode_text_tokens(backbone.model, tokens).float())
    return torch.cat(out)


def encode_text_tokens(model, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``model.encode_text(tokens)`` for (N, context) token ids -> (N, D), the sequences cut just past
    the last pooled token (see the module docstring)."""
    pos = text_pooled_positions(model, tokens)
    if pos is None:
        return model.encode_text(tokens)
    length = int(pos.max()) + 1
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :length]).to(cast) + model.positional_embedding[:length].to(cast)
    x = run_transformer(model.transformer, x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x[torch.arange(x.shape[0], device=x.device), pos])  # ln_final acts per token
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
