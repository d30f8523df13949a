"""Build, save and load CLIP models through open_clip.

A model directory (`results/models/<name>/`) contains `model.safetensors` (the open_clip state dict)
and `model.json` ({"architecture": <open_clip name>, ...}); every stage that scores or fine-tunes a
model reads it through `load_model_dir`, so all models load the same way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import open_clip
import torch
from safetensors.torch import load_file, save_file

from read_clip.io import atomic_path, write_json

CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"
_registered = False


def register_model_configs() -> None:
    """Make the package's own architectures (such as `readclip-tiny`) known to open_clip."""
    global _registered
    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


@dataclass
class LoadedClip:
    """A CLIP model with its evaluation image transform and its tokenizer."""

    model: torch.nn.Module
    preprocess: Callable  # PIL image -> float tensor (3, H, W), CLIP-normalised
    tokenizer: Callable  # list[str] -> int64 tensor (N, context_length)
    architecture: str


class _DropRandomInitWarning(logging.Filter):
    """Hide open_clip's "No pretrained weights loaded" warning for a model whose weights are
    loaded right after it is built."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


def create_clip(architecture: str, pretrained: str | None = None,
                cache_dir: str | None = None, weights_follow: bool = False) -> LoadedClip:
    """Build an open_clip model; random weights unless `pretrained` names a tag.

    `weights_follow` silences open_clip's random-initialisation warning when the caller loads a
    state dict next.
    """
    register_model_configs()
    quiet = _DropRandomInitWarning()
    if weights_follow:
        logging.getLogger().addFilter(quiet)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            architecture, pretrained=pretrained, cache_dir=cache_dir)
    finally:
        logging.getLogger().removeFilter(quiet)
    return LoadedClip(model, preprocess, open_clip.get_tokenizer(architecture), architecture)


def save_model_dir(model: torch.nn.Module, architecture: str, out_dir: str | Path,
                   extra: dict[str, Any] | None = None) -> None:
    """Write `model.safetensors` and `model.json` into `out_dir`, each atomically."""
    out_dir = Path(out_dir)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    with atomic_path(out_dir / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    write_json(out_dir / "model.json", {"architecture": architecture, **(extra or {})})


def load_model_dir(path: str | Path, device: str | torch.device = "cpu") -> LoadedClip:
    """Load a model directory written by `save_model_dir`, with strict key matching."""
    path = Path(path)
    meta_path = path / "model.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} not found: {path} is not a read-clip model directory")
    architecture = json.loads(meta_path.read_text(encoding="utf-8"))["architecture"]
    loaded = create_clip(architecture, weights_follow=True)
    loaded.model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
    loaded.model.to(device).eval()
    return loaded
