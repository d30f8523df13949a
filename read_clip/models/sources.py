"""Model specs: where a CLIP's weights come from, and how each source becomes the same open_clip model.

Every source ends as a `LoadedClip` of a registered open_clip architecture with strictly matched
weights, so scoring runs one code path whatever published the checkpoint. The `fetch-model`
command writes that model as a model directory (`save_model_dir`), which the workflow's embedding
and scoring rules read unchanged.

Kinds of spec, as JSON objects ({"kind": ..., "source": ..., ...}) or command-line shorthands:

    kind                  source                              other fields        shorthand
    open_clip             open_clip pretrained tag            architecture        openclip:ARCH/TAG
    open_clip_checkpoint  .pt, .pth, .bin or .safetensors     architecture        file:PATH@ARCH
    hf_clip               hub id or local CLIPModel folder    architecture (opt)  hf:ID_OR_DIR
    hf_hub_file           hub repo id                         file, architecture  hfhub:OWNER/REPO/FILE@ARCH
    model_dir             read-clip model directory           -                   dir:PATH

`revision` (hub kinds) pins a branch, tag or commit; `name` labels the model in outputs. A JSON
object is accepted wherever a shorthand is.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import pickle
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import open_clip
import torch
from safetensors.torch import load_file

from read_clip.models.clip import LoadedClip, create_clip, load_model_dir, register_model_configs, save_model_dir
from read_clip.models.fetch_clip import GELU_NAMES_OF_QUICKGELU_WEIGHTS, check_activation

log = logging.getLogger(__name__)

KINDS = ("open_clip", "open_clip_checkpoint", "hf_clip", "hf_hub_file", "model_dir")
# Fields each kind needs besides `kind` and `source`.
REQUIRED = {
    "open_clip": ("architecture",),
    "open_clip_checkpoint": ("architecture",),
    "hf_clip": (),
    "hf_hub_file": ("file", "architecture"),
    "model_dir": (),
}
SHORTHANDS = {"openclip": "open_clip", "file": "open_clip_checkpoint", "hf": "hf_clip",
              "hfhub": "hf_hub_file", "dir": "model_dir"}
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
# A Hugging Face hub id: "name" or "owner/name".
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Keys listed by name in a mismatch error; a wrong architecture can mismatch hundreds.
MAX_LISTED_KEYS = 20
DDP_PREFIX = "module."


class ModelSourceError(ValueError):
    """A spec that is malformed, or a source that cannot be read."""


class CheckpointKeyError(ModelSourceError):
    """A checkpoint whose tensors do not match the architecture's exactly."""


@dataclass(frozen=True)
class ModelSpec:
    """Source of a model's weights, with the fields the module docstring lists per kind."""

    kind: str
    source: str
    architecture: str | None = None
    file: str | None = None
    revision: str | None = None
    name: str | None = None

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}

    def label(self) -> str:
        """Return the `name`, or a label built from the source."""
        if self.name:
            return self.name
        if self.kind == "open_clip":
            return f"{self.architecture}/{self.source}"
        if self.kind == "hf_hub_file":
            return f"{self.source}/{self.file}"
        return self.source


def spec_from_mapping(data: Mapping, name: str | None = None) -> ModelSpec:
    """Build and check a spec from a mapping such as an entry of the config's `models` section."""
    known = {f.name for f in fields(ModelSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelSourceError(f"model spec {dict(data)} has unknown keys {unknown}; known keys: {sorted(known)}")
    values = dict(data)
    if name is not None:
        values.setdefault("name", name)
    for key in ("kind", "source"):
        if not isinstance(values.get(key), str) or not values[key]:
            raise ModelSourceError(f"model spec {dict(data)} needs a non-empty string {key!r}")
    if values["kind"] not in KINDS:
        raise ModelSourceError(f"model spec kind {values['kind']!r} is unknown; expected one of {list(KINDS)}")
    absent = [key for key in REQUIRED[values["kind"]] if not values.get(key)]
    if absent:
        raise ModelSourceError(f"a {values['kind']} spec needs {absent}: {dict(data)}")
    return ModelSpec(**values)


def parse_spec(text: str) -> ModelSpec:
    """Parse a spec given as a JSON object or as a shorthand (see the module docstring)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelSourceError(f"model spec {text!r} is not valid JSON ({error})") from error
        if not isinstance(data, dict):
            raise ModelSourceError(f"model spec {text!r} must be a JSON object")
        return spec_from_mapping(data)

    prefix, sep, rest = text.partition(":")
    if not sep or prefix not in SHORTHANDS or not rest:
        raise ModelSourceError(
            f"model spec {text!r} is neither a JSON object nor a shorthand; expected one of "
            "openclip:ARCH/TAG, file:PATH@ARCH, hf:ID_OR_DIR, hfhub:OWNER/REPO/FILE@ARCH, dir:PATH")
    kind = SHORTHANDS[prefix]
    if kind == "open_clip":
        architecture, _, tag = rest.partition("/")
        require_parts(text, "openclip:ARCH/TAG", architecture, tag)
        return spec_from_mapping({"kind": kind, "source": tag, "architecture": architecture})
    if kind == "open_clip_checkpoint":
        path, _, architecture = rest.rpartition("@")
        require_parts(text, "file:PATH@ARCH", path, architecture)
        return spec_from_mapping({"kind": kind, "source": path, "architecture": architecture})
    if kind == "hf_hub_file":
        location, _, architecture = rest.rpartition("@")
        owner, _, remainder = location.partition("/")
        repo, _, file = remainder.partition("/")
        require_parts(text, "hfhub:OWNER/REPO/FILE@ARCH", owner, repo, file, architecture)
        return spec_from_mapping({"kind": kind, "source": f"{owner}/{repo}", "file": file,
                                  "architecture": architecture})
    return spec_from_mapping({"kind": kind, "source": rest})


def require_parts(text: str, form: str, *parts: str) -> None:
    if not all(parts):
        raise ModelSourceError(f"model spec {text!r} does not have the form {form}")


def check_architecture(architecture: str) -> None:
    """Raise naming close matches when `architecture` is not a registered open_clip model name."""
    register_model_configs()
    names = open_clip.list_models()
    if architecture not in names:
        close = difflib.get_close_matches(architecture, names, n=5)
        raise ModelSourceError(f"open_clip has no architecture {architecture!r}; close names: {close}. "
                               "See open_clip.list_models() or read_clip/model_configs/.")


def warn_if_gelu(architecture: str, origin: str) -> None:
    if architecture in GELU_NAMES_OF_QUICKGELU_WEIGHTS:
        log.warning("%s is loaded into %s, which uses GELU. Checkpoints fine-tuned from OpenAI's CLIP "
                    "(NegCLIP, FSC-CLIP, READ-CLIP) need QuickGELU: use %s-quickgelu.",
                    origin, architecture, architecture)


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an open_clip state dict from a file, unwrapping {"state_dict": ...} and `module.` prefixes.

    Torch files are read with `weights_only=True`, so a checkpoint that pickles Python objects
    other than tensors and plain containers is rejected instead of executed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        return strip_ddp_prefix(load_file(str(path)), path)
    if path.suffix not in TORCH_SUFFIXES:
        raise ModelSourceError(f"checkpoint {path} has suffix {path.suffix!r}; expected .safetensors or one of "
                               f"{list(TORCH_SUFFIXES)}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as error:
        raise ModelSourceError(
            f"checkpoint {path} cannot be read with torch.load(weights_only=True): {error}. "
            "Re-save its state_dict with torch.save, or convert it to .safetensors.") from error
    return strip_ddp_prefix(unwrap_state_dict(checkpoint, path), path)


def unwrap_state_dict(checkpoint: object, path: Path) -> dict[str, torch.Tensor]:
    """Return the tensors of a plain state dict or of open_clip's training checkpoint {"state_dict": ...}."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise ModelSourceError(f"checkpoint {path} contains a {type(checkpoint).__name__}, expected a state dict")
    not_tensors = sorted(str(k) for k, v in checkpoint.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ModelSourceError(f"checkpoint {path}: entries {not_tensors[:MAX_LISTED_KEYS]} are not tensors; "
                               "expected a state dict or {'state_dict': state dict}")
    return dict(checkpoint)


def strip_ddp_prefix(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Drop the `module.` that DistributedDataParallel adds, only when every key has it.

    open_clip 3.3's own `load_state_dict` strips seven characters from every key when the first key
    starts with "module". Checking every key instead leaves a partly prefixed file to fail as mismatched keys.
    """
    if state and all(key.startswith(DDP_PREFIX) for key in state):
        log.info("%s: removing the %r prefix of every key", path, DDP_PREFIX)
        return {key[len(DDP_PREFIX):]: tensor for key, tensor in state.items()}
    return state


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load `state` into `model`, raising CheckpointKeyError that lists missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}"
                        for key in set(expected) & set(state) if state[key].shape != expected[key].shape)
    problems = [f"{len(keys)} {what}: {keys[:MAX_LISTED_KEYS]}{' ...' if len(keys) > MAX_LISTED_KEYS else ''}"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("keys of another shape (checkpoint != model)", mis_shaped)) if keys]
    if problems:
        raise CheckpointKeyError(f"{origin} does not match the architecture: " + "; ".join(problems)
                                 + ". Check the architecture named in the spec.")
    model.load_state_dict(state, strict=True)


def hub_error(what: str, cache_dir: str | None, error: Exception) -> ModelSourceError:
    """Explain a failed hub download, saying whether offline mode kept it to the cache."""
    from huggingface_hub import is_offline_mode

    where = cache_dir or "the default Hugging Face cache"
    if is_offline_mode():
        hint = (f"HF_HUB_OFFLINE is set, so only {where} was searched. Download it once on a machine with "
                "network into that cache, or give a local path instead")
    else:
        hint = "Check the id, the network and, for a gated or private repository, your Hugging Face token"
    return ModelSourceError(f"failed to load {what}: {error}. {hint}.")


def load_open_clip(spec: ModelSpec, cache_dir: str | None) -> LoadedClip:
    check_architecture(spec.architecture)
    check_activation(spec.architecture, spec.source)
    tags = open_clip.list_pretrained_tags_by_model(spec.architecture)
    if spec.source not in tags:
        raise ModelSourceError(f"open_clip has no pretrained tag {spec.source!r} for {spec.architecture}; "
                               f"its tags: {tags}. For a local file use the file:PATH@ARCH form.")
    try:
        return create_clip(spec.architecture, pretrained=spec.source, cache_dir=cache_dir)
    except (OSError, RuntimeError) as error:
        raise hub_error(f"open_clip weights {spec.architecture}/{spec.source}", cache_dir, error) from error


def load_checkpoint_file(path: str | Path, architecture: str) -> LoadedClip:
    """Build `architecture` and load a local open_clip checkpoint into it with strict key matching."""
    check_architecture(architecture)
    warn_if_gelu(architecture, str(path))
    state = read_checkpoint(path)
    loaded = create_clip(architecture)
    load_state_strict(loaded.model, state, f"checkpoint {path}")
    return loaded


def load_hf_hub_file(spec: ModelSpec, cache_dir: str | None) -> LoadedClip:
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id=spec.source, filename=spec.file, revision=spec.revision, cache_dir=cache_dir)
    except OSError as error:
        raise hub_error(f"file {spec.file} of hub repository {spec.source}", cache_dir, error) from error
    return load_checkpoint_file(path, spec.architecture)


def resolve_hf_location(source: str) -> str:
    """Return a local CLIPModel folder as an absolute path, or a hub id unchanged."""
    local = Path(source).expanduser()
    if local.is_dir():
        return str(local.resolve())
    if source.startswith((".", "/", "~")) or not HUB_ID.match(source):
        raise FileNotFoundError(f"Hugging Face model folder {source} not found, and it is not a hub id (owner/name)")
    return source


def load_hf_clip(spec: ModelSpec, cache_dir: str | None) -> LoadedClip:
    """Load a Hugging Face CLIPModel and convert its weights into the matching open_clip model."""
    from transformers import CLIPModel

    from read_clip.models.hf_convert import open_clip_state_from_hf

    location = resolve_hf_location(spec.source)
    try:
        hf_model, info = CLIPModel.from_pretrained(location, cache_dir=cache_dir, revision=spec.revision,
                                                   dtype=torch.float32, output_loading_info=True)
    except OSError as error:
        raise hub_error(f"Hugging Face CLIPModel {spec.source} (no local folder has that name)", cache_dir, error) from error
    # from_pretrained fills absent weights with random values and only warns; here that is an error.
    problems = {key: sorted(map(str, info[key]))
                for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs") if info.get(key)}
    if problems:
        raise CheckpointKeyError(f"Hugging Face CLIPModel {spec.source} does not match its config: {problems}")

    architecture, state = open_clip_state_from_hf(hf_model, spec.architecture)
    # NOTE: images are then preprocessed by open_clip's transform for the architecture (bicubic
    # resize, centre crop, CLIP normalisation); transformers' CLIPImageProcessor may round differently.
    loaded = create_clip(architecture)
    load_state_strict(loaded.model, state, f"Hugging Face CLIPModel {spec.source} (as {architecture})")
    return loaded


def load_model(spec: ModelSpec, cache_dir: str | None = None, device: str | torch.device = "cpu") -> LoadedClip:
    """Build the open_clip model a spec names, in eval mode on `device`.

    `cache_dir` is where open_clip and Hugging Face keep downloads (their default caches when None).
    """
    if spec.kind == "open_clip":
        loaded = load_open_clip(spec, cache_dir)
    elif spec.kind == "open_clip_checkpoint":
        loaded = load_checkpoint_file(spec.source, spec.architecture)
    elif spec.kind == "hf_hub_file":
        loaded = load_hf_hub_file(spec, cache_dir)
    elif spec.kind == "hf_clip":
        loaded = load_hf_clip(spec, cache_dir)
    else:
        loaded = load_model_dir(spec.source)
    loaded.model.to(device).eval()
    log.info("loaded %s (%s) as open_clip %s", spec.label(), spec.kind, loaded.architecture)
    return loaded


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True,
                        help="Model spec: a JSON object or a shorthand (openclip:ARCH/TAG, file:PATH@ARCH, "
                             "hf:ID_OR_DIR, hfhub:OWNER/REPO/FILE@ARCH, dir:PATH).")
    parser.add_argument("--cache-dir", default=None, help="Folder where downloaded weights are kept.")
    parser.add_argument("--out", required=True, help="Model directory to write.")


def main(args: argparse.Namespace) -> int:
    spec = parse_spec(args.spec)
    loaded = load_model(spec, cache_dir=args.cache_dir)
    save_model_dir(loaded.model, loaded.architecture, args.out, extra={"source": spec.to_dict()})
    log.info("saved %s as %s to %s", spec.label(), loaded.architecture, args.out)
    return 0
