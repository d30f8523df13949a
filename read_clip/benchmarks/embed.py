"""The `embed-images` command: embed every image of one image set once with one model.

Output: a safetensors file with tensor "embeddings" (float32, shape (N, D), rows L2-normalised) and
metadata {"paths": JSON list of the N relative paths, in row order}. Every benchmark that reads the
set looks its images up there. The image loading here also serves CREPE's crops.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from read_clip.io import atomic_path

log = logging.getLogger(__name__)

# Missing files listed by name in an error; the rest are counted.
MAX_LISTED = 5


class ImageFiles(Dataset):
    """Image files as preprocessed tensors (3, H, W), converted to RGB and optionally cropped first.

    `boxes[i]` is (left, upper, right, lower) in pixels or None for the whole image.
    """

    def __init__(self, paths: Sequence[Path], preprocess: Callable,
                 boxes: Sequence[tuple[float, float, float, float] | None] | None = None):
        self.paths = list(paths)
        self.preprocess = preprocess
        self.boxes = list(boxes) if boxes is not None else [None] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            # Some COCO images are greyscale or CMYK, and CLIP expects RGB.
            image = image.convert("RGB")
        if self.boxes[index] is not None:
            image = image.crop(self.boxes[index])
        return self.preprocess(image)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_files_exist(paths: Sequence[Path], root: Path | str, what: str) -> None:
    """Raise FileNotFoundError counting the missing files and naming the first few."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} {what} are missing under {root}, first: "
            f"{missing[:MAX_LISTED]}. Check the image folder (config eval.image_roots) and the download."
        )


@torch.inference_mode()
def embed_images(model: torch.nn.Module, dataset: ImageFiles, batch_size: int, workers: int,
                 device: str | torch.device) -> torch.Tensor:
    """Encode every image of `dataset` in order; return float32 (N, D) on the CPU, rows L2-normalised."""
    if len(dataset) == 0:
        return torch.empty(0, model.visual.output_dim, dtype=torch.float32)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=str(device).startswith("cuda"))
    chunks = []
    for images in tqdm(loader, desc="embedding images", unit="batch", disable=None):
        features = model.encode_image(images.to(device, non_blocking=True))
        chunks.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(chunks)


def write_embeddings(path: str | Path, embeddings: torch.Tensor, paths: Sequence[str]) -> None:
    if embeddings.shape[0] != len(paths):
        raise ValueError(f"{embeddings.shape[0]} embeddings for {len(paths)} paths")
    with atomic_path(path) as tmp:
        save_file({"embeddings": embeddings.float().contiguous()}, str(tmp),
                  metadata={"paths": json.dumps(list(paths))})


def read_embeddings(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """Read a file written by `write_embeddings`: (float32 (N, D) tensor, N relative paths)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if "embeddings" not in handle.keys() or "paths" not in metadata:
            raise ValueError(f"{path} is not an image embedding file: it needs tensor 'embeddings' and metadata 'paths'")
        embeddings = handle.get_tensor("embeddings")
    paths = json.loads(metadata["paths"])
    if embeddings.shape[0] != len(paths):
        raise ValueError(f"{path}: {embeddings.shape[0]} embeddings but {len(paths)} paths; the file is corrupt")
    return embeddings, paths


def read_image_list(path: str | Path) -> list[str]:
    """Relative image paths, one per non-empty line."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="Model directory written by save_model_dir.")
    parser.add_argument("--image-list", required=True, help="Text file of image paths relative to --image-root (from list-images).")
    parser.add_argument("--image-root", required=True, help="Folder of the image set.")
    parser.add_argument("--batch-size", type=int, required=True, help="Images per forward pass.")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes that decode images.")
    parser.add_argument("--device", default=default_device(), help="Torch device (default: cuda when available, else cpu).")
    parser.add_argument("--out", required=True, help="safetensors file to write.")


def main(args: argparse.Namespace) -> int:
    from read_clip.models.clip import load_model_dir

    relative = read_image_list(args.image_list)
    root = Path(args.image_root)
    files = [root / p for p in relative]
    check_files_exist(files, root, f"images listed in {args.image_list}")

    loaded = load_model_dir(args.model_dir, device=args.device)
    log.info("embedding %d images of %s with %s (%s) on %s",
             len(files), root, args.model_dir, loaded.architecture, args.device)
    embeddings = embed_images(loaded.model, ImageFiles(files, loaded.preprocess),
                              args.batch_size, args.workers, args.device)
    write_embeddings(args.out, embeddings, relative)
    log.info("wrote embeddings %s to %s", tuple(embeddings.shape), args.out)
    return 0
