"""Decoder targets: the trained tokenizer, truncation, the targets file and local HF tokenizers."""

import json

import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from read_clip import cli
from read_clip.config import ConfigError
from read_clip.targets import TARGETS_SCHEMA, encode_targets, load_tokenizer, train_tokenizer

CAPTIONS = {
    201: ["A man riding a horse on a beach.", "A horse and its rider near the water's edge."],
    202: ["Two dogs playing with a red ball in the park.", "A dog chases a ball."],
    203: ["A small red circle to the left of a large blue square."],
}
TEXTS = [text for captions in CAPTIONS.values() for text in captions]


def write_karpathy(path):
    images, sentence_id = [], 0
    for image_id, captions in CAPTIONS.items():
        sentences = []
        for text in captions:
            sentences.append({"raw": text, "sentid": sentence_id})
            sentence_id += 1
        images.append({"filepath": "train2014", "filename": f"{image_id}.jpg", "cocoid": image_id,
                       "split": "train", "sentences": sentences})
    path.write_text(json.dumps({"images": images}), encoding="utf-8")
    return path


def run_targets(tmp_path, **overrides):
    settings = {"seed": 2025, "train_splits": ["train"], "max_train_images": None,
                "tokenizer": "train", "vocab_size": 120, "max_target_tokens": 12, **overrides}
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    code = cli.main(["make-decoder-targets", "--karpathy", str(karpathy),
                     "--settings", json.dumps(settings), "--out-tokenizer", str(tmp_path / "tokenizer"),
                     "--out-targets", str(tmp_path / "targets.parquet")])
    assert code == 0
    return pq.read_table(tmp_path / "targets.parquet"), tmp_path / "tokenizer"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS * 20, vocab_size=120)


def test_trained_round_trip(tokenizer):
    ids = tokenizer(TEXTS[1], add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == TEXTS[1]


def test_trained_special_ids(tokenizer):
    assert tokenizer.pad_token_id == 0
    assert tokenizer.eos_token_id == 1
    assert tokenizer.unk_token_id == 2


def test_trained_appends_eos(tokenizer):
    assert tokenizer(TEXTS[0])["input_ids"][-1] == 1


def test_trained_vocab_size(tokenizer):
    assert len(tokenizer) == 120


def test_trained_deterministic(tokenizer):
    again = train_tokenizer(TEXTS * 20, vocab_size=120)
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()


def test_targets_end_with_eos(tokenizer):
    targets = encode_targets(tokenizer, TEXTS, max_tokens=77)
    assert all(ids[-1] == 1 for ids in targets)
    assert targets[0] == tokenizer(TEXTS[0])["input_ids"]


def test_targets_truncated(tokenizer):
    full = encode_targets(tokenizer, [TEXTS[4]], max_tokens=77)[0]
    short = encode_targets(tokenizer, [TEXTS[4]], max_tokens=5)[0]
    assert len(full) > 5
    assert short == full[:4] + [1]


def test_targets_reject_short_cap(tokenizer):
    with pytest.raises(ValueError, match="at least 2"):
        encode_targets(tokenizer, TEXTS, max_tokens=1)


def test_targets_file(tmp_path):
    table, _ = run_targets(tmp_path)
    assert table.schema.equals(TARGETS_SCHEMA)
    assert table.num_rows == len(TEXTS)
    assert table["caption_id"].to_pylist() == list(range(len(TEXTS)))
    assert table["image_id"].to_pylist() == [201, 201, 202, 202, 203]
    assert max(len(ids) for ids in table["input_ids"].to_pylist()) <= 12
    assert all(ids[-1] == 1 for ids in table["input_ids"].to_pylist())


def test_saved_tokenizer_reloads(tmp_path):
    table, directory = run_targets(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(directory)
    ids = table["input_ids"].to_pylist()[0]
    assert reloaded.pad_token_id == 0
    assert reloaded.decode(ids, skip_special_tokens=True) == TEXTS[0]


def local_word_tokenizer(directory):
    """Save a small word-level tokenizer whose eos id is 3, standing in for a hub tokenizer."""
    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}
    for text in TEXTS:
        for word in text.replace(".", " .").replace("'", " ' ").split():
            vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]",
                                        unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]")
    tokenizer.save_pretrained(directory)
    return tokenizer


def test_local_hf_tokenizer(tmp_path):
    local_word_tokenizer(tmp_path / "local")
    table, directory = run_targets(tmp_path, tokenizer=str(tmp_path / "local"))
    first = table["input_ids"].to_pylist()[0]
    assert first[-1] == 3
    assert AutoTokenizer.from_pretrained(directory).decode(first[:-1]) == "A man riding a horse on a beach ."


def test_tokenizer_without_eos(tmp_path):
    backend = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1}, unk_token="[UNK]"))
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]",
                            unk_token="[UNK]").save_pretrained(tmp_path / "no_eos")
    with pytest.raises(ValueError, match="no eos token"):
        load_tokenizer(str(tmp_path / "no_eos"))


def test_missing_tokenizer_offline(tmp_path):
    with pytest.raises(OSError, match="could not be loaded"):
        load_tokenizer(str(tmp_path / "absent"))


def test_settings_unknown_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown keys"):
        run_targets(tmp_path, vocab=100)
