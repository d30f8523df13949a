"""Hard negatives and paraphrases of the training captions, written as Parquet shards.

The two schemas below are the contract between the caption stage and the trainer. Every shard is
written with them, including an empty shard, so readers can concatenate shards without casting.

Negatives, one row per training caption:
    image_id int64       COCO id of the caption's image.
    caption_id int64     Karpathy `sentid` of the caption.
    caption string       The caption as stored in the Karpathy file, stripped.
    negatives list<str>  Pool of distinct hard negatives (at least one); the trainer samples
                         `negatives_per_caption` of them per step, with replacement when the
                         pool is smaller.
    fallback bool        True when no swap was possible, so the pool contains captions of
                         other training images instead of swaps.

Paraphrases, one row per (image, caption):
    image_id int64, caption_id int64, text string, source string ("sibling": a human caption of
    the image; "generated": written by a paraphrase generator for the caption `caption_id`).
    The trainer draws an anchor's paraphrase from the rows of its image whose text differs from
    the anchor string.

`check_settings` validates the JSON settings that the caption and decoder-target commands take.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from read_clip.config import ConfigError

NEGATIVES_SCHEMA = pa.schema([
    pa.field("image_id", pa.int64(), nullable=False),
    pa.field("caption_id", pa.int64(), nullable=False),
    pa.field("caption", pa.string(), nullable=False),
    pa.field("negatives", pa.list_(pa.string()), nullable=False),
    pa.field("fallback", pa.bool_(), nullable=False),
])

PARAPHRASES_SCHEMA = pa.schema([
    pa.field("image_id", pa.int64(), nullable=False),
    pa.field("caption_id", pa.int64(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
])

PARAPHRASE_SOURCES = ("sibling", "generated")


def check_settings(settings: dict, types: dict[str, tuple[type, ...]], positive: Sequence[str],
                   command: str) -> dict:
    """Raise ConfigError unless `settings` has exactly the keys of `types`, each of its type."""
    missing = sorted(set(types) - set(settings))
    unknown = sorted(set(settings) - set(types))
    if missing or unknown:
        raise ConfigError(
            f"{command} --settings: missing keys {missing}, unknown keys {unknown}; "
            f"expected exactly {list(types)}")
    for key, accepted in types.items():
        value = settings[key]
        # bool is a subclass of int, but true/false is never a valid count or seed.
        if isinstance(value, bool) or not isinstance(value, accepted):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in accepted)
            raise ConfigError(f"{command} --settings: {key} must be {names}, got {value!r}")
    for key in positive:
        if settings[key] is not None and settings[key] < 1:
            raise ConfigError(f"{command} --settings: {key} must be at least 1, got {settings[key]}")
    splits = settings.get("train_splits")
    if splits is not None and (not splits or not all(isinstance(split, str) for split in splits)):
        raise ConfigError(f"{command} --settings: train_splits must be a non-empty list of split "
                          f"names, got {splits!r}")
    return settings
