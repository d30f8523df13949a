"""AdamW with decay and no-decay parameter groups, and the warm-up plus cosine schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class OptimiserSettings:
    """AdamW hyper-parameters and the schedule length, in optimiser steps."""

    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    warmup_steps: int
    total_steps: int


def is_layer_norm(module: nn.Module) -> bool:
    """True for torch's LayerNorm (and open_clip's subclasses) and T5's RMS-style T5LayerNorm."""
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("LayerNorm")


def split_decay(model: nn.Module) -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
    """Split the trainable parameters of `model` into (decayed, not decayed), keyed by name.

    Rule: every trainable tensor is decayed except biases and LayerNorm weights. So
    `logit_scale`, the class and positional embeddings, the token embedding and the
    projections are decayed. This differs from open_clip_train, which also exempts every
    tensor with fewer than 2 dimensions (`logit_scale`, `class_embedding`).
    """
    decay, no_decay = {}, {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            # A tied weight (T5's token embedding and lm_head) is listed under its first name only.
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            full_name = f"{module_name}.{name}" if module_name else name
            if name == "bias" or name.endswith("_bias") or is_layer_norm(module):
                no_decay[full_name] = parameter
            else:
                decay[full_name] = parameter
    return decay, no_decay


def make_optimizer(model: nn.Module, settings: OptimiserSettings, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of `model`, in a decay and a no-decay group.

    `fused` selects torch's fused CUDA kernel (same update, one launch for all tensors); the
    parameters must then be on the GPU.
    """
    decay, no_decay = split_decay(model)
    if not decay and not no_decay:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    groups = [
        {"params": list(decay.values()), "weight_decay": settings.weight_decay, "names": list(decay)},
        {"params": list(no_decay.values()), "weight_decay": 0.0, "names": list(no_decay)},
    ]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=tuple(settings.betas), eps=settings.eps,
                             fused=fused or None)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate for the update of step `step` (0-based).

    Linear warm-up reaching 1 at step warmup_steps - 1, then cosine decay that reaches 0 at
    step total_steps (one past the last update).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule; call `scheduler.step()` once after each `optimizer.step()`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps))
