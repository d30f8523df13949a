"""The `prepare-images` command: the training images decoded once into uint8 shards.

`prepare-images shard` takes one contiguous block of the training selection (Karpathy splits
and sample cap, sorted by COCO id, as every stage selects it) and writes

- `<shard>.npy`: uint8 array (N, S, S, 3), RGB, the images that decoded, in selection order;
- `<shard>.parquet`: one row per selected image: `image_id` (int64), `path` (string, relative to
  the folder of dataset_coco.json), `row` (int32, the image's row in the .npy, -1 if skipped),
  `error` (string, null unless the image could not be decoded).

Each image is converted to RGB (COCO has greyscale and CMYK JPEGs), its short side resized to S
with bicubic interpolation and centre-cropped to S x S: torchvision's Resize(S) and CenterCrop(S),
the geometric part of open_clip's evaluation transform. A corrupt image is skipped and listed.

`prepare-images report` gathers the shard indexes into the stage's report JSON.
"""

from __future__ import annotations

import argparse
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from read_clip.config import parse_settings
from read_clip.data.karpathy import TrainingImage, training_images
from read_clip.io import atomic_path, write_json, write_parquet

log = logging.getLogger(__name__)

SHARD_SETTINGS = ("seed", "train_splits", "max_train_images", "image_size")
INDEX_SCHEMA = pa.schema([
    ("image_id", pa.int64()),
    ("path", pa.string()),
    ("row", pa.int32()),
    ("error", pa.string()),
])
# Errors Pillow raises for a truncated, corrupt or unsupported image file.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="mode", required=True, metavar="MODE")
    shard = modes.add_parser("shard", help="Decode one shard of the training images.")
    shard.add_argument("--karpathy", required=True, type=Path, help="dataset_coco.json; images are read beside it.")
    shard.add_argument("--settings", required=True,
                       help='JSON {"seed", "train_splits", "max_train_images", "image_size"} (image side in px).')
    shard.add_argument("--shard", required=True, type=int, help="Index of this shard, from 0.")
    shard.add_argument("--shards", required=True, type=int, help="Number of shards.")
    shard.add_argument("--threads", type=int, default=1, help="Images decoded in parallel.")
    shard.add_argument("--out-images", required=True, type=Path, help="Output .npy of shape (N, S, S, 3).")
    shard.add_argument("--out-index", required=True, type=Path, help="Output Parquet index of the shard.")

    report = modes.add_parser("report", help="Summarise the shards into the stage report.")
    report.add_argument("--images", required=True, nargs="+", type=Path, help="The shard .npy files.")
    report.add_argument("--indexes", required=True, nargs="+", type=Path, help="The shard indexes, same order.")
    report.add_argument("--out", required=True, type=Path, help="Output report JSON.")


def main(args: argparse.Namespace) -> int:
    if args.mode == "shard":
        settings = parse_settings(args.settings)
        missing = [key for key in SHARD_SETTINGS if key not in settings]
        if missing:
            raise ValueError(f"--settings lacks {missing}; it needs {list(SHARD_SETTINGS)}")
        prepare_shard(args.karpathy, settings, args.shard, args.shards, args.threads,
                      args.out_images, args.out_index)
    else:
        write_json(args.out, summarize(args.images, args.indexes))
    return 0


def shard_bounds(count: int, shard: int, shards: int) -> tuple[int, int]:
    """[start, stop) of one of `shards` contiguous blocks of `count` items (sizes differ by 1 at most)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    return count * shard // shards, count * (shard + 1) // shards


def load_square_rgb(path: Path, size: int) -> np.ndarray:
    """Decode an image to RGB, resize its short side to `size` (bicubic), centre-crop: (size, size, 3) uint8."""
    from torchvision.transforms import CenterCrop, InterpolationMode, Resize

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    resized = Resize(size, interpolation=InterpolationMode.BICUBIC)(rgb)
    return np.asarray(CenterCrop(size)(resized), dtype=np.uint8)


def prepare_shard(karpathy: Path, settings: dict, shard: int, shards: int, threads: int,
                  out_images: Path, out_index: Path) -> None:
    """Decode one shard of the training selection and write its .npy and Parquet index."""
    selection = training_images(karpathy, settings["train_splits"], settings["max_train_images"], settings["seed"])
    start, stop = shard_bounds(len(selection), shard, shards)
    images = selection[start:stop]
    root = karpathy.parent
    size = int(settings["image_size"])
    _check_present(images, root)
    log.info("shard %d of %d: images %d..%d of %d, %d px", shard, shards, start, stop - 1, len(selection), size)

    pixels = np.empty((len(images), size, size, 3), dtype=np.uint8)
    rows, errors, decoded_count = [], [], 0
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        decoded = pool.map(lambda image: _decode(root / image.path, size), images)
        for image, (array, error) in tqdm(zip(images, decoded), total=len(images), unit="image",
                                         desc=f"shard {shard}", mininterval=30):
            if error is not None:
                log.warning("skipping image %d (%s): %s", image.image_id, image.path, error)
                rows.append(-1)
                errors.append(error)
                continue
            pixels[decoded_count] = array
            rows.append(decoded_count)
            errors.append(None)
            decoded_count += 1

    with atomic_path(out_images) as tmp, open(tmp, "wb") as handle:
        np.save(handle, pixels[:decoded_count])
    write_parquet(out_index, pa.table({
        "image_id": [image.image_id for image in images],
        "path": [image.path for image in images],
        "row": rows,
        "error": errors,
    }, schema=INDEX_SCHEMA))
    log.info("shard %d: %d images written, %d skipped as corrupt", shard, decoded_count, len(images) - decoded_count)


def _decode(path: Path, size: int) -> tuple[np.ndarray | None, str | None]:
    try:
        return load_square_rgb(path, size), None
    except DECODE_ERRORS as error:
        return None, f"{type(error).__name__}: {error}"


def _check_present(images: list[TrainingImage], root: Path) -> None:
    """Raise when listed images are missing: that means an incomplete download, not a bad image."""
    missing = [image.path for image in images if not (root / image.path).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(images)} training images of this shard are missing under {root}, "
            f"for example {missing[:3]}; the COCO image archives are not (fully) installed. "
            "Delete their install records under <data root>/downloads/installed/ and rerun.")


def summarize(image_files: list[Path], index_files: list[Path]) -> dict:
    """The stage report: counts per shard and overall, and every skipped image with its error."""
    if len(image_files) != len(index_files):
        raise ValueError(f"got {len(image_files)} image files but {len(index_files)} indexes; pass one of each per shard")
    shards, corrupt, side = [], [], None
    for images_path, index_path in zip(image_files, index_files):
        index = pq.read_table(index_path).to_pylist()
        array = np.load(images_path, mmap_mode="r")
        decoded = sum(1 for row in index if row["row"] >= 0)
        if array.shape[0] != decoded:
            raise ValueError(f"{images_path} has {array.shape[0]} images but {index_path} lists {decoded}; "
                             "rerun that shard")
        side = array.shape[1] if side is None else side
        corrupt += [{key: row[key] for key in ("image_id", "path", "error")} for row in index if row["row"] < 0]
        shards.append({"images": str(images_path), "index": str(index_path), "selected": len(index),
                       "decoded": decoded})
    return {
        "image_size": side,
        "selected": sum(shard["selected"] for shard in shards),
        "decoded": sum(shard["decoded"] for shard in shards),
        "corrupt": len(corrupt),
        "corrupt_images": corrupt,
        "shards": shards,
    }
