"""The `check-data` command: check one benchmark's annotation files and, optionally, its images.

Prints a JSON report to stdout:
    {"benchmark", "items": total, "subsets": {name: count}, "files": [...], "absent": [...],
     "missing_images": count or null when no image root was given, "missing_examples": [...],
     "unchecked_image_sets": [sets the items read that no --image-root named]}
Exit status 1 when a file is invalid, no file is present or an image is missing; else 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from read_clip.benchmarks.embed import MAX_LISTED
from read_clip.benchmarks.images import missing_images
from read_clip.benchmarks.items import BenchmarkFormatError
from read_clip.benchmarks.loaders import BENCHMARKS, load_benchmark
from read_clip.config import parse_settings

log = logging.getLogger(__name__)


def parse_image_roots(values: list[str]) -> dict[str, str]:
    roots = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--image-root {value!r} must have the form SET=DIR")
        roots[name] = folder
    return roots


def check_data(benchmark: str, root: str, image_roots: dict[str, str],
               valse_datasets: dict[str, str] | None) -> dict:
    """Load the benchmark from `root` and return the report (raises on invalid or absent files)."""
    data = load_benchmark(benchmark, root, valse_datasets)
    report = {"benchmark": benchmark, "items": len(data.items), "subsets": data.subset_counts(),
              "files": data.files, "absent": data.absent,
              "missing_images": None, "missing_examples": [], "unchecked_image_sets": []}
    needed = sorted({item.image.image_set for item in data.items if item.image is not None})
    if image_roots:
        missing = missing_images(data.items, image_roots)
        report["missing_images"] = len(missing)
        report["missing_examples"] = missing[:MAX_LISTED]
        report["unchecked_image_sets"] = [s for s in needed if s not in image_roots]
    else:
        report["unchecked_image_sets"] = needed
    return report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=BENCHMARKS, help="Benchmark whose files to check.")
    parser.add_argument("--root", required=True, help="Folder holding the benchmark's annotation files.")
    parser.add_argument("--image-root", action="append", default=[], metavar="SET=DIR",
                        help="Folder of one image set; repeat for each set to check for missing images.")
    parser.add_argument("--valse-datasets", default=None,
                        help="JSON object mapping VALSE's dataset values to image sets (default: the upstream spellings).")


def main(args: argparse.Namespace) -> int:
    valse_datasets = None
    if args.valse_datasets is not None:
        valse_datasets = parse_settings(args.valse_datasets, what="--valse-datasets")
    try:
        report = check_data(args.benchmark, args.root, parse_image_roots(args.image_root), valse_datasets)
    except (BenchmarkFormatError, FileNotFoundError) as error:
        log.error("%s", error)
        return 1

    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if report["absent"]:
        log.warning("%d expected files are absent from %s: %s", len(report["absent"]), args.root, report["absent"])
    if report["missing_images"]:
        log.error("%d images are missing, first: %s (image roots: %s)",
                  report["missing_images"], report["missing_examples"], args.image_root)
        return 1
    return 0
