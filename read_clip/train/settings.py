"""Checks of the JSON settings that workflow rules pass to the training commands."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from read_clip.config import ConfigError


def require_keys(settings: Any, keys: Iterable[str], where: str) -> dict:
    """Return `settings` if it is a mapping with exactly `keys`, else raise ConfigError."""
    keys = list(keys)
    if not isinstance(settings, dict):
        raise ConfigError(f"{where} must be a JSON object with keys {keys}, got {type(settings).__name__}")
    missing = [key for key in keys if key not in settings]
    unknown = sorted(set(settings) - set(keys))
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if unknown:
            problems.append(f"unknown {unknown}")
        raise ConfigError(f"{where}: {' and '.join(problems)}; expected exactly the keys {keys}")
    return settings


# Keys of a demo pretraining run (the `optimiser_run` of the config schema).
RUN_KEYS = ("steps", "batch_size", "lr", "warmup_steps")
# Keys of the config's `train` section that `finetune` reads (the section minus `variants`).
TRAIN_KEYS = ("batch_size", "epochs", "lr", "warmup_steps", "weight_decay", "betas", "eps",
              "grad_clip_norm", "negatives_per_caption", "log_every", "checkpoint_every",
              "grad_checkpointing", "allow_cpu", "loader_workers")
WEIGHT_KEYS = ("neg", "rec", "align")


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that change where a run executes but not what it computes."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own, one per core).")
    parser.add_argument("--device", default="cpu",
                        help="Torch device to train on: 'cpu', 'cuda' or 'cuda:N' (finetune also 'auto').")
