"""The CLIP text tower's pooled state, computed by the project's own pass over open_clip's modules.

open_clip 3.3's `CLIP.encode_text` returns only the projected feature and always runs the full
context (77 tokens for ViT-B/32) with the full causal mask. READ-CLIP's bridge needs the state
before the projection, and a batch of short captions need not pay for 77 positions, so
`encode_text_states` runs the same modules in the same order on the tokens trimmed to the
batch's longest caption.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class TextStates:
    """The text tower's outputs for N token rows.

    pooled: (N, width) hidden state at the end-of-text token after `ln_final`, before the
        projection (the bridge's input).
    projected: (N, embed_dim) the feature `encode_text` returns (not normalised).
    """

    pooled: torch.Tensor
    projected: torch.Tensor

    def normalized(self) -> torch.Tensor:
        """Return the projected feature with unit L2 norm per row, (N, embed_dim)."""
        return F.normalize(self.projected, dim=-1)


def end_of_text_positions(tokens: torch.Tensor) -> torch.Tensor:
    """Return the end-of-text index of each row of `tokens` (N, L), shape (N,).

    The CLIP tokenizer's end-of-text id (49407) is the largest id of its vocabulary, so the
    argmax of a row is its end-of-text position. open_clip's `argmax` pooling uses the same rule.
    """
    return tokens.argmax(dim=-1)


def trim_to_longest(tokens: torch.Tensor) -> torch.Tensor:
    """Drop the padding columns after the batch's last end-of-text token: (N, L) -> (N, L')."""
    length = int(end_of_text_positions(tokens).max()) + 1
    return tokens[:, :length]


def _check_supported(model: torch.nn.Module) -> None:
    pool_type = getattr(model, "text_pool_type", None)
    if pool_type is None or not hasattr(model, "token_embedding"):
        raise TypeError(
            f"{type(model).__name__} has no built-in text tower (token_embedding, text_pool_type); "
            "encode_text_states supports open_clip's CLIP class, e.g. ViT-B-32-quickgelu or readclip-tiny")
    if pool_type != "argmax":
        raise ValueError(
            f"text_pool_type {pool_type!r} is not supported: encode_text_states pools at the "
            "end-of-text token by argmax, as the CLIP tokenizer requires")
    if getattr(model, "attn_mask", None) is None:
        raise ValueError(
            "the text tower has no causal mask, so trimming padding would change its states; "
            "encode_text_states needs a causal text tower")


def encode_text_states(model: torch.nn.Module, tokens: torch.Tensor) -> TextStates:
    """Run the text tower of an open_clip `CLIP` on `tokens` (N, context_length) int64.

    The tokens are trimmed to the longest sequence of the batch, and the positional embedding
    and causal mask are sliced to that length. Under the causal mask no position attends to a
    later one, so the state at each end-of-text token equals that of the full-context pass.
    """
    _check_supported(model)
    tokens = trim_to_longest(tokens)
    length = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()

    # (N, L) -> (N, L, width)
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)

    # (N, L, width) -> (N, width) at each row's end-of-text token
    rows = torch.arange(x.shape[0], device=x.device)
    pooled = x[rows, end_of_text_positions(tokens)]

    projection = model.text_projection
    if projection is None:
        projected = pooled
    elif isinstance(projection, torch.nn.Linear):
        projected = projection(pooled)
    else:
        projected = pooled @ projection
    return TextStates(pooled=pooled, projected=projected)
