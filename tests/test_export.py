"""Exports of a trained model: open_clip safetensors and a Hugging Face CLIPModel directory."""

import json

import pytest
import torch
from transformers import CLIPModel

from read_clip.models.clip import create_clip, load_model_dir, save_model_dir
from read_clip.train.export import export_hf_dir

ARCHITECTURE = "readclip-tiny"  # registered with quick_gelu: true


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random tiny CLIP (QuickGELU), written both ways, plus its in-memory embeddings."""
    out = tmp_path_factory.mktemp("export")
    torch.manual_seed(11)
    clip = create_clip(ARCHITECTURE)
    model = clip.model.eval()
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    tokens = clip.tokenizer(["a red circle", "two blue squares on grey", "a star"])
    with torch.no_grad():
        expected = {"image": model.encode_image(images), "text": model.encode_text(tokens)}
    save_model_dir(model, ARCHITECTURE, out)
    export_hf_dir(model, ARCHITECTURE, out / "hf", {"seed": 11})
    return {"out": out, "images": images, "tokens": tokens, "expected": expected}


def max_difference(a, b):
    return float((a - b).abs().max())


def test_open_clip_reload_equal(exported):
    model = load_model_dir(exported["out"]).model
    with torch.no_grad():
        image = model.encode_image(exported["images"])
        text = model.encode_text(exported["tokens"])
    assert max_difference(image, exported["expected"]["image"]) < 1e-5
    assert max_difference(text, exported["expected"]["text"]) < 1e-5


def test_hf_reload_equal(exported):
    model = CLIPModel.from_pretrained(exported["out"] / "hf").eval()
    with torch.no_grad():
        image = model.get_image_features(pixel_values=exported["images"]).pooler_output
        text = model.get_text_features(input_ids=exported["tokens"]).pooler_output
    assert max_difference(image, exported["expected"]["image"]) < 1e-4
    assert max_difference(text, exported["expected"]["text"]) < 1e-4


def test_hf_keeps_quick_gelu(exported):
    config = json.loads((exported["out"] / "hf" / "config.json").read_text())
    assert config["text_config"]["hidden_act"] == "quick_gelu"
    assert config["vision_config"]["hidden_act"] == "quick_gelu"


def test_hf_dir_has_run_files(exported):
    settings = json.loads((exported["out"] / "hf" / "read_clip_config.json").read_text())
    versions = json.loads((exported["out"] / "hf" / "versions.json").read_text())
    assert settings == {"architecture": ARCHITECTURE, "seed": 11}
    assert "torch" in versions


def test_hf_export_replaces_whole(exported, tmp_path):
    stale = tmp_path / "hf"
    stale.mkdir()
    (stale / "stale.txt").write_text("old")
    export_hf_dir(load_model_dir(exported["out"]).model, ARCHITECTURE, stale, {})
    assert not (stale / "stale.txt").exists()
    assert (stale / "model.safetensors").is_file()
