"""`read-clip make-negatives`: hard negatives and sibling paraphrases of one caption shard.

Shard K of N contains the training images at positions i (in `training_images` order) with
i % N == K, so all captions of an image stay in one shard. Negatives depend only on the seed and
the caption id, never on N, because the no-swap fallback draws from the captions of all training
images, not only from the shard's.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import pyarrow as pa
from tqdm import tqdm

from read_clip.captions import NEGATIVES_SCHEMA, PARAPHRASES_SCHEMA, check_settings
from read_clip.captions.negatives import NegativePool, PoolSettings, ShardCaption, iter_pools, load_pipeline
from read_clip.config import parse_settings
from read_clip.data.karpathy import TrainingImage, training_images
from read_clip.io import write_parquet

logger = logging.getLogger(__name__)

# Settings key -> accepted types. `max_train_images` may be null (all images).
SETTINGS_TYPES: dict[str, tuple[type, ...]] = {
    "seed": (int,),
    "train_splits": (list,),
    "max_train_images": (int, type(None)),
    "negative_pool_size": (int,),
    "swap_tries": (int,),
    "spacy_model": (str,),
    "spacy_batch_size": (int,),
}
POSITIVE_KEYS = ("max_train_images", "negative_pool_size", "swap_tries", "spacy_batch_size")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--karpathy", required=True, help="Karpathy split file (dataset_coco.json).")
    parser.add_argument("--shard", type=int, required=True, help="Index K of this shard, 0 <= K < N.")
    parser.add_argument("--shards", type=int, required=True, help="Number of shards N.")
    parser.add_argument("--settings", required=True, help=(
        "JSON object with the keys " + ", ".join(SETTINGS_TYPES) + "."))
    parser.add_argument("--out-negatives", required=True, help="Negatives Parquet file to write.")
    parser.add_argument("--out-paraphrases", required=True, help="Paraphrases Parquet file to write.")


def check_shard(shard: int, shards: int) -> None:
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"invalid shard {shard} of {shards}: need shards >= 1 and 0 <= shard < shards")


def select_shard(images: Sequence[TrainingImage], shard: int, shards: int) -> list[TrainingImage]:
    """Return the images at positions i with i % shards == shard."""
    check_shard(shard, shards)
    return list(images[shard::shards])


def shard_captions(images: Sequence[TrainingImage]) -> list[ShardCaption]:
    return [ShardCaption(image.image_id, caption.caption_id, caption.text)
            for image in images for caption in image.captions]


def negatives_table(captions: Sequence[ShardCaption], pools: Sequence[NegativePool]) -> pa.Table:
    return pa.Table.from_pydict({
        "image_id": [caption.image_id for caption in captions],
        "caption_id": [caption.caption_id for caption in captions],
        "caption": [caption.text for caption in captions],
        "negatives": [list(pool.negatives) for pool in pools],
        "fallback": [pool.fallback for pool in pools],
    }, schema=NEGATIVES_SCHEMA)


def paraphrases_table(captions: Sequence[ShardCaption]) -> pa.Table:
    """Return one "sibling" row per caption: every human caption paraphrases its siblings."""
    return pa.Table.from_pydict({
        "image_id": [caption.image_id for caption in captions],
        "caption_id": [caption.caption_id for caption in captions],
        "text": [caption.text for caption in captions],
        "source": ["sibling"] * len(captions),
    }, schema=PARAPHRASES_SCHEMA)


def make_shard(karpathy: str, shard: int, shards: int, settings: dict) -> tuple[pa.Table, pa.Table]:
    """Build the negatives and paraphrases tables of one shard."""
    check_shard(shard, shards)
    images = training_images(karpathy, settings["train_splits"], settings["max_train_images"],
                             settings["seed"])
    shard_images = select_shard(images, shard, shards)
    captions = shard_captions(shard_images)
    logger.info("shard %d of %d: %d images, %d captions", shard, shards, len(shard_images),
                len(captions))

    pool_settings = PoolSettings(seed=settings["seed"], pool_size=settings["negative_pool_size"],
                                 swap_tries=settings["swap_tries"])
    # Fallback negatives come from the whole training set, so they do not depend on sharding.
    candidates = [(caption.image_id, caption.text) for caption in shard_captions(images)]
    pools: list[NegativePool] = []
    if captions:
        nlp = load_pipeline(settings["spacy_model"])
        progress = tqdm(iter_pools(nlp, captions, pool_settings, candidates,
                                   settings["spacy_batch_size"]),
                        total=len(captions), desc=f"negatives shard {shard}", unit="caption")
        pools = list(progress)

    fallbacks = sum(pool.fallback for pool in pools)
    logger.info("shard %d: %d captions, %d fallbacks (no swap possible)", shard, len(pools), fallbacks)
    return negatives_table(captions, pools), paraphrases_table(captions)


def main(args: argparse.Namespace) -> int:
    settings = check_settings(parse_settings(args.settings), SETTINGS_TYPES, POSITIVE_KEYS,
                              "make-negatives")
    negatives, paraphrases = make_shard(args.karpathy, args.shard, args.shards, settings)
    write_parquet(args.out_negatives, negatives)
    write_parquet(args.out_paraphrases, paraphrases)
    return 0
