"""Text states, the decoder and bridge, weight-decay groups and the learning-rate schedule."""

import math

import pytest
import torch

from read_clip.models.clip import create_clip
from read_clip.models.decoder import (bridge_states, build_decoder, load_decoder_dir, make_bridge,
                                      make_t5_config, save_decoder_dir)
from read_clip.models.text import encode_text_states, trim_to_longest
from read_clip.train.objectives import FinetuneObjective, LossWeights
from read_clip.train.optim import OptimiserSettings, lr_factor, make_optimizer, make_scheduler, split_decay

CAPTIONS = [
    "a red circle",
    "a small blue square to the left of a large green triangle",
    "two shapes",
    "a yellow star above a purple circle",
]
DECODER_CONFIG = {"d_model": 32, "d_ff": 64, "num_heads": 2, "d_kv": 16, "num_decoder_layers": 2}


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    loaded = create_clip("readclip-tiny")
    loaded.model.eval()
    return loaded


def full_context_pooled(model, tokens):
    """The ln_final output of open_clip's own encode_text pass, at each end-of-text token."""
    captured = {}
    handle = model.ln_final.register_forward_hook(lambda module, args, output: captured.update(x=output))
    try:
        model.encode_text(tokens)
    finally:
        handle.remove()
    return captured["x"][torch.arange(tokens.shape[0]), tokens.argmax(dim=-1)]


def test_projected_equals_encode_text(clip):
    tokens = clip.tokenizer(CAPTIONS)
    with torch.no_grad():
        states = encode_text_states(clip.model, tokens)
        reference = clip.model.encode_text(tokens)
    assert states.projected.shape == reference.shape
    assert torch.allclose(states.projected, reference, atol=1e-5, rtol=0)


def test_pooled_equals_full_context(clip):
    tokens = clip.tokenizer(CAPTIONS)
    with torch.no_grad():
        trimmed = encode_text_states(clip.model, tokens).pooled
        full = full_context_pooled(clip.model, tokens)
    assert trimmed.shape == (4, 128)
    assert torch.allclose(trimmed, full, atol=1e-5, rtol=0)


def test_pooled_independent_of_batch(clip):
    tokens = clip.tokenizer(CAPTIONS)
    with torch.no_grad():
        together = encode_text_states(clip.model, tokens).pooled[0]
        alone = encode_text_states(clip.model, tokens[:1]).pooled[0]
    assert torch.allclose(together, alone, atol=1e-5, rtol=0)


def test_trim_to_longest_length(clip):
    tokens = clip.tokenizer(["a red circle", "a blue square on the left"])
    assert tokens.shape[1] == clip.model.context_length
    # <start> a blue square on the left <end> = 8 tokens.
    assert trim_to_longest(tokens).shape == (2, 8)


@pytest.fixture
def decoder_and_bridge():
    torch.manual_seed(1)
    decoder = build_decoder(make_t5_config(DECODER_CONFIG, vocab_size=50))
    return decoder, make_bridge(128, 32)


def test_bridge_shape(decoder_and_bridge, clip):
    _, bridge = decoder_and_bridge
    with torch.no_grad():
        pooled = encode_text_states(clip.model, clip.tokenizer(CAPTIONS)).pooled
    assert bridge_states(bridge, pooled).shape == (4, 1, 32)
    assert bridge.bias is None


def test_decoder_frozen(decoder_and_bridge, clip):
    decoder, bridge = decoder_and_bridge
    decoder.freeze()
    objective = FinetuneObjective(clip.model, LossWeights(1.0, 0.1, 0.5), decoder, bridge)
    objective.train()
    assert not any(p.requires_grad for p in decoder.parameters())
    assert not decoder.training
    assert not decoder.stack.block[0].training
    assert bridge.weight.requires_grad
    assert objective.clip.training


def test_decoder_dir_roundtrip(decoder_and_bridge, tmp_path):
    decoder, bridge = decoder_and_bridge
    decoder.eval()
    save_decoder_dir(decoder, bridge, tmp_path, extra={"note": "test"})
    loaded = load_decoder_dir(tmp_path)
    loaded.decoder.eval()
    states = torch.randn(3, 1, 32)
    inputs = torch.tensor([[0, 5, 6], [0, 7, 1], [0, 2, 3]])
    with torch.no_grad():
        assert torch.equal(decoder(states, inputs), loaded.decoder(states, inputs))
    assert torch.equal(bridge.weight, loaded.bridge.weight)
    assert loaded.decoder.tied_lm_head
    assert loaded.meta["note"] == "test"
    assert loaded.meta["t5_config"]["vocab_size"] == 50


def test_decay_groups_by_name(clip, decoder_and_bridge):
    decoder, bridge = decoder_and_bridge
    objective = FinetuneObjective(clip.model, LossWeights(1.0, 0.1, 0.5), decoder.freeze(), bridge)
    decay, no_decay = split_decay(objective)
    for name in ["clip.transformer.resblocks.0.attn.in_proj_bias", "clip.ln_final.weight",
                 "clip.ln_final.bias", "clip.visual.ln_pre.weight",
                 "clip.visual.transformer.resblocks.3.mlp.c_fc.bias"]:
        assert name in no_decay, name
    for name in ["clip.logit_scale", "clip.positional_embedding", "clip.visual.class_embedding",
                 "clip.visual.positional_embedding", "clip.token_embedding.weight",
                 "clip.text_projection", "clip.visual.proj",
                 "clip.transformer.resblocks.0.attn.in_proj_weight", "reconstruction.bridge.weight"]:
        assert name in decay, name
    # The frozen decoder is in neither group.
    assert not any(".decoder." in name for name in [*decay, *no_decay])
    trainable = sum(1 for p in objective.parameters() if p.requires_grad)
    assert len(decay) + len(no_decay) == trainable


def test_decay_excludes_t5_layer_norms(decoder_and_bridge):
    decoder, _ = decoder_and_bridge
    decay, no_decay = split_decay(decoder)
    assert "stack.final_layer_norm.weight" in no_decay
    assert "stack.block.0.layer.0.layer_norm.weight" in no_decay
    assert "stack.block.0.layer.0.SelfAttention.q.weight" in decay


def test_optimizer_groups_decay(clip):
    settings = OptimiserSettings(lr=1e-3, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6,
                                 warmup_steps=2, total_steps=10)
    optimizer = make_optimizer(clip.model, settings)
    decay_group, no_decay_group = optimizer.param_groups
    assert decay_group["weight_decay"] == 0.1
    assert no_decay_group["weight_decay"] == 0.0
    assert "logit_scale" in decay_group["names"]
    assert "ln_final.weight" in no_decay_group["names"]


@pytest.mark.parametrize("step, expected", [
    (0, 0.25),  # first warm-up step: 1 / warmup
    (3, 1.0),  # last warm-up step reaches the peak
    (4, 1.0),  # cosine starts at the peak
    (8, 0.5),  # half-way through the decay (4 + 8/2)
    (12, 0.0),  # one past the last update
])
def test_lr_factor_values(step, expected):
    assert abs(lr_factor(step, warmup_steps=4, total_steps=12) - expected) < 1e-12


def test_lr_factor_cosine_shape():
    # A quarter of the way through the decay: 0.5 * (1 + cos(pi / 4)).
    assert abs(lr_factor(6, warmup_steps=4, total_steps=12) - 0.5 * (1 + math.cos(math.pi / 4))) < 1e-12


def test_scheduler_sets_lr(clip):
    settings = OptimiserSettings(lr=2e-3, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6,
                                 warmup_steps=4, total_steps=12)
    optimizer = make_optimizer(clip.model, settings)
    scheduler = make_scheduler(optimizer, 4, 12)
    seen = []
    for _ in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert abs(seen[0] - 5e-4) < 1e-12
    assert abs(seen[3] - 2e-3) < 1e-12
    assert abs(seen[8] - 1e-3) < 1e-12
    assert optimizer.param_groups[1]["lr"] == optimizer.param_groups[0]["lr"]


def test_decay_lists_tied_weight_once(decoder_and_bridge):
    decoder, _ = decoder_and_bridge
    decay, no_decay = split_decay(decoder)
    assert decoder.tied_lm_head
    assert "stack.embed_tokens.weight" in decay
    assert "lm_head.weight" not in decay
    assert len({id(p) for p in decay.values()}) == len(decay)


def test_decoder_dir_without_bridge(decoder_and_bridge, tmp_path):
    decoder, _ = decoder_and_bridge
    save_decoder_dir(decoder, None, tmp_path)
    loaded = load_decoder_dir(tmp_path)
    assert loaded.bridge is None
    assert not (tmp_path / "bridge.safetensors").exists()
