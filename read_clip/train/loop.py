"""The training loop shared by the three training commands, and the files every run writes.

An objective is an `nn.Module` with a `clip` attribute (the open_clip model whose logit scale is
logged) whose `forward(batch)` returns named loss terms plus their weighted sum under "loss".
Every `log_every` steps the loop logs one fixed-field line and rewrites `metrics.jsonl` whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from read_clip.io import package_versions, write_json, write_text
from read_clip.train.data import Batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    """How long to train and how to log.

    total_steps: optimiser steps of the run.
    steps_per_epoch: full batches per pass over the images (for the `epoch` field).
    log_every: steps between log lines and metrics records (the first and last step always log).
    grad_clip_norm: maximum global gradient norm, None for no clipping.
    max_logit_scale: clamp of the exponentiated logit scale after each step, None for none.
    device: where the model and batches live ("cpu" for now).
    """

    total_steps: int
    steps_per_epoch: int
    log_every: int
    grad_clip_norm: float | None
    max_logit_scale: float | None = None
    device: str = "cpu"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with the run's one seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast_context(device: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context of the forward pass; on the CPU training runs in float32."""
    # NOTE: only the CPU in float32 is supported so far; bf16 autocast on CUDA is not wired in.
    if torch.device(device).type != "cpu":
        raise NotImplementedError(f"training on {device!r} is not supported yet; use device 'cpu'")
    return contextlib.nullcontext()


def format_record(record: dict[str, Any], total_steps: int) -> str:
    """Format the fixed-field progress line of one metrics record."""
    parts = [
        f"step {record['step']}/{total_steps}",
        f"{record['samples_per_s']:.1f} samples/s",
        f"lr {record['lr']:.2e}",
        f"logit_scale {record['logit_scale']:.2f}",
    ]
    parts += [f"{name} {record[name]:.4f}" for name in record if name.endswith("_loss")]
    parts.append(f"loss {record['loss']:.4f}")
    return " | ".join(parts)


class MetricsWriter:
    """Keep every record of the run and rewrite `metrics.jsonl` whole on each `add`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))


class TermMeans:
    """Sum loss terms and samples between two log lines."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.samples = 0
        self.started = time.perf_counter()

    def add(self, terms: dict[str, torch.Tensor], samples: int) -> None:
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value.detach())
        self.steps += 1
        self.samples += samples

    def means(self) -> dict[str, float]:
        return {name: total / self.steps for name, total in self.sums.items()}

    def samples_per_s(self) -> float:
        return self.samples / max(time.perf_counter() - self.started, 1e-9)


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def train_step(objective: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch,
               settings: LoopSettings) -> dict[str, torch.Tensor]:
    """Run one forward, backward and optimiser update; return the step's loss terms."""
    optimizer.zero_grad(set_to_none=True)
    with autocast_context(settings.device):
        terms = objective(batch)
    loss = terms["loss"]
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {float(loss)} ({ {k: float(v) for k, v in terms.items()} })")
    loss.backward()
    if settings.grad_clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(trainable_parameters(objective), settings.grad_clip_norm)
    optimizer.step()
    if settings.max_logit_scale is not None:
        with torch.no_grad():
            objective.clip.logit_scale.clamp_(0, math.log(settings.max_logit_scale))
    return terms


def run_training(objective: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, batches: Iterator[Batch],
                 settings: LoopSettings, metrics_path: str | Path) -> list[dict[str, Any]]:
    """Train for `settings.total_steps` steps; return the metrics records written."""
    objective.to(settings.device).train()
    writer = MetricsWriter(metrics_path)
    window = TermMeans()
    fallbacks = 0
    progress = tqdm(total=settings.total_steps, disable=not sys.stderr.isatty(), desc="training")

    for step, batch in enumerate(batches, start=1):
        lr = optimizer.param_groups[0]["lr"]
        logit_scale = float(objective.clip.logit_scale.detach().exp())
        terms = train_step(objective, optimizer, batch.to(settings.device), settings)
        scheduler.step()
        window.add(terms, batch.size)
        fallbacks += batch.paraphrase_fallbacks
        progress.update(1)

        if step == 1 or step % settings.log_every == 0 or step == settings.total_steps:
            means = window.means()
            record = {
                "step": step,
                "epoch": round(step / settings.steps_per_epoch, 4),
                "samples_per_s": window.samples_per_s(),
                "lr": lr,
                "logit_scale": logit_scale,
                **{name: value for name, value in means.items() if name != "loss"},
                "loss": means["loss"],
                "paraphrase_fallbacks": fallbacks,
            }
            writer.add(record)
            log.info(format_record(record, settings.total_steps))
            window = TermMeans()
    progress.close()

    if fallbacks:
        log.warning("%d samples had no paraphrase different from their anchor and used the anchor", fallbacks)
    if not writer.records or writer.records[-1]["step"] != settings.total_steps:
        raise RuntimeError(f"the batches ran out before step {settings.total_steps}")
    return writer.records


def write_run_files(out_dir: str | Path, settings: dict[str, Any]) -> None:
    """Write the resolved settings (config.json) and package versions (versions.json)."""
    write_json(Path(out_dir) / "config.json", settings)
    write_json(Path(out_dir) / "versions.json", package_versions())


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads (None keeps torch's default, one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)
