"""Convert CLIP weights between Hugging Face `CLIPModel` and open_clip's `CLIP` (ViT towers).

open_clip 3.3 converts MobileCLIP and big_vision checkpoints but has no converter for a Hugging
Face `CLIPModel`, and transformers 5.25 ships none back to open_clip, so the mapping lives here.
Converting a Hugging Face checkpoint into the open_clip model, rather than wrapping it, lets every
source be scored by one code path: open_clip's `encode_image`, `encode_text`, preprocessing and
tokenizer.

The two layouts hold the same tensors. They differ in names, in attention (open_clip keeps q, k and
v stacked in one `in_proj` tensor of shape (3 * width, width); Hugging Face keeps three
(width, width) tensors), and in the projections (open_clip stores `x @ proj`, shape (width, dim);
Hugging Face stores a bias-free `nn.Linear` weight, shape (dim, width)). Text pooling agrees for
the CLIP tokenizer: open_clip pools at the argmax token id, Hugging Face at the first end-of-text
token (49407, the largest id) or, with the legacy `eos_token_id` 2, at the argmax too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import open_clip
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from transformers import CLIPConfig, CLIPModel

from read_clip.models.clip import register_model_configs

# Top-level keys of an open_clip model config that describe a plain two-tower ViT CLIP. Configs
# with more keys (custom text towers, SigLIP biases, casting) have no CLIPModel equivalent.
PLAIN_CONFIG_KEYS = {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg"}
# open_clip builds nn.LayerNorm with its default epsilon.
OPEN_CLIP_LAYER_NORM_EPS = 1e-5
# Activations: open_clip's `quick_gelu` flag is True or False for both towers together.
HF_ACTIVATIONS = {"quick_gelu": True, "gelu": False}
# End-of-text ids under which Hugging Face pools where open_clip does (see the module docstring).
POOLING_EOS_IDS = (2, 49407)
CLIP_BOS_ID, CLIP_EOS_ID = 49406, 49407
# open_clip's tokenizer pads with 0; Hugging Face's own CLIP configs set 1. Neither is read by
# the model, which masks nothing but the causal future.
CLIP_PAD_ID = 0
# Projections stored transposed in one layout relative to the other.
TRANSPOSED = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
# Hugging Face buffers that older checkpoints saved; both layouts rebuild them from the config.
HF_DERIVED_SUFFIX = "position_ids"


class ConversionError(ValueError):
    """A model whose architecture or weights have no counterpart in the other library."""


def normalised_config(cfg: Mapping) -> dict | None:
    """Fill an open_clip model config with its defaults, or return None if it is not a plain ViT CLIP."""
    if set(cfg) - PLAIN_CONFIG_KEYS or "vision_cfg" not in cfg or "text_cfg" not in cfg:
        return None
    try:
        vision = dataclasses.asdict(CLIPVisionCfg(**cfg["vision_cfg"]))
        text = dataclasses.asdict(CLIPTextCfg(**cfg["text_cfg"]))
    except TypeError:  # a key this open_clip version does not know
        return None
    if vision["timm_model_name"] is not None or text.get("hf_model_name") is not None:
        return None
    if not isinstance(vision["layers"], int):  # ResNet towers give a 4-tuple
        return None
    return {"embed_dim": cfg["embed_dim"], "quick_gelu": bool(cfg.get("quick_gelu", False)),
            "vision_cfg": vision, "text_cfg": text}


def open_clip_config_from_hf(config: CLIPConfig) -> dict:
    """Describe a Hugging Face CLIP config as an open_clip model config, checking that one exists."""
    vision, text = config.vision_config, config.text_config
    if config.model_type != "clip":
        raise ConversionError(f"model type {config.model_type!r} is not 'clip'; only CLIPModel checkpoints convert")
    for tower, sub in (("vision", vision), ("text", text)):
        if sub.hidden_act not in HF_ACTIVATIONS:
            raise ConversionError(f"{tower} hidden_act {sub.hidden_act!r} has no open_clip equivalent; "
                                  f"expected one of {list(HF_ACTIVATIONS)}")
        if not math.isclose(sub.layer_norm_eps, OPEN_CLIP_LAYER_NORM_EPS):
            raise ConversionError(f"{tower} layer_norm_eps is {sub.layer_norm_eps}; open_clip uses "
                                  f"{OPEN_CLIP_LAYER_NORM_EPS}")
        if sub.hidden_size % sub.num_attention_heads:
            raise ConversionError(f"{tower} hidden_size {sub.hidden_size} is not a multiple of "
                                  f"num_attention_heads {sub.num_attention_heads}")
    if vision.hidden_act != text.hidden_act:
        raise ConversionError(f"the towers use different activations ({vision.hidden_act!r} and "
                              f"{text.hidden_act!r}); open_clip sets one for both")
    if text.eos_token_id not in POOLING_EOS_IDS:
        raise ConversionError(f"text eos_token_id {text.eos_token_id} pools at a token open_clip does not; "
                              f"expected one of {list(POOLING_EOS_IDS)}")

    return {
        "embed_dim": config.projection_dim,
        "quick_gelu": HF_ACTIVATIONS[vision.hidden_act],
        "vision_cfg": {
            "image_size": vision.image_size,
            "layers": vision.num_hidden_layers,
            "width": vision.hidden_size,
            "head_width": vision.hidden_size // vision.num_attention_heads,
            "mlp_ratio": vision.intermediate_size / vision.hidden_size,
            "patch_size": vision.patch_size,
        },
        "text_cfg": {
            "context_length": text.max_position_embeddings,
            "vocab_size": text.vocab_size,
            "width": text.hidden_size,
            "heads": text.num_attention_heads,
            "layers": text.num_hidden_layers,
            "mlp_ratio": text.intermediate_size / text.hidden_size,
        },
    }


def matching_architectures(cfg: Mapping) -> list[str]:
    """open_clip architecture names whose config equals `cfg` once defaults are filled, sorted."""
    register_model_configs()
    target = normalised_config(cfg)
    if target is None:
        return []
    return sorted(name for name in open_clip.list_models()
                  if normalised_config(open_clip.get_model_config(name) or {}) == target)


def architecture_for_hf(config: CLIPConfig, requested: str | None = None) -> str:
    """Pick the open_clip architecture that a Hugging Face CLIP config converts into.

    `requested` must match the config. Without it, the registered architecture that matches is
    taken. If several match, the first by name is taken, because equal configs build identical models.
    """
    derived = open_clip_config_from_hf(config)
    matches = matching_architectures(derived)
    if requested is not None:
        if requested not in matches:
            raise ConversionError(
                f"architecture {requested!r} does not match the Hugging Face config, which converts to "
                f"{derived}; matching open_clip architectures: {matches or 'none'}")
        return requested
    if not matches:
        raise ConversionError(
            f"no registered open_clip architecture matches the Hugging Face config, which converts to {derived}. "
            "Add a model config with these values to read_clip/model_configs/ and name it as the architecture.")
    return matches[0]


def hf_config_from_open_clip(architecture: str) -> CLIPConfig:
    """Build the Hugging Face CLIPConfig of the same sizes as an open_clip architecture."""
    register_model_configs()
    cfg = normalised_config(open_clip.get_model_config(architecture) or {})
    if cfg is None:
        raise ConversionError(f"open_clip architecture {architecture!r} is not a plain ViT CLIP; "
                              "only those convert to a Hugging Face CLIPModel")
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    activation = "quick_gelu" if cfg["quick_gelu"] else "gelu"
    return CLIPConfig(
        projection_dim=cfg["embed_dim"],
        text_config={
            "vocab_size": text["vocab_size"],
            "hidden_size": text["width"],
            "intermediate_size": int(text["width"] * text["mlp_ratio"]),
            "num_hidden_layers": text["layers"],
            "num_attention_heads": text["heads"],
            "max_position_embeddings": text["context_length"],
            "hidden_act": activation,
            "projection_dim": cfg["embed_dim"],
            "bos_token_id": CLIP_BOS_ID,
            "eos_token_id": CLIP_EOS_ID,
            "pad_token_id": CLIP_PAD_ID,
        },
        vision_config={
            "hidden_size": vision["width"],
            "intermediate_size": int(vision["width"] * vision["mlp_ratio"]),
            "num_hidden_layers": vision["layers"],
            "num_attention_heads": vision["width"] // vision["head_width"],
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "hidden_act": activation,
            "projection_dim": cfg["embed_dim"],
        },
    )


def renamed_keys(vision_layers: int, text_layers: int) -> dict[str, str]:
    """open_clip key -> Hugging Face key of every tensor that maps one to one (projections transposed)."""
    names = {
        "logit_scale": "logit_scale",
        "visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        **TRANSPOSED,
    }
    for param in ("weight", "bias"):
        names[f"visual.ln_pre.{param}"] = f"vision_model.pre_layrnorm.{param}"
        names[f"visual.ln_post.{param}"] = f"vision_model.post_layernorm.{param}"
        names[f"ln_final.{param}"] = f"text_model.final_layer_norm.{param}"
    for ours, theirs, layers in block_prefixes(vision_layers, text_layers):
        for param in ("weight", "bias"):
            names[f"{ours}.ln_1.{param}"] = f"{theirs}.layer_norm1.{param}"
            names[f"{ours}.ln_2.{param}"] = f"{theirs}.layer_norm2.{param}"
            names[f"{ours}.attn.out_proj.{param}"] = f"{theirs}.self_attn.out_proj.{param}"
            names[f"{ours}.mlp.c_fc.{param}"] = f"{theirs}.mlp.fc1.{param}"
            names[f"{ours}.mlp.c_proj.{param}"] = f"{theirs}.mlp.fc2.{param}"
    return names


def block_prefixes(vision_layers: int, text_layers: int) -> list[tuple[str, str, int]]:
    """(open_clip prefix, Hugging Face prefix, layer index) of every transformer block."""
    blocks = [(f"visual.transformer.resblocks.{i}", f"vision_model.encoder.layers.{i}", i)
              for i in range(vision_layers)]
    blocks += [(f"transformer.resblocks.{i}", f"text_model.encoder.layers.{i}", i) for i in range(text_layers)]
    return blocks


def hf_to_open_clip_state(hf_state: Mapping[str, torch.Tensor], vision_layers: int,
                          text_layers: int) -> dict[str, torch.Tensor]:
    """Rename a CLIPModel state dict to open_clip's layout; every tensor must be used."""
    remaining = {k: v for k, v in hf_state.items() if not k.endswith(HF_DERIVED_SUFFIX)}
    state = {}
    for ours, theirs in renamed_keys(vision_layers, text_layers).items():
        tensor = take(remaining, theirs, "Hugging Face")
        state[ours] = tensor.t() if ours in TRANSPOSED else tensor
    for ours, theirs, _ in block_prefixes(vision_layers, text_layers):
        for param in ("weight", "bias"):
            # (3 * width, ...) with q, k, v stacked in that order, as nn.MultiheadAttention expects.
            parts = [take(remaining, f"{theirs}.self_attn.{p}_proj.{param}", "Hugging Face") for p in "qkv"]
            state[f"{ours}.attn.in_proj_{param}"] = torch.cat(parts)
    check_all_used(remaining, "Hugging Face")
    return {name: tensor.contiguous() for name, tensor in state.items()}


def open_clip_to_hf_state(state: Mapping[str, torch.Tensor], vision_layers: int,
                          text_layers: int) -> dict[str, torch.Tensor]:
    """Rename an open_clip CLIP state dict to CLIPModel's layout; every tensor must be used."""
    remaining = dict(state)
    hf_state = {}
    for ours, theirs in renamed_keys(vision_layers, text_layers).items():
        tensor = take(remaining, ours, "open_clip")
        hf_state[theirs] = tensor.t() if ours in TRANSPOSED else tensor
    for ours, theirs, _ in block_prefixes(vision_layers, text_layers):
        for param in ("weight", "bias"):
            q, k, v = take(remaining, f"{ours}.attn.in_proj_{param}", "open_clip").chunk(3)
            hf_state.update({f"{theirs}.self_attn.{name}_proj.{param}": t for name, t in zip("qkv", (q, k, v))})
    check_all_used(remaining, "open_clip")
    return {name: tensor.contiguous() for name, tensor in hf_state.items()}


def take(remaining: dict[str, torch.Tensor], key: str, layout: str) -> torch.Tensor:
    if key not in remaining:
        raise ConversionError(f"the {layout} state dict has no tensor {key!r}; it is not a ViT CLIP of the expected size")
    return remaining.pop(key)


def check_all_used(remaining: Mapping[str, torch.Tensor], layout: str) -> None:
    if remaining:
        raise ConversionError(f"{len(remaining)} tensors of the {layout} state dict have no counterpart: "
                              f"{sorted(remaining)[:20]}")


def open_clip_state_from_hf(hf_model: CLIPModel, architecture: str | None = None) -> tuple[str, dict[str, torch.Tensor]]:
    """Return (open_clip architecture, float32 state dict) for a Hugging Face CLIPModel."""
    architecture = architecture_for_hf(hf_model.config, architecture)
    state = {k: v.detach().float().cpu() for k, v in hf_model.state_dict().items()}
    converted = hf_to_open_clip_state(state, hf_model.config.vision_config.num_hidden_layers,
                                      hf_model.config.text_config.num_hidden_layers)
    return architecture, converted


def hf_clip_from_open_clip(model: torch.nn.Module, architecture: str) -> CLIPModel:
    """Build a Hugging Face CLIPModel holding an open_clip CLIP's weights (float32, eval mode)."""
    config = hf_config_from_open_clip(architecture)
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    hf_state = open_clip_to_hf_state(state, config.vision_config.num_hidden_layers,
                                     config.text_config.num_hidden_layers)
    hf_model = CLIPModel(config)
    hf_model.load_state_dict(hf_state, strict=True)
    return hf_model.eval()
