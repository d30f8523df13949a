"""Export a fine-tuned CLIP as a Hugging Face `CLIPModel` directory.

The open_clip model directory (model.safetensors + model.json) is what the pipeline scores; the
Hugging Face directory is for users of transformers, laid out like the released READ-CLIP
checkpoint: `config.json` and `model.safetensors` from `save_pretrained`, plus
`read_clip_config.json` (the run's resolved settings) and `versions.json` (package versions).
The activation stays QuickGELU (`hidden_act: quick_gelu`), as OpenAI's ViT-B/32 weights need.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from read_clip.io import package_versions, write_json
from read_clip.models.hf_convert import hf_clip_from_open_clip


def export_hf_dir(model: torch.nn.Module, architecture: str, out_dir: str | Path,
                  settings: dict[str, Any]) -> Path:
    """Write the Hugging Face CLIPModel directory of `model` to `out_dir`, replacing it whole.

    The directory is written beside its final place and renamed, so a reader never sees half
    of one.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    hf_model = hf_clip_from_open_clip(model, architecture)
    hf_model.save_pretrained(tmp, safe_serialization=True)
    write_json(tmp / "read_clip_config.json", {"architecture": architecture, **settings})
    write_json(tmp / "versions.json", package_versions())
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir
