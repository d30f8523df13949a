"""The `score-retrieval` command: COCO Karpathy test retrieval, a check that fine-tuning did not forget.

The Karpathy test split has 5,000 images with 5 to 7 captions each. Every image and every caption is
embedded once, in batches, and Recall@K is reported in percent:

    image -> text   an image is a hit at K when any of its captions is among the K best-scoring texts
    text -> image   a caption is a hit at K when its own image is among the K best-scoring images

A query's rank is the number of candidates that score strictly higher than its best correct
candidate, so a tie counts in the query's favour.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from read_clip.benchmarks.embed import ImageFiles, check_files_exist, default_device, embed_images
from read_clip.benchmarks.run import embed_texts
from read_clip.data.karpathy import SPLITS, load_images
from read_clip.io import package_versions, write_json

log = logging.getLogger(__name__)

RECALL_AT = (1, 5, 10)
# Query rows scored per step: 1,024 x 25,000 float32 scores are about 100 MB.
QUERY_CHUNK = 1024


@dataclass(frozen=True)
class RetrievalSet:
    """Images of one Karpathy split and all their captions, captions grouped by image in image order."""

    image_paths: list[str]  # relative to the folder holding dataset_coco.json
    texts: list[str]
    text_image: list[int]  # row in `image_paths` of each text's image


def retrieval_set(karpathy: str | Path, split: str) -> RetrievalSet:
    """Read the images of `split` and their captions from a Karpathy `dataset_coco.json`."""
    images = [image for image in load_images(karpathy) if image.split == split]
    if not images:
        raise ValueError(f"{karpathy}: no images in split {split!r}")
    texts, text_image = [], []
    for row, image in enumerate(images):
        texts.extend(caption.text for caption in image.captions)
        text_image.extend([row] * len(image.captions))
    return RetrievalSet([image.path for image in images], texts, text_image)


def image_to_text_ranks(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                        text_image: torch.Tensor) -> torch.Tensor:
    """Rank of each image's best caption among all texts: int64 (N_images,), 0 = first.

    Embeddings are float32 rows, L2-normalised: images (N_images, D), texts (N_texts, D).
    `text_image` is int64 (N_texts,), the image row of each text.
    """
    ranks = []
    for start in range(0, image_embeddings.shape[0], QUERY_CHUNK):
        scores = image_embeddings[start:start + QUERY_CHUNK] @ text_embeddings.T  # (chunk, N_texts)
        rows = torch.arange(start, start + scores.shape[0]).unsqueeze(1)
        is_caption = text_image.unsqueeze(0) == rows
        best_caption = scores.masked_fill(~is_caption, float("-inf")).max(dim=1).values
        ranks.append((scores > best_caption.unsqueeze(1)).sum(dim=1))
    return torch.cat(ranks)


def text_to_image_ranks(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                        text_image: torch.Tensor) -> torch.Tensor:
    """Rank of each caption's own image among all images: int64 (N_texts,), 0 = first."""
    ranks = []
    for start in range(0, text_embeddings.shape[0], QUERY_CHUNK):
        scores = text_embeddings[start:start + QUERY_CHUNK] @ image_embeddings.T  # (chunk, N_images)
        own = scores.gather(1, text_image[start:start + QUERY_CHUNK].unsqueeze(1))
        ranks.append((scores > own).sum(dim=1))
    return torch.cat(ranks)


def recall_at(ranks: torch.Tensor, ks: Sequence[int] = RECALL_AT) -> dict[str, float]:
    """Percent of queries whose rank is below K, for each K."""
    return {f"R@{k}": 100.0 * (ranks < k).double().mean().item() for k in ks}


def retrieval_recalls(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                      text_image: Sequence[int], ks: Sequence[int] = RECALL_AT) -> dict[str, dict[str, float]]:
    """Recall@K in both directions from normalised embeddings (see the module docstring)."""
    index = torch.as_tensor(text_image, dtype=torch.long)
    if index.shape[0] != text_embeddings.shape[0]:
        raise ValueError(f"{index.shape[0]} image rows for {text_embeddings.shape[0]} texts")
    for what, embeddings in (("image", image_embeddings), ("text", text_embeddings)):
        # A NaN compares false with everything, which would rank every query first.
        if not torch.isfinite(embeddings).all():
            raise ValueError(f"the {what} embeddings contain NaN or infinite values; check the model's weights")
    return {
        "image_to_text": recall_at(image_to_text_ranks(image_embeddings, text_embeddings, index), ks),
        "text_to_image": recall_at(text_to_image_ranks(image_embeddings, text_embeddings, index), ks),
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="Model directory written by save_model_dir.")
    parser.add_argument("--karpathy", required=True, help="Karpathy dataset_coco.json.")
    parser.add_argument("--split", default="test", choices=SPLITS, help="Karpathy split to retrieve in (default: test).")
    parser.add_argument("--image-root", default=None,
                        help="Folder the Karpathy paths (val2014/...) are relative to (default: the JSON's folder).")
    parser.add_argument("--batch-size", type=int, required=True, help="Images or texts per forward pass.")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes that decode images.")
    parser.add_argument("--device", default=default_device(), help="Torch device (default: cuda when available, else cpu).")
    parser.add_argument("--out", required=True, help="JSON file to write.")


def main(args: argparse.Namespace) -> int:
    from read_clip.models.clip import load_model_dir

    data = retrieval_set(args.karpathy, args.split)
    root = Path(args.image_root) if args.image_root else Path(args.karpathy).parent
    files = [root / path for path in data.image_paths]
    check_files_exist(files, root, f"images of Karpathy split {args.split}")

    loaded = load_model_dir(args.model_dir, device=args.device)
    log.info("embedding %d images and %d captions of split %s with %s", len(files), len(data.texts),
             args.split, args.model_dir)
    image_embeddings = embed_images(loaded.model, ImageFiles(files, loaded.preprocess), args.batch_size,
                                    args.workers, args.device)
    text_embeddings = embed_texts(loaded.model, loaded.tokenizer, data.texts, args.batch_size, args.device)

    recalls = retrieval_recalls(image_embeddings, text_embeddings, data.text_image)
    all_recalls = [value for direction in recalls.values() for value in direction.values()]
    result = {"split": args.split, "images": len(files), "texts": len(data.texts), **recalls,
              "mean_recall": sum(all_recalls) / len(all_recalls), "model_dir": str(args.model_dir),
              "architecture": loaded.architecture, "karpathy": str(args.karpathy),
              "package_versions": package_versions()}
    write_json(args.out, result)
    log.info("%s retrieval: image->text %s, text->image %s", args.split, recalls["image_to_text"],
             recalls["text_to_image"])
    return 0
