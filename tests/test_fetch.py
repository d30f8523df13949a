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


def tiny_t5(path):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=64, d_model=16, d_ff=32, num_heads=2, d_kv=8, num_layers=1,
                      num_decoder_layers=1, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                      tie_word_embeddings=False, feed_forward_proj="gated-gelu")
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    return model


def test_fetch_decoder_local(tmp_path):
    from read_clip.models.decoder import load_decoder_dir

    t5 = tiny_t5(tmp_path / "t5")
    out = tmp_path / "decoder"
    assert main(["fetch-decoder", "--source", str(tmp_path / "t5"), "--out", str(out)]) == 0
    loaded = load_decoder_dir(out)
    assert loaded.bridge is None

    encoder_states = torch.randn(2, 1, 16)
    decoder_inputs = torch.tensor([[0, 5, 7], [0, 9, 1]])
    with torch.no_grad():
        expected = t5(encoder_outputs=(encoder_states,), decoder_input_ids=decoder_inputs).logits
        actual = loaded.decoder.eval()(encoder_states, decoder_inputs)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def test_fetch_decoder_missing_offline(tmp_path):
    with pytest.raises(OSError):
        main(["fetch-decoder", "--source", "google/t5-v1_1-large", "--cache-dir", str(tmp_path),
              "--out", str(tmp_path / "decoder")])
