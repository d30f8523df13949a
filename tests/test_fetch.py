"""fetch-clip: pretrained weights become a model directory that loads to the same embeddings."""

import pytest
import torch

from read_clip.cli import main
from read_clip.models.clip import create_clip, load_model_dir
from read_clip.models.fetch_clip import check_activation


def test_fetch_local_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = create_clip("readclip-tiny")
    checkpoint = tmp_path / "tiny.pt"
    torch.save(source.model.state_dict(), checkpoint)

    out = tmp_path / "clip"
    assert main(["fetch-clip", "--architecture", "readclip-tiny", "--pretrained", str(checkpoint),
                 "--out", str(out)]) == 0

    loaded = load_model_dir(out)
    tokens = source.tokenizer(["a small red circle above a blue square"])
    source.model.eval()
    with torch.no_grad():
        expected = source.model.encode_text(tokens)
        actual = loaded.model.encode_text(tokens)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def test_gelu_name_with_openai_rejected():
    with pytest.raises(ValueError, match="ViT-B-32-quickgelu"):
        check_activation("ViT-B-32", "openai")


def test_quickgelu_name_accepted():
    check_activation("ViT-B-32-quickgelu", "openai")
