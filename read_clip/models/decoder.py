"""The frozen T5 text decoder and the trainable bridge from CLIP's pooled text state.

The decoder is the decoder half of a transformers `T5ForConditionalGeneration` (its decoder
stack and `lm_head`); the encoder is never run. The bridge maps each caption's pooled CLIP text
state (width-d) to a single T5 "encoder output" token of shape (1, d_model) that the decoder
cross-attends to.

A decoder directory contains `decoder.safetensors` (stack and lm_head), `decoder.json` (the
T5Config as a dict plus the token ids) and `bridge.safetensors` (the bridge trained with it,
absent for a decoder that was fetched rather than trained here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from read_clip.io import atomic_path, write_json

# T5's conventions, which the target tokenizer follows: the pad id is also the decoder start id.
PAD_ID = 0
EOS_ID = 1
DECODER_START_ID = 0
# Label value that the cross-entropy skips (padding of the targets).
IGNORE_INDEX = -100

DECODER_CONFIG_KEYS = ("d_model", "d_ff", "num_heads", "d_kv", "num_decoder_layers")


class TextDecoder(nn.Module):
    """A T5 decoder stack plus its language-model head, run on given encoder states.

    `freeze()` makes it a fixed function: no parameter takes gradients, and `train()` on a
    parent module leaves it in eval mode, so dropout stays off during fine-tuning.
    """

    def __init__(self, t5: T5ForConditionalGeneration):
        super().__init__()
        self.config: T5Config = t5.config
        self.stack = t5.decoder
        self.lm_head = t5.lm_head
        # T5 with tied input/output embeddings rescales the last hidden state by d_model**-0.5
        # before the lm_head (transformers' `scale_decoder_outputs`); T5 v1.1 does not.
        self.scale_outputs = bool(self.config.scale_decoder_outputs)
        self.frozen = False

    @property
    def tied_lm_head(self) -> bool:
        """Whether the lm_head shares its weight with the decoder's token embedding."""
        return self.lm_head.weight is self.stack.embed_tokens.weight

    def freeze(self) -> TextDecoder:
        self.requires_grad_(False)
        self.frozen = True
        return self.eval()

    def train(self, mode: bool = True) -> TextDecoder:
        return super().train(mode and not self.frozen)

    def forward(self, encoder_states: torch.Tensor, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        """Return the next-token logits (B, T, vocab) given encoder states (B, S, d_model).

        No decoder attention mask is passed: padding sits after the last target token and the
        causal mask already stops real positions from attending to it.
        """
        hidden = self.stack(
            input_ids=decoder_input_ids,
            encoder_hidden_states=encoder_states,
            use_cache=False,
        ).last_hidden_state
        if self.scale_outputs:
            hidden = hidden * (self.config.d_model ** -0.5)
        return self.lm_head(hidden)


def make_t5_config(decoder_config: dict[str, int], vocab_size: int) -> T5Config:
    """Build the T5Config of a fresh decoder from the demo's size fields and the vocabulary size."""
    missing = [key for key in DECODER_CONFIG_KEYS if key not in decoder_config]
    unknown = sorted(set(decoder_config) - set(DECODER_CONFIG_KEYS))
    if missing or unknown:
        raise ValueError(
            f"decoder_config must have exactly the keys {list(DECODER_CONFIG_KEYS)}; "
            f"missing {missing}, unknown {unknown}")
    layers = decoder_config["num_decoder_layers"]
    return T5Config(
        vocab_size=vocab_size,
        d_model=decoder_config["d_model"],
        d_ff=decoder_config["d_ff"],
        num_heads=decoder_config["num_heads"],
        d_kv=decoder_config["d_kv"],
        # The encoder is built by T5ForConditionalGeneration and thrown away; keep it as small.
        num_layers=layers,
        num_decoder_layers=layers,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=DECODER_START_ID,
    )


def build_decoder(config: T5Config) -> TextDecoder:
    """Build a randomly initialised decoder (T5's own initialisation) from `config`."""
    return TextDecoder(T5ForConditionalGeneration(config))


def make_bridge(width: int, d_model: int) -> nn.Linear:
    """Return a fresh bridge: CLIP pooled text state (width) -> one T5 encoder token (d_model)."""
    return nn.Linear(width, d_model, bias=False)


def bridge_states(bridge: nn.Linear, pooled: torch.Tensor) -> torch.Tensor:
    """Map pooled text states (B, width) to one-token encoder states (B, 1, d_model)."""
    return bridge(pooled).unsqueeze(1)


def shift_right(labels: torch.Tensor, start_id: int = DECODER_START_ID,
                pad_id: int = PAD_ID) -> torch.Tensor:
    """Return teacher-forcing inputs (B, T): labels shifted one step right, start id first.

    Ignored label positions (IGNORE_INDEX) become `pad_id`, as in transformers' T5.
    """
    shifted = labels.new_full(labels.shape, start_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_id)


def load_target_tokenizer(path: str | Path):
    """Load the tokenizer of the decoder targets, checking T5's pad and eos ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token_id != PAD_ID or tokenizer.eos_token_id != EOS_ID:
        raise ValueError(
            f"{path}: tokenizer has pad id {tokenizer.pad_token_id} and eos id {tokenizer.eos_token_id}; "
            f"the decoder expects pad {PAD_ID} and eos {EOS_ID}")
    return tokenizer


@dataclass
class LoadedDecoder:
    """A decoder directory in memory: the decoder, its pretraining bridge (or None) and decoder.json."""

    decoder: TextDecoder
    bridge: nn.Linear | None
    meta: dict[str, Any]


def save_decoder_dir(decoder: TextDecoder, bridge: nn.Linear | None, out_dir: str | Path,
                     extra: dict[str, Any] | None = None) -> None:
    """Write decoder.safetensors, decoder.json and, given a bridge, bridge.safetensors into `out_dir`."""
    out_dir = Path(out_dir)
    # save_model stores a tied weight once (safetensors rejects shared tensors).
    with atomic_path(out_dir / "decoder.safetensors") as tmp:
        save_model(decoder, str(tmp))
    if bridge is not None:
        with atomic_path(out_dir / "bridge.safetensors") as tmp:
            save_model(bridge, str(tmp))
    meta = {
        "t5_config": decoder.config.to_dict(),
        "tied_lm_head": decoder.tied_lm_head,
        "pad_token_id": PAD_ID,
        "eos_token_id": EOS_ID,
        "decoder_start_token_id": DECODER_START_ID,
        "bridge": None if bridge is None else {"in_features": bridge.in_features,
                                               "out_features": bridge.out_features},
        **(extra or {}),
    }
    write_json(out_dir / "decoder.json", meta)


def load_decoder_dir(path: str | Path, device: str | torch.device = "cpu") -> LoadedDecoder:
    """Load a directory written by `save_decoder_dir`, with strict key matching."""
    path = Path(path)
    meta_path = path / "decoder.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} not found: {path} is not a read-clip decoder directory")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))

    decoder = build_decoder(T5Config.from_dict(meta["t5_config"]))
    if decoder.tied_lm_head and not meta["tied_lm_head"]:
        decoder.lm_head.weight = nn.Parameter(decoder.lm_head.weight.detach().clone())
    load_model(decoder, path / "decoder.safetensors", strict=True)

    bridge = None
    if meta["bridge"] is not None:
        bridge = make_bridge(meta["bridge"]["in_features"], meta["bridge"]["out_features"])
        load_model(bridge, path / "bridge.safetensors", strict=True)
        bridge = bridge.to(device)
    return LoadedDecoder(decoder.to(device), bridge, meta)
