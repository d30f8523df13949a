"""`read-clip make-decoder-targets`: the tokenizer and token ids of the reconstruction targets.

The tokenizer is either a Hugging Face tokenizer (the recipe uses T5's SentencePiece vocabulary,
google/t5-v1_1-large) or one trained here on the selected training captions. Both are saved with
`save_pretrained`, so the trainer loads either with `AutoTokenizer.from_pretrained(DIR)`.

Targets hold one row per training caption: the caption's token ids with the end-of-sequence id
last, truncated to `max_target_tokens` (end-of-sequence kept), unpadded. The trainer pads with the
tokenizer's pad id and draws a random caption of the same image as the target.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from read_clip.captions import check_settings
from read_clip.config import parse_settings
from read_clip.data.karpathy import TrainingImage, training_images
from read_clip.io import write_parquet

logger = logging.getLogger(__name__)

TARGETS_SCHEMA = pa.schema([
    pa.field("image_id", pa.int64(), nullable=False),
    pa.field("caption_id", pa.int64(), nullable=False),
    pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
])

# T5's convention: pad id 0 is also the decoder start id, </s> (1) ends every target.
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
TRAIN_TOKENIZER = "train"

SETTINGS_TYPES: dict[str, tuple[type, ...]] = {
    "seed": (int,),
    "train_splits": (list,),
    "max_train_images": (int, type(None)),
    "tokenizer": (str,),
    "vocab_size": (int,),
    "max_target_tokens": (int,),
}
POSITIVE_KEYS = ("max_train_images", "vocab_size", "max_target_tokens")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--karpathy", required=True, help="Karpathy split file (dataset_coco.json).")
    parser.add_argument("--settings", required=True, help=(
        "JSON object with the keys " + ", ".join(SETTINGS_TYPES) + "."))
    parser.add_argument("--out-tokenizer", required=True,
                        help="Directory to write the tokenizer to (save_pretrained layout).")
    parser.add_argument("--out-targets", required=True, help="Targets Parquet file to write.")


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """Fit a cased BPE vocabulary of `vocab_size` on `texts`; return a PreTrainedTokenizerFast.

    Words are marked with a leading "▁" and punctuation is split off, as in T5's SentencePiece
    vocabulary, so decoding gives back single-spaced text exactly. Ids 0, 1, 2 are <pad>, </s>,
    <unk>, and encoding with special tokens appends </s>.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    # NOTE: BPE, not WordPiece: the WordPiece trainer of tokenizers 0.23.3 assigned different
    # vocabularies to the same captions from run to run, while BPE was identical across runs.
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    # NFKC as T5's SentencePiece model normalises; case is kept, as T5 keeps it.
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    eos_id = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", eos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>",
                                   eos_token="</s>", unk_token="<unk>")


def load_tokenizer(name: str):
    """Load a Hugging Face tokenizer by hub id or local directory; it must have eos and pad."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise OSError(
            f"tokenizer {name!r} could not be loaded ({error}). Pass a local directory, or "
            f"download it into the Hugging Face cache first (offline runs cannot reach the hub).") from error
    for attribute in ("eos_token_id", "pad_token_id"):
        if getattr(tokenizer, attribute) is None:
            raise ValueError(f"tokenizer {name!r} has no {attribute.removesuffix('_token_id')} token; "
                             f"decoder targets need both an end-of-sequence and a padding token.")
    return tokenizer


def encode_targets(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Tokenise `texts` without special tokens, truncate to max_tokens - 1 and append eos."""
    if max_tokens < 2:
        raise ValueError(f"max_target_tokens must be at least 2 (one token and eos), got {max_tokens}")
    if not texts:
        return []
    # The eos id is appended here rather than by the tokenizer, so tokenizers that add other
    # special tokens (or none) give the same layout: caption tokens, then eos.
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [ids[:max_tokens - 1] + [eos] for ids in encoded]


def targets_table(images: Sequence[TrainingImage], input_ids: Sequence[list[int]]) -> pa.Table:
    rows = [(image.image_id, caption.caption_id) for image in images for caption in image.captions]
    return pa.Table.from_pydict({
        "image_id": [image_id for image_id, _ in rows],
        "caption_id": [caption_id for _, caption_id in rows],
        "input_ids": list(input_ids),
    }, schema=TARGETS_SCHEMA)


def save_tokenizer(tokenizer, directory: str | os.PathLike) -> None:
    """Write `tokenizer` with save_pretrained into a temporary folder, then swap it into place."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        tokenizer.save_pretrained(temporary)
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def main(args: argparse.Namespace) -> int:
    settings = check_settings(parse_settings(args.settings), SETTINGS_TYPES, POSITIVE_KEYS,
                              "make-decoder-targets")
    images = training_images(args.karpathy, settings["train_splits"], settings["max_train_images"],
                             settings["seed"])
    texts = [caption.text for image in images for caption in image.captions]

    if settings["tokenizer"] == TRAIN_TOKENIZER:
        logger.info("training a BPE vocabulary of %d on %d captions", settings["vocab_size"], len(texts))
        tokenizer = train_tokenizer(texts, settings["vocab_size"])
    else:
        tokenizer = load_tokenizer(settings["tokenizer"])
    input_ids = encode_targets(tokenizer, texts, settings["max_target_tokens"])

    truncated = sum(len(ids) == settings["max_target_tokens"] for ids in input_ids)
    logger.info("%d targets of %d images, vocabulary %d, pad id %d, eos id %d, %d at the length cap",
                len(input_ids), len(images), len(tokenizer), tokenizer.pad_token_id,
                tokenizer.eos_token_id, truncated)
    save_tokenizer(tokenizer, args.out_tokenizer)
    write_parquet(args.out_targets, targets_table(images, input_ids))
    return 0
