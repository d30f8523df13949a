"""Training pixels: decoded into memory (demo) or memory-mapped from prepared shards (recipe).

`ImageStore` decodes each image at start into a uint8 tensor at the model's input size, with
open_clip's resize and centre crop when it is not already that size; 6,000 demo images of 64x64
take about 74 MB. `ShardImageStore` reads the uint8 shards of `read-clip prepare-images`
(113,287 COCO images at 224 px are about 17 GB) through `np.load(mmap_mode="r")`, so only the
rows of a batch are read. Both give `pixels(positions)`: uint8 (B, 3, H, W). `PlanImages` serves
the pixels of a batch plan to a DataLoader, whose workers read ahead of the training step;
`normalise` then scales and normalises them on the training device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import pyarrow.parquet as pq
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from read_clip.data.karpathy import TrainingImage

log = logging.getLogger(__name__)


def pil_steps(preprocess: Callable) -> list[Callable]:
    """Return the steps of an open_clip preprocess Compose that run before ToTensor."""
    steps = []
    for step in getattr(preprocess, "transforms", []):
        if "ToTensor" in type(step).__name__:
            return steps
        steps.append(step)
    raise ValueError(f"expected an open_clip preprocess Compose with a ToTensor step, got {preprocess!r}")


class ImageStore:
    """All training images as one uint8 tensor (N, 3, H, W), in the order of the image list.

    `batch` returns float32 (B, 3, H, W), scaled to [0, 1] and normalised with the model's
    mean and std, the same values open_clip's ToTensor and Normalize produce.
    """

    def __init__(self, pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]):
        self.pixels = pixels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def load(cls, images: list[TrainingImage], root: str | Path, model: torch.nn.Module,
             preprocess: Callable) -> ImageStore:
        """Decode `images` (paths relative to `root`) for the input size of `model.visual`."""
        cfg = model.visual.preprocess_cfg
        height, width = cfg["size"]
        resize = pil_steps(preprocess)
        pixels = torch.empty((len(images), 3, height, width), dtype=torch.uint8)
        resized = 0
        for row, image in enumerate(images):
            path = Path(root) / image.path
            try:
                with Image.open(path) as handle:
                    picture = handle.convert("RGB")
            except OSError as error:  # missing, unreadable or not an image
                raise FileNotFoundError(
                    f"cannot read training image {path} (COCO id {image.image_id}): {error}") from error
            if picture.size != (width, height):
                for step in resize:
                    picture = step(picture)
                resized += 1
            pixels[row] = torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy()).permute(2, 0, 1)
        log.info("decoded %d training images at %dx%d (%d resized) from %s",
                 len(images), width, height, resized, root)
        return cls(pixels, cfg["mean"], cfg["std"])

    def pixels_at(self, positions: list[int]) -> torch.Tensor:
        """uint8 (B, 3, H, W) pixels of the images at `positions` of the image list."""
        return self.pixels[positions]

    def batch(self, positions: list[int]) -> torch.Tensor:
        return normalise(self.pixels_at(positions), self.mean, self.std)


def normalise(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 scaled to [0, 1] and normalised; mean, std (1, 3, 1, 1)."""
    scaled = pixels.float() / 255.0
    return (scaled - mean.to(pixels.device)) / std.to(pixels.device)


class ShardImageStore:
    """Prepared uint8 shards (N, S, S, 3), memory-mapped, addressed by image-list position.

    Images that prepare-images could not decode (row -1) are not in the store; `keep_prepared`
    drops them from the image list before the store and the sampler are built.
    """

    def __init__(self, locations: list[tuple[int, int]], shard_paths: list[Path],
                 mean: tuple[float, ...], std: tuple[float, ...]):
        self.locations = locations  # per image-list position: (shard index, row in that shard)
        self.shard_paths = shard_paths
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self._arrays: list[np.ndarray] | None = None  # opened lazily, once per worker process

    @staticmethod
    def read_indexes(index_paths: list[Path]) -> dict[int, tuple[int, int]]:
        """{COCO id: (shard index, row)} of every decoded image; row -1 marks a skipped one."""
        where = {}
        for shard, path in enumerate(index_paths):
            table = pq.read_table(path, columns=["image_id", "row"])
            for image_id, row in zip(table["image_id"].to_pylist(), table["row"].to_pylist()):
                where[image_id] = (shard, row)
        return where

    @classmethod
    def open(cls, images: list[TrainingImage], shard_paths: list[Path], index_paths: list[Path],
             model: torch.nn.Module) -> ShardImageStore:
        """Map each image of `images` to its shard row; raise if one is absent or skipped."""
        if len(shard_paths) != len(index_paths):
            raise ValueError(f"{len(shard_paths)} image shards but {len(index_paths)} shard indexes")
        where = cls.read_indexes(index_paths)
        absent = [image.image_id for image in images if where.get(image.image_id, (0, -1))[1] < 0]
        if absent:
            # keep_prepared has dropped the skipped images, so these are not in any index.
            raise FileNotFoundError(
                f"{len(absent)} training images are not in the prepared shards {index_paths[0].parent} "
                f"(first COCO ids {absent[:5]}); rerun prepare_images with the same selection settings")
        cfg = model.visual.preprocess_cfg
        store = cls([where[image.image_id] for image in images], shard_paths, cfg["mean"], cfg["std"])
        first = np.load(shard_paths[0], mmap_mode="r")
        if tuple(first.shape[1:]) != (*cfg["size"], 3):
            raise ValueError(f"{shard_paths[0]}: images are {first.shape[1:3]} but the model reads "
                             f"{tuple(cfg['size'])}; prepare the images at the model's input size")
        return store

    def pixels_at(self, positions: list[int]) -> torch.Tensor:
        if self._arrays is None:
            self._arrays = [np.load(path, mmap_mode="r") for path in self.shard_paths]
        rows = [self._arrays[shard][row] for shard, row in (self.locations[p] for p in positions)]
        return torch.from_numpy(np.stack(rows)).permute(0, 3, 1, 2)

    def __getstate__(self) -> dict:
        # DataLoader workers get the paths and reopen the memory maps themselves.
        return {**self.__dict__, "_arrays": None}


def keep_prepared(images: list[TrainingImage], index_paths: list[Path]) -> list[TrainingImage]:
    """Drop the images that prepare-images skipped as undecodable (row -1), with a warning.

    Images absent from every index stay, so that `ShardImageStore.open` names them.
    """
    where = ShardImageStore.read_indexes(index_paths)
    skipped = [image.image_id for image in images if where.get(image.image_id, (0, 0))[1] < 0]
    if skipped:
        log.warning("training without %d images that prepare-images could not decode (COCO ids %s)",
                    len(skipped), skipped[:10])
    return [image for image in images if where.get(image.image_id, (0, 0))[1] >= 0]


class PlanImages(Dataset):
    """Item i is the uint8 pixels (B, 3, H, W) of batch i of `plan` (lists of image positions)."""

    def __init__(self, store: ImageStore | ShardImageStore, plan: list[list[int]]):
        self.store = store
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.store.pixels_at(self.plan[index])


def plan_loader(store: ImageStore | ShardImageStore, plan: list[list[int]], workers: int,
                pin_memory: bool) -> DataLoader:
    """Build a DataLoader over the batches of `plan`, in order, `workers` processes reading ahead."""
    return DataLoader(PlanImages(store, plan), batch_size=None, shuffle=False, num_workers=workers,
                      pin_memory=pin_memory, prefetch_factor=4 if workers else None,
                      persistent_workers=False)
