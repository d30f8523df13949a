"""The `report-leakage` command: benchmark images that are also training images, by COCO id.

COCO 2017 reuses the images (and ids) of COCO 2014, so SugarCrepe, SugarCrepe++ and WhatsUp's
COCO-QA (val2017) and several VALSE pieces (COCO 2014/2017) can show the model an image it was
fine-tuned on. This command counts that overlap per benchmark subset and drops nothing.

NOTE: only images read from a COCO folder are compared. Visual Genome (CREPE, WhatsUp VG-QA),
Visual7W and VisDial also contain COCO photos, but under their own ids. Mapping those ids needs
Visual Genome's image metadata, which the pipeline does not download.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections import defaultdict
from pathlib import Path

from read_clip.benchmarks.loaders import benchmark_folder, load_benchmark
from read_clip.config import parse_settings
from read_clip.data.karpathy import load_images, training_images
from read_clip.io import write_json, write_text

log = logging.getLogger(__name__)

SETTINGS = ("seed", "train_splits", "max_train_images", "benchmarks", "image_roots", "valse_datasets")
# COCO file names end in the zero-padded image id: 000000085329.jpg, COCO_val2014_000000085329.jpg.
COCO_ID = re.compile(r"(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--karpathy", required=True, type=Path, help="dataset_coco.json (Karpathy splits).")
    parser.add_argument("--data-root", required=True, type=Path, help="Data root holding the benchmark folders.")
    parser.add_argument("--settings", required=True,
                        help='JSON {"seed", "train_splits", "max_train_images", "benchmarks", '
                             '"image_roots", "valse_datasets"} (the data selection and the eval section).')
    parser.add_argument("--out-json", required=True, type=Path, help="Output report, JSON.")
    parser.add_argument("--out-markdown", required=True, type=Path, help="Output report, Markdown table.")


def main(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings)
    missing = [key for key in SETTINGS if key not in settings]
    if missing:
        raise ValueError(f"--settings lacks {missing}; it needs {list(SETTINGS)}")
    report = leakage_report(args.karpathy, args.data_root, settings)
    write_json(args.out_json, report)
    write_text(args.out_markdown, render_markdown(report))
    return 0


def coco_image_sets(image_roots: dict[str, str]) -> set[str]:
    """Image sets whose folder is inside `coco/`, so their file names carry COCO ids."""
    return {name for name, folder in image_roots.items() if folder.strip("/").split("/")[0] == "coco"}


def coco_id(path: str) -> int:
    match = COCO_ID.search(path)
    if match is None:
        raise ValueError(f"cannot read a COCO image id from {path!r}; expected a name ending in digits and .jpg")
    return int(match.group(1))


def leakage_report(karpathy: Path, data_root: Path, settings: dict) -> dict:
    """Overlap between the training selection and each benchmark subset's COCO images."""
    split_of = {image.image_id: image.split for image in load_images(karpathy)}
    training = {image.image_id for image in training_images(
        karpathy, settings["train_splits"], settings["max_train_images"], settings["seed"])}
    coco_sets = coco_image_sets(settings["image_roots"])

    benchmarks = {}
    for name in settings["benchmarks"]:
        data = load_benchmark(name, benchmark_folder(data_root, name), settings["valse_datasets"])
        if data.absent:
            log.warning("%s: annotation files absent from %s: %s", name, data_root / name, data.absent)
        benchmarks[name] = _subset_overlap(data.items, coco_sets, training, split_of)
        log.info("%s: %d of %d items use a training image", name,
                 sum(s["items_with_training_image"] for s in benchmarks[name].values()),
                 sum(s["items"] for s in benchmarks[name].values()))
    return {
        "training": {"images": len(training), "splits": settings["train_splits"],
                     "max_train_images": settings["max_train_images"]},
        "compared_image_sets": sorted(coco_sets),
        "benchmarks": benchmarks,
    }


def _subset_overlap(items, coco_sets: set[str], training: set[int], split_of: dict[int, str]) -> dict:
    """Per subset: items, COCO images and how many of them are training images (by Karpathy split)."""
    grouped = defaultdict(list)
    for item in items:
        grouped[item.subset].append(item)

    subsets = {}
    for subset, subset_items in grouped.items():
        ids_per_item = [coco_id(item.image.path) for item in subset_items
                        if item.image is not None and item.image.image_set in coco_sets]
        images = set(ids_per_item)
        leaked = images & training
        by_split = defaultdict(int)
        for image_id in leaked:
            by_split[split_of.get(image_id, "unknown")] += 1
        subsets[subset] = {
            "items": len(subset_items),
            "items_with_coco_image": len(ids_per_item),
            "coco_images": len(images),
            "coco_images_in_training": len(leaked),
            "items_with_training_image": sum(1 for image_id in ids_per_item if image_id in training),
            "training_images_by_split": dict(sorted(by_split.items())),
        }
    return subsets


def render_markdown(report: dict) -> str:
    """One table row per benchmark subset, for the README and for reading by eye."""
    training = report["training"]
    lines = [
        "# Benchmark images that are also training images",
        "",
        f"Training selection: {training['images']:,} COCO images (Karpathy splits "
        f"{', '.join(training['splits'])}). Compared by COCO id over the image sets "
        f"{', '.join(report['compared_image_sets'])}; nothing is dropped.",
        "",
        "| benchmark | subset | items | items with a COCO image | COCO images | of them training images | items with a training image |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for benchmark, subsets in report["benchmarks"].items():
        for subset, row in subsets.items():
            lines.append(
                f"| {benchmark} | {subset} | {row['items']:,} | {row['items_with_coco_image']:,} | "
                f"{row['coco_images']:,} | {row['coco_images_in_training']:,} | {row['items_with_training_image']:,} |")
    return "\n".join(lines) + "\n"
