"""`read-clip make-demo-world`: write the shapes world in the upstream data layouts.

Layout under --out (every image a JPEG at quality 95):
  coco/dataset_coco.json            Karpathy split: train (train2014/), 100 val and 100 test (val2014/)
  sugarcrepe/<subset>.json          7 subsets; images coco/val2017/
  sugarcrepe_pp/<subset>.json       5 subsets; images coco/val2017/
  whatsup/<file>.json               2 controlled + 4 QA files; images whatsup/..., coco/val2017/
  valse/<piece>.json                11 pieces; images visual7w/, swig/, coco/, visdial/
  crepe/prod_hard_negatives/<type>/prod_vg_hard_negs_<type>_complexity_<k>.csv; images visual_genome/VG_100K/
  world.json                        the settings, package versions and per-file item counts

The world is built in a temporary sibling folder and renamed onto --out at the end, so --out is
either the previous world or the new one, never a mix. The same settings give byte-identical files
with the same Pillow build.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL

from read_clip.config import ConfigError, parse_settings
from read_clip.demo.crepe import CREPE_TYPES, build_crepe, crepe_file
from read_clip.demo.items import (
    BENCHMARK_ID_START,
    SUGARCREPE_PP_SUBSETS,
    SUGARCREPE_SUBSETS,
    WHATSUP_CONTROLLED,
    WHATSUP_QA,
    Item,
    ItemFactory,
    TrainingExample,
    build_items,
    controlled_item,
    qa_item,
    sugarcrepe_item,
    sugarcrepe_pp_item,
    training_examples,
)
from read_clip.demo.valse import VALSE_PIECES, build_valse
from read_clip.demo.world import encode_jpeg
from read_clip.io import write_json, write_text

log = logging.getLogger(__name__)

# Minimum of each setting: the keys of the config's `demo` section plus `seed`.
SETTING_MINIMUMS = {"seed": 0, "train_images": 1, "items_per_subset": 1, "image_size": 32}
# Larger images gain nothing for a 64-pixel model and cost time and disk with the square.
MAX_IMAGE_SIZE = 1024
EVAL_IMAGES = 100  # Karpathy "val" and "test" images each


@dataclass(frozen=True)
class WorldSettings:
    seed: int
    train_images: int
    items_per_subset: int
    image_size: int


@dataclass
class World:
    """Everything to write: training examples and, per annotation file, its items."""

    settings: WorldSettings
    training: list[TrainingExample]
    benchmarks: dict[str, list[Item]] = field(default_factory=dict)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", required=True,
                        help='JSON object {"seed", "train_images", "items_per_subset", "image_size"} '
                             "(the config's demo section plus the seed); image_size in pixels.")
    parser.add_argument("--out", required=True, type=Path,
                        help="Folder to write the world to; an existing one is replaced whole.")


def main(args: argparse.Namespace) -> int:
    settings = parse_world_settings(args.settings)
    started = time.perf_counter()
    log.info("building the shapes world: %s", settings)
    world = build_world(settings)
    write_world(world, args.out)
    log.info("wrote the shapes world to %s in %.1f s", args.out, time.perf_counter() - started)
    return 0


def parse_world_settings(text: str) -> WorldSettings:
    """Decode and check --settings; unknown, missing, non-integer or too small values are errors."""
    values = parse_settings(text)
    expected = set(SETTING_MINIMUMS)
    missing, unknown = sorted(expected - set(values)), sorted(set(values) - expected)
    if missing or unknown:
        problems = [f"{what} keys {keys}" for what, keys in (("missing", missing), ("unknown", unknown)) if keys]
        raise ConfigError(
            f"make-demo-world --settings: {' and '.join(problems)}; "
            f"expected exactly {sorted(expected)} (the config's demo section plus seed)")
    for key, minimum in SETTING_MINIMUMS.items():
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"make-demo-world --settings: {key} must be an integer >= {minimum}, got {value!r}")
    if values["image_size"] > MAX_IMAGE_SIZE:
        raise ConfigError(f"make-demo-world --settings: image_size must be at most {MAX_IMAGE_SIZE}, "
                          f"got {values['image_size']}")
    max_train_images = BENCHMARK_ID_START - 1 - 2 * EVAL_IMAGES
    if values["train_images"] > max_train_images:
        raise ConfigError(f"make-demo-world --settings: train_images must be at most {max_train_images} so that "
                          f"image ids stay below the benchmark ids, got {values['train_images']}")
    return WorldSettings(**{key: values[key] for key in SETTING_MINIMUMS})


# ---------------------------------------------------------------------------------------------
# Building.

def build_world(settings: WorldSettings) -> World:
    """Draw every training example and benchmark item; nothing is written."""
    seed, size, count = settings.seed, settings.image_size, settings.items_per_subset
    train = training_examples(seed, "train", settings.train_images, size, first_id=1)
    val = training_examples(seed, "val", EVAL_IMAGES, size, first_id=settings.train_images + 1)
    test = training_examples(seed, "test", EVAL_IMAGES, size, first_id=settings.train_images + EVAL_IMAGES + 1)
    world = World(settings, train + val + test)
    factory = ItemFactory(size, frozenset(example.scene.key() for example in world.training))

    for subset in SUGARCREPE_SUBSETS:
        world.benchmarks[f"sugarcrepe/{subset}.json"] = build_items(
            seed, f"sugarcrepe/{subset}", count, factory, sugarcrepe_item, subset)
    for subset in SUGARCREPE_PP_SUBSETS:
        world.benchmarks[f"sugarcrepe_pp/{subset}.json"] = build_items(
            seed, f"sugarcrepe_pp/{subset}", count, factory, sugarcrepe_pp_item, subset)
    for name in WHATSUP_CONTROLLED:
        world.benchmarks[f"whatsup/{name}"] = build_items(
            seed, f"whatsup/{name}", count, factory, controlled_item, name)
    for name in WHATSUP_QA:
        world.benchmarks[f"whatsup/{name}"] = build_items(
            seed, f"whatsup/{name}", count, factory, qa_item, name)
    for piece in VALSE_PIECES:
        world.benchmarks[f"valse/{piece}.json"] = build_valse(seed, piece, count, factory)
    for type_name in CREPE_TYPES:
        for complexity, items in build_crepe(seed, type_name, count, factory).items():
            world.benchmarks[f"crepe/{crepe_file(type_name, complexity)}"] = items
    return world


# ---------------------------------------------------------------------------------------------
# Writing.

def write_world(world: World, out: str | os.PathLike) -> None:
    """Write `world` into a temporary sibling of `out`, then put it in place of `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write_files(world, staging)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_files(world: World, root: Path) -> None:
    images: Counter = Counter()
    per_benchmark: Counter = Counter()
    for example in world.training:
        folder = "train2014" if example.split == "train" else "val2014"
        write_image(root / "coco" / folder / karpathy_file_name(example), example.scene)
        images[f"coco/{folder}"] += 1
    write_json(root / "coco" / "dataset_coco.json", karpathy_json(world.training))

    for relative, items in world.benchmarks.items():
        for item in items:
            write_image(root / item.image, item.scene)
            images[item.image.rsplit("/", 1)[0]] += 1
        write_annotations(root / relative, relative, items)
        log.debug("wrote %s: %d items", relative, len(items))
        per_benchmark[relative.split("/", 1)[0]] += len(items)
    log.info("items per benchmark: %s; images per folder: %s", dict(per_benchmark), dict(sorted(images.items())))

    manifest = {
        "settings": vars(world.settings),
        "versions": {"pillow": PIL.__version__, "numpy": np.__version__},
        "files": {"coco/dataset_coco.json": len(world.training),
                  **{relative: len(items) for relative, items in world.benchmarks.items()}},
        "images": dict(sorted(images.items())),
    }
    write_json(root / "world.json", manifest)


def write_image(path: Path, scene) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(scene))


def write_annotations(path: Path, relative: str, items: list[Item]) -> None:
    """Write one annotation file in the upstream format of its benchmark."""
    benchmark = relative.split("/", 1)[0]
    if benchmark == "sugarcrepe":
        write_json(path, {str(i): sugarcrepe_record(item) for i, item in enumerate(items)})
    elif benchmark == "sugarcrepe_pp":
        write_json(path, [{"id": str(i), **sugarcrepe_record(item, caption2=True)} for i, item in enumerate(items)])
    elif benchmark == "whatsup":
        write_json(path, [whatsup_record(path.name, item) for item in items])
    elif benchmark == "valse":
        write_json(path, {item.fields["key"]: item.fields["record"] for item in items})
    elif benchmark == "crepe":
        write_text(path, crepe_csv(items))
    else:
        raise ValueError(f"no writer for {relative}")


def karpathy_file_name(example: TrainingExample) -> str:
    if example.split == "train":
        return f"COCO_train2014_{example.image_id:012d}.jpg"
    return f"COCO_val2014_{example.image_id:012d}.jpg"


def karpathy_json(examples: list[TrainingExample]) -> dict:
    """Build the Karpathy `dataset_coco.json` structure; `tokens` are the lower-cased words of `raw`."""
    images, sentence_id = [], 0
    for index, example in enumerate(examples):
        sentences = []
        for text in example.captions:
            tokens = re.findall(r"[a-z0-9]+", text.lower())
            sentences.append({"tokens": tokens, "raw": text, "imgid": index, "sentid": sentence_id})
            sentence_id += 1
        images.append({
            "filepath": "train2014" if example.split == "train" else "val2014",
            "sentids": [s["sentid"] for s in sentences],
            "filename": karpathy_file_name(example),
            "imgid": index,
            "split": example.split,
            "sentences": sentences,
            "cocoid": example.image_id,
        })
    return {"images": images, "dataset": "coco"}


def sugarcrepe_record(item: Item, caption2: bool = False) -> dict:
    record = {"filename": item.image.rsplit("/", 1)[1], "caption": item.candidates[0].text}
    if caption2:
        record["caption2"] = item.candidates[1].text
    record["negative_caption"] = item.candidates[-1].text
    return record


def whatsup_record(file_name: str, item: Item):
    texts = [c.text for c in item.candidates]
    if file_name in WHATSUP_CONTROLLED:
        # The authors' files give repository paths under data/; loaders map data/ to the local root.
        return {"image_path": "data/" + item.image.split("/", 1)[1], "caption_options": texts}
    return [item.image_id, *texts]


def crepe_csv(items: list[Item]) -> str:
    """CSV with columns image_id, caption, hard_negs (a Python list literal), x, y, width, height."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image_id", "caption", "hard_negs", "x", "y", "width", "height"])
    for item in items:
        negatives = [c.text for c in item.candidates[1:]]
        writer.writerow([item.image_id, item.candidates[0].text, repr(negatives), *item.crop])
    return buffer.getvalue()
