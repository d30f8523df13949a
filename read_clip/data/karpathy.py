"""The Karpathy split of COCO (`dataset_coco.json`): the training images and their captions.

Every stage that needs the training set (caption shards, decoder targets, fine-tuning) selects it
through `training_images`, so they all see the same images in the same order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "restval", "val", "test")
IMAGE_KEYS = ("filepath", "filename", "cocoid", "split", "sentences")
SENTENCE_KEYS = ("raw", "sentid")


class KarpathyFormatError(ValueError):
    """A `dataset_coco.json` that does not have the Karpathy structure."""


@dataclass(frozen=True)
class Caption:
    """One human caption. `caption_id` is the Karpathy `sentid`, unique across the file."""

    caption_id: int
    text: str


@dataclass(frozen=True)
class TrainingImage:
    """One image with all its human captions. `path` is relative to the folder holding the JSON."""

    image_id: int
    path: str
    split: str
    captions: tuple[Caption, ...]


def load_images(path: str | Path) -> list[TrainingImage]:
    """Read every image of a Karpathy file, checking the fields the pipeline uses."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise KarpathyFormatError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise KarpathyFormatError(f"{path}: expected an object with an 'images' list (Karpathy format)")

    images = []
    for index, record in enumerate(data["images"]):
        missing = [key for key in IMAGE_KEYS if key not in record]
        if missing:
            raise KarpathyFormatError(
                f"{path}: images[{index}] lacks {missing}; every image needs {list(IMAGE_KEYS)}")
        if record["split"] not in SPLITS:
            raise KarpathyFormatError(
                f"{path}: images[{index}] (cocoid {record['cocoid']}) has split {record['split']!r}, "
                f"expected one of {list(SPLITS)}")
        captions = []
        for sentence in record["sentences"]:
            if any(key not in sentence for key in SENTENCE_KEYS):
                raise KarpathyFormatError(
                    f"{path}: a sentence of images[{index}] (cocoid {record['cocoid']}) lacks 'raw' or 'sentid'")
            captions.append(Caption(caption_id=int(sentence["sentid"]), text=sentence["raw"].strip()))
        if not captions:
            raise KarpathyFormatError(f"{path}: images[{index}] (cocoid {record['cocoid']}) has no sentences")
        images.append(TrainingImage(
            image_id=int(record["cocoid"]),
            path=f"{record['filepath']}/{record['filename']}",
            split=record["split"],
            captions=tuple(captions),
        ))
    return images


def training_images(path: str | Path, splits: list[str], max_images: int | None,
                    seed: int) -> list[TrainingImage]:
    """Select the training images: the given splits, capped by a seeded sample, sorted by COCO id."""
    selected = [image for image in load_images(path) if image.split in set(splits)]
    if not selected:
        raise KarpathyFormatError(f"{path}: no images in splits {splits}")
    if max_images is not None and len(selected) > max_images:
        selected = random.Random(seed).sample(selected, max_images)
    return sorted(selected, key=lambda image: image.image_id)
