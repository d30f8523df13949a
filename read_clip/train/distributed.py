"""Data-parallel training: the torchrun launcher, the process group and the gathered losses.

With N processes each rank trains on a contiguous 1/N of every global batch (the global batch
size is kept). The contrastive and alignment losses see the whole global batch: each rank
gathers every rank's features with gradient (as open_clip's `gather_features` does), so every
rank computes the single-process loss value. DistributedDataParallel averages the parameter
gradients over ranks; the gather's backward sums the N identical losses' gradients into each
rank's own features, so the average is the single-process gradient. The reconstruction loss is a
mean over target tokens, so its per-rank sums are divided by the global token count
(`global_token_mean`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn

log = logging.getLogger(__name__)

# Set by torchrun in every process it starts; its absence means this process is the launcher.
RANK_VARIABLE = "LOCAL_RANK"


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_command(argv: list[str], gpus: int) -> list[str]:
    """Build the command that reruns `read-clip <argv>` as `gpus` processes under torchrun."""
    torchrun = shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", f"--nproc_per_node={gpus}", "-m", "read_clip.cli", *argv]


def should_relaunch(gpus: int) -> bool:
    """True when `gpus` > 1 and this process was not itself started by torchrun."""
    return gpus > 1 and RANK_VARIABLE not in os.environ


def relaunch_under_torchrun(argv: list[str], gpus: int) -> None:
    """Replace this process with torchrun running the same command on `gpus` GPUs (never returns)."""
    if torch.cuda.device_count() < gpus:
        raise RuntimeError(f"--gpus {gpus} but torch sees {torch.cuda.device_count()} CUDA GPUs")
    command = torchrun_command(argv, gpus)
    log.info("relaunching as %d processes: %s", gpus, " ".join(command))
    os.execv(command[0], command)


def init_world(backend: str | None = None) -> World:
    """Join the process group torchrun set up (env://); a single World when not under torchrun."""
    if RANK_VARIABLE not in os.environ:
        return World()
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend)
    return current_world()


def current_world() -> World:
    """Return the World of an initialised process group, or a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get(RANK_VARIABLE, dist.get_rank())))


def gather_rows(features: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's (n, D) features in rank order, (N*n, D), keeping the gradient.

    Without a process group (or with one process) the features come back unchanged.
    """
    if current_world().size == 1:
        return features
    return torch.cat(dist_fn.all_gather(features.contiguous()), dim=0)


def global_token_mean(token_loss_sum: torch.Tensor, tokens: int) -> torch.Tensor:
    """Mean over all ranks' tokens of a per-rank sum of token losses.

    The value is the global mean, equal on every rank. The gradient is that of
    world_size * local_sum / global_tokens, so DDP's average over ranks gives the gradient of
    the global mean.
    """
    world = current_world()
    if world.size == 1:
        return token_loss_sum / tokens
    counts = torch.tensor([float(tokens)], device=token_loss_sum.device)
    dist.all_reduce(counts)
    total = token_loss_sum.detach().clone()
    dist.all_reduce(total)
    local = token_loss_sum * world.size / counts[0]
    return local + (total / counts[0] - local).detach()


def reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean over ranks of a detached scalar (for logging); the value itself with one process."""
    if current_world().size == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / current_world().size
