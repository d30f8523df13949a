"""Model specs: every checkpoint format loads into the same open_clip model, or fails naming why."""

import json

import pytest
import torch
from safetensors.torch import save_file

from read_clip.cli import main
from read_clip.models.clip import create_clip, load_model_dir, save_model_dir
from read_clip.models.hf_convert import (
    ConversionError, architecture_for_hf, hf_clip_from_open_clip, hf_config_from_open_clip,
    open_clip_config_from_hf,
)
from read_clip.models.sources import (
    CheckpointKeyError, ModelSourceError, ModelSpec, load_model, parse_spec,
)

TEXTS = ["a small red circle above a blue square", "two green triangles"]


class NotATensor:
    """A pickled Python object, which torch.load(weights_only=True) must reject."""


@pytest.fixture(scope="module")
def tiny():
    """The in-memory reference model and its float32 embeddings of fixed inputs."""
    torch.manual_seed(0)
    loaded = create_clip("readclip-tiny")
    loaded.model.eval()
    images = torch.randn(2, 3, 64, 64)
    tokens = loaded.tokenizer(TEXTS)
    with torch.no_grad():
        image_features = loaded.model.encode_image(images)
        text_features = loaded.model.encode_text(tokens)
    return {"loaded": loaded, "images": images, "tokens": tokens,
            "image_features": image_features, "text_features": text_features}


@pytest.fixture(scope="module")
def hf_dir(tiny, tmp_path_factory):
    """A Hugging Face CLIPModel folder holding the tiny model's weights, written by save_pretrained."""
    path = tmp_path_factory.mktemp("hf_clip")
    hf_clip_from_open_clip(tiny["loaded"].model, "readclip-tiny").save_pretrained(path)
    return path


def embeddings(loaded, tiny):
    with torch.no_grad():
        return loaded.model.encode_image(tiny["images"]), loaded.model.encode_text(tiny["tokens"])


def write_checkpoint(tiny, path, layout):
    state = {k: v.clone() for k, v in tiny["loaded"].model.state_dict().items()}
    if layout == "plain":
        torch.save(state, path)
    elif layout == "wrapped":  # open_clip's training checkpoint
        torch.save({"epoch": 5, "name": "run", "state_dict": state}, path)
    elif layout == "ddp":  # the same, saved from DistributedDataParallel
        torch.save({"epoch": 5, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))


@pytest.mark.parametrize("layout,suffix", [("plain", ".pt"), ("wrapped", ".pt"), ("ddp", ".pth"),
                                           ("safetensors", ".safetensors")])
def test_checkpoint_formats_load(tiny, tmp_path, layout, suffix):
    path = tmp_path / f"tiny{suffix}"
    write_checkpoint(tiny, path, layout)
    loaded = load_model(parse_spec(f"file:{path}@readclip-tiny"))
    image, text = embeddings(loaded, tiny)
    torch.testing.assert_close(image, tiny["image_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(text, tiny["text_features"], atol=1e-5, rtol=0)


def test_model_dir_loads(tiny, tmp_path):
    save_model_dir(tiny["loaded"].model, "readclip-tiny", tmp_path)
    loaded = load_model(parse_spec(f"dir:{tmp_path}"))
    image, text = embeddings(loaded, tiny)
    torch.testing.assert_close(image, tiny["image_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(text, tiny["text_features"], atol=1e-5, rtol=0)


def test_hf_model_matches_open_clip(tiny):
    # The converted CLIPModel run by transformers gives the open_clip model's features.
    hf_model = hf_clip_from_open_clip(tiny["loaded"].model, "readclip-tiny")
    with torch.no_grad():
        image = hf_model.get_image_features(pixel_values=tiny["images"]).pooler_output
        text = hf_model.get_text_features(input_ids=tiny["tokens"]).pooler_output
    torch.testing.assert_close(image, tiny["image_features"], atol=1e-4, rtol=0)
    torch.testing.assert_close(text, tiny["text_features"], atol=1e-4, rtol=0)


def test_hf_dir_loads(tiny, hf_dir):
    loaded = load_model(parse_spec(f"hf:{hf_dir}"))
    image, text = embeddings(loaded, tiny)
    assert loaded.architecture == "readclip-tiny"
    torch.testing.assert_close(image, tiny["image_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(text, tiny["text_features"], atol=1e-5, rtol=0)


def test_hf_dir_keeps_quickgelu(hf_dir):
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    assert config["text_config"]["hidden_act"] == "quick_gelu"
    assert config["vision_config"]["hidden_act"] == "quick_gelu"


def test_hf_gelu_config_not_quickgelu():
    config = hf_config_from_open_clip("readclip-tiny")
    config.text_config.hidden_act = config.vision_config.hidden_act = "gelu"
    assert open_clip_config_from_hf(config)["quick_gelu"] is False
    # readclip-tiny is QuickGELU, so no registered architecture matches the GELU variant.
    with pytest.raises(ConversionError, match="no registered open_clip architecture"):
        architecture_for_hf(config)


def test_hf_vit_b32_architecture():
    assert architecture_for_hf(hf_config_from_open_clip("ViT-B-32-quickgelu")) == "ViT-B-32-quickgelu"


def test_hf_wrong_architecture(hf_dir):
    spec = ModelSpec(kind="hf_clip", source=str(hf_dir), architecture="ViT-B-32-quickgelu")
    with pytest.raises(ConversionError, match="does not match the Hugging Face config"):
        load_model(spec)


def test_hf_hub_offline(tmp_path):
    with pytest.raises(ModelSourceError, match="HF_HUB_OFFLINE is set") as error:
        load_model(parse_spec("hf:example-owner/not-cached-clip"), cache_dir=str(tmp_path))
    assert "example-owner/not-cached-clip" in str(error.value)


def test_hf_hub_file_offline(tmp_path):
    spec = parse_spec("hfhub:example-owner/repo/ckpt.pt@readclip-tiny")
    with pytest.raises(ModelSourceError, match="HF_HUB_OFFLINE is set"):
        load_model(spec, cache_dir=str(tmp_path))


def test_hf_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(parse_spec(f"hf:{tmp_path / 'absent'}"))


def test_missing_key_listed(tiny, tmp_path):
    state = dict(tiny["loaded"].model.state_dict())
    del state["ln_final.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(CheckpointKeyError, match=r"1 missing keys: \['ln_final.weight'\]"):
        load_model(parse_spec(f"file:{tmp_path / 'partial.pt'}@readclip-tiny"))


def test_unexpected_key_listed(tiny, tmp_path):
    state = {**tiny["loaded"].model.state_dict(), "bridge.weight": torch.zeros(2, 2)}
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(CheckpointKeyError, match=r"1 unexpected keys: \['bridge.weight'\]"):
        load_model(parse_spec(f"file:{tmp_path / 'extra.pt'}@readclip-tiny"))


def test_partial_ddp_prefix_rejected(tiny, tmp_path):
    state = dict(tiny["loaded"].model.state_dict())
    state["module.logit_scale"] = state.pop("logit_scale")
    torch.save(state, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointKeyError) as error:
        load_model(parse_spec(f"file:{tmp_path / 'mixed.pt'}@readclip-tiny"))
    assert "missing keys: ['logit_scale']" in str(error.value)
    assert "unexpected keys: ['module.logit_scale']" in str(error.value)


def test_pickled_object_rejected(tiny, tmp_path):
    torch.save({"state_dict": dict(tiny["loaded"].model.state_dict()), "extra": NotATensor()}, tmp_path / "obj.pt")
    with pytest.raises(ModelSourceError, match="weights_only=True"):
        load_model(parse_spec(f"file:{tmp_path / 'obj.pt'}@readclip-tiny"))


def test_unknown_architecture():
    with pytest.raises(ModelSourceError, match="close names: .*readclip-tiny"):
        load_model(parse_spec("file:x.pt@readclip-tiyn"))


def test_gelu_openai_rejected():
    with pytest.raises(ValueError, match="ViT-B-32-quickgelu"):
        load_model(parse_spec("openclip:ViT-B-32/openai"))


def test_unknown_tag():
    with pytest.raises(ModelSourceError, match="no pretrained tag 'laion'"):
        load_model(parse_spec("openclip:readclip-tiny/laion"))


@pytest.mark.parametrize("text,expected", [
    ("openclip:ViT-B-32-quickgelu/openai",
     ModelSpec(kind="open_clip", source="openai", architecture="ViT-B-32-quickgelu")),
    ("file:runs/my@run/negclip.pth@ViT-B-32-quickgelu",
     ModelSpec(kind="open_clip_checkpoint", source="runs/my@run/negclip.pth", architecture="ViT-B-32-quickgelu")),
    ("hf:Mayfull/READ-CLIP", ModelSpec(kind="hf_clip", source="Mayfull/READ-CLIP")),
    ("hf:/models/read-clip", ModelSpec(kind="hf_clip", source="/models/read-clip")),
    ("hfhub:ytaek-oh/fsc-clip/coco_fsc-clip-ViT-B-32.pt@ViT-B-32-quickgelu",
     ModelSpec(kind="hf_hub_file", source="ytaek-oh/fsc-clip", file="coco_fsc-clip-ViT-B-32.pt",
               architecture="ViT-B-32-quickgelu")),
    ("dir:results/models/read_clip", ModelSpec(kind="model_dir", source="results/models/read_clip")),
    ('{"kind": "hf_clip", "source": "Mayfull/READ-CLIP", "revision": "main", "name": "read_clip_published"}',
     ModelSpec(kind="hf_clip", source="Mayfull/READ-CLIP", revision="main", name="read_clip_published")),
])
def test_parse_spec(text, expected):
    assert parse_spec(text) == expected


@pytest.mark.parametrize("text,message", [
    ("negclip.pt", "neither a JSON object nor a shorthand"),
    ("file:negclip.pt", "file:PATH@ARCH"),
    ("openclip:ViT-B-32-quickgelu", "openclip:ARCH/TAG"),
    ("hfhub:ytaek-oh/fsc-clip@ViT-B-32-quickgelu", "hfhub:OWNER/REPO/FILE@ARCH"),
    ('{"kind": "hf_clip", "source": "x", "path": "y"}', "unknown keys"),
    ('{"kind": "onnx", "source": "x"}', "kind 'onnx' is unknown"),
    ('{"kind": "open_clip_checkpoint", "source": "x.pt"}', "needs \\['architecture'\\]"),
])
def test_parse_spec_rejects(text, message):
    with pytest.raises(ModelSourceError, match=message):
        parse_spec(text)


def test_spec_labels():
    assert parse_spec("openclip:ViT-B-32-quickgelu/openai").label() == "ViT-B-32-quickgelu/openai"
    assert parse_spec('{"kind": "model_dir", "source": "d", "name": "mine"}').label() == "mine"


def test_fetch_model_command(tiny, tmp_path):
    path = tmp_path / "tiny.pt"
    write_checkpoint(tiny, path, "wrapped")
    out = tmp_path / "model"
    assert main(["fetch-model", "--spec", f"file:{path}@readclip-tiny", "--out", str(out)]) == 0

    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["architecture"] == "readclip-tiny"
    assert meta["source"] == {"kind": "open_clip_checkpoint", "source": str(path), "architecture": "readclip-tiny"}
    image, text = embeddings(load_model_dir(out), tiny)
    torch.testing.assert_close(image, tiny["image_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(text, tiny["text_features"], atol=1e-5, rtol=0)
