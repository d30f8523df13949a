"""Resumable training state: written atomically every N steps, read back on a rerun.

A checkpoint (`<dir>/checkpoint.pt`, replaced whole each time) contains the trainable weights of
the objective (the frozen decoder is rebuilt from its own directory, not stored), the optimiser
and scheduler states, the torch CPU and CUDA generator states as tensors, and a JSON document
with the step, the run's fingerprint, the Python, NumPy and sampler stream states and the
metrics records so far. It loads with `torch.load(weights_only=True)`.

A checkpoint whose fingerprint (a hash of the run's settings) differs from the current run's is
ignored with a warning, so a rerun with changed settings starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from read_clip.io import atomic_path

log = logging.getLogger(__name__)

FILENAME = "checkpoint.pt"
# Parameter-name prefix of the frozen decoder inside FinetuneObjective; not stored.
FROZEN_PREFIXES = ("reconstruction.decoder.",)


def fingerprint(settings: dict[str, Any]) -> str:
    """A short hash of the settings that decide what a run computes."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def trainable_state(objective: nn.Module) -> dict[str, torch.Tensor]:
    """The objective's state dict without the frozen decoder, on the CPU."""
    return {name: tensor.detach().cpu() for name, tensor in objective.state_dict().items()
            if not name.startswith(FROZEN_PREFIXES)}


def generator_states() -> dict[str, Any]:
    """Python's and NumPy's global generator states as JSON values."""
    version, python_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(python_state), gauss],
            "numpy": [kind, keys.tolist(), position, has_gauss, cached]}


def restore_generator_states(states: dict[str, Any]) -> None:
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


@dataclass
class Resume:
    """What a run continues from: the next step's index (steps done) and the records so far."""

    step: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    fallbacks: int = 0


def save_checkpoint(directory: str | Path, step: int, run_fingerprint: str, objective: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                    sampler_state: dict[str, Any], records: list[dict[str, Any]], fallbacks: int) -> Path:
    """Write the state after `step` steps to `<directory>/checkpoint.pt`, atomically."""
    meta = {"step": step, "fingerprint": run_fingerprint, "generators": generator_states(),
            "sampler": sampler_state, "records": records, "fallbacks": fallbacks}
    state = {
        "model": trainable_state(objective),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # Sampler states hold 128-bit integers, which JSON keeps exactly.
        "meta": json.dumps(meta),
    }
    path = Path(directory) / FILENAME
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    log.info("saved checkpoint of step %d to %s", step, path)
    return path


def load_checkpoint(directory: str | Path, run_fingerprint: str, objective: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                    sampler) -> Resume:
    """Restore a matching checkpoint of `directory` into the run; Resume() when there is none."""
    path = Path(directory) / FILENAME
    if not path.exists():
        return Resume()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as error:
        raise RuntimeError(f"{path}: cannot read the checkpoint ({error}); delete it to start afresh") from error
    meta = json.loads(state["meta"])
    if meta["fingerprint"] != run_fingerprint:
        log.warning("ignoring %s: it was written by a run with other settings; starting from step 0", path)
        return Resume()

    missing, unexpected = objective.load_state_dict(state["model"], strict=False)
    missing = [name for name in missing if not name.startswith(FROZEN_PREFIXES)]
    if missing or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not fit the model (missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}); delete it to start afresh")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    restore_generator_states(meta["generators"])
    sampler.load_state_dict(meta["sampler"])
    log.info("resuming from %s after step %d", path, meta["step"])
    return Resume(meta["step"], meta["records"], meta["fallbacks"])
