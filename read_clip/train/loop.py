"""The training loop shared by the three training commands, and the files every run writes.

An objective is an `nn.Module` with a `clip` attribute (the open_clip model whose logit scale is
logged) whose `forward(batch)` returns named loss terms plus their weighted sum under "loss".
Every `log_every` steps the loop logs one fixed-field line and rewrites `metrics.jsonl` whole.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from read_clip.io import package_versions, write_json, write_text
from read_clip.train.checkpoint import Resume
from read_clip.train.data import Batch
from read_clip.train.device import Precision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    """How long to train, where, and how to log.

    total_steps: optimiser steps of the run.
    steps_per_epoch: full batches per pass over the images (for the `epoch` field).
    log_every: steps between log lines and metrics records (the first and last step always log).
    grad_clip_norm: maximum global gradient norm, None for no clipping.
    max_logit_scale: clamp of the exponentiated logit scale after each step, None for none.
    device: where the model and batches live.
    world_size: training processes; a step trains world_size x the per-rank batch.
    is_main: whether this process logs and writes the metrics (rank 0).
    """

    total_steps: int
    steps_per_epoch: int
    log_every: int
    grad_clip_norm: float | None
    max_logit_scale: float | None = None
    device: str | torch.device = "cpu"
    world_size: int = 1
    is_main: bool = True


# Test hook: a run raises SimulatedInterruption right after this step (and its checkpoint).
STOP_AFTER_STEP_VARIABLE = "READ_CLIP_STOP_AFTER_STEP"


class SimulatedInterruption(RuntimeError):
    """Raised by the READ_CLIP_STOP_AFTER_STEP hook, standing in for a killed job."""


class NonFiniteLoss(FloatingPointError):
    """A step's loss was NaN or infinite; the run stops before writing anything of that step."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with the run's one seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    """Keep every record of the run and rewrite `metrics.jsonl` whole on each `add`.

    `records` are those of the steps before a resume; `enabled` False keeps them without writing
    (ranks other than 0).
    """

    def __init__(self, path: str | Path, records: list[dict[str, Any]] | None = None, enabled: bool = True):
        self.path = Path(path)
        self.records: list[dict[str, Any]] = records or []
        self.enabled = enabled

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.enabled:
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


def unwrap(objective: nn.Module) -> nn.Module:
    """The objective inside a DistributedDataParallel wrapper (or the objective itself)."""
    return getattr(objective, "module", objective)


def check_finite(terms: dict[str, torch.Tensor], batch: Batch, step: int | None) -> None:
    loss = terms["loss"]
    if not torch.isfinite(loss):
        values = {name: float(value.detach()) for name, value in terms.items()}
        raise NonFiniteLoss(
            f"step {step}: loss is {float(loss.detach())} ({values}); COCO ids of the batch's images: "
            f"{batch.image_ids.tolist()}. No checkpoint was written for this step; lower the "
            "learning rate or inspect these images and captions.")


def train_step(objective: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch,
               settings: LoopSettings, precision: Precision | None = None,
               step: int | None = None) -> dict[str, torch.Tensor]:
    """Run one forward, backward and optimiser update; return the step's loss terms.

    Raises NonFiniteLoss, naming `step` and the batch's image ids, before any update.
    """
    precision = precision or Precision(torch.device(settings.device), None)
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        terms = objective(batch)
    check_finite(terms, batch, step)
    loss = terms["loss"]
    scaler = precision.scaler
    (scaler.scale(loss) if scaler else loss).backward()
    if scaler:
        scaler.unscale_(optimizer)
    if settings.grad_clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(trainable_parameters(objective), settings.grad_clip_norm)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if settings.max_logit_scale is not None:
        with torch.no_grad():
            unwrap(objective).clip.logit_scale.clamp_(0, math.log(settings.max_logit_scale))
    return terms


def stop_after_step() -> int | None:
    value = os.environ.get(STOP_AFTER_STEP_VARIABLE)
    return int(value) if value else None


StepHook = Callable[[int, list[dict[str, Any]], int], None]


def run_training(objective: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, batches: Iterator[Batch],
                 settings: LoopSettings, metrics_path: str | Path, precision: Precision | None = None,
                 resume: Resume | None = None, after_step: StepHook | None = None) -> list[dict[str, Any]]:
    """Train up to step `settings.total_steps`; return the metrics records written.

    `resume` gives the steps already done (the batches must start after them) and their
    records. `after_step(step, records, fallbacks)` runs after each update (checkpointing).
    """
    resume = resume or Resume()
    # NOTE: the first record after a resume averages only the steps run since the resume.
    objective.to(settings.device).train()
    writer = MetricsWriter(metrics_path, list(resume.records), enabled=settings.is_main)
    window = TermMeans()
    fallbacks = resume.fallbacks
    stop_after = stop_after_step()
    progress = tqdm(total=settings.total_steps, initial=resume.step,
                    disable=not (sys.stderr.isatty() and settings.is_main), desc="training")

    for step, batch in enumerate(batches, start=resume.step + 1):
        lr = optimizer.param_groups[0]["lr"]
        logit_scale = float(unwrap(objective).clip.logit_scale.detach().exp())
        terms = train_step(objective, optimizer, batch.to(settings.device), settings, precision, step)
        scheduler.step()
        window.add(terms, batch.size * settings.world_size)
        fallbacks += batch.paraphrase_fallbacks
        progress.update(1)

        if step == 1 or step % settings.log_every == 0 or step == settings.total_steps:
            record = make_record(step, settings, window, lr, logit_scale, fallbacks)
            writer.add(record)
            if settings.is_main:
                log.info(format_record(record, settings.total_steps))
            window = TermMeans()
        if after_step is not None:
            after_step(step, writer.records, fallbacks)
        if step == stop_after:
            raise SimulatedInterruption(f"{STOP_AFTER_STEP_VARIABLE}={stop_after}: stopped after step {step}")
    progress.close()

    if fallbacks and settings.is_main:
        log.warning("%d samples had no paraphrase different from their anchor and used the anchor", fallbacks)
    if not writer.records or writer.records[-1]["step"] != settings.total_steps:
        raise RuntimeError(f"the batches ran out before step {settings.total_steps}")
    return writer.records


def make_record(step: int, settings: LoopSettings, window: TermMeans, lr: float, logit_scale: float,
                fallbacks: int) -> dict[str, Any]:
    means = window.means()
    return {
        "step": step,
        "epoch": round(step / settings.steps_per_epoch, 4),
        "samples_per_s": window.samples_per_s(),
        "lr": lr,
        "logit_scale": logit_scale,
        **{name: value for name, value in means.items() if name != "loss"},
        "loss": means["loss"],
        "paraphrase_fallbacks": fallbacks,
    }


def write_run_files(out_dir: str | Path, settings: dict[str, Any]) -> None:
    """Write the resolved settings (config.json) and package versions (versions.json)."""
    write_json(Path(out_dir) / "config.json", settings)
    write_json(Path(out_dir) / "versions.json", package_versions())


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads (None keeps torch's default, one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)
