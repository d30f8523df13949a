"""The `list-images` command: the images of one image set that the configured benchmarks read.

Each image set is embedded once per model and shared by every benchmark that reads it, so the
list is the union over benchmarks, sorted, each path once.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from read_clip.benchmarks.items import ImageRef, Item
from read_clip.benchmarks.loaders import benchmark_folder, image_sets_for, load_benchmark
from read_clip.config import parse_settings
from read_clip.io import write_text

log = logging.getLogger(__name__)


def list_images(image_set: str, data_root: str | Path, eval_settings: Mapping) -> list[str]:
    """Sorted unique paths, relative to the set's folder, of the set's images the benchmarks read."""
    paths: set[str] = set()
    for benchmark in eval_settings["benchmarks"]:
        if image_set not in image_sets_for(benchmark, eval_settings):
            continue
        data = load_benchmark(benchmark, benchmark_folder(data_root, benchmark), eval_settings["valse_datasets"])
        found = {item.image.path for item in data.items
                 if item.image is not None and item.image.image_set == image_set}
        log.info("%s reads %d images of set %s", benchmark, len(found), image_set)
        paths |= found
    return sorted(paths)


def resolve_image(ref: ImageRef, set_root: str | Path) -> Path | None:
    """Return the first existing file among the reference's paths under `set_root`, or None."""
    for relative in ref.candidates():
        path = Path(set_root) / relative
        if path.is_file():
            return path
    return None


def missing_images(items: Iterable[Item], set_roots: Mapping[str, str | Path]) -> list[str]:
    """Images of `items` whose set is in `set_roots` but whose file does not exist there.

    Each missing image is listed once, as "<set>/<relative path>".
    """
    missing: dict[str, None] = {}
    for item in items:
        ref = item.image
        if ref is None or ref.image_set not in set_roots:
            continue
        if resolve_image(ref, set_roots[ref.image_set]) is None:
            missing[f"{ref.image_set}/{ref.path}"] = None
    return list(missing)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-set", required=True, help="Image set name (a key of config eval.image_roots).")
    parser.add_argument("--data-root", required=True, help="Data root holding every benchmark folder (config data.root).")
    parser.add_argument("--settings", required=True, help="The config's eval section as JSON.")
    parser.add_argument("--out", required=True, help="Text file to write, one relative image path per line.")


def main(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings)
    if args.image_set not in settings["image_roots"]:
        raise ValueError(f"image set {args.image_set!r} is not in config eval.image_roots "
                         f"(known sets: {sorted(settings['image_roots'])})")
    paths = list_images(args.image_set, args.data_root, settings)
    write_text(args.out, "".join(f"{path}\n" for path in paths))
    log.info("wrote %d paths of image set %s to %s", len(paths), args.image_set, args.out)
    return 0
