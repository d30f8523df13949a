"""Training samples and batches: one sample is one image, drawn afresh on every visit.

Per visit the sampler draws an anchor caption of the image and k hard negatives from the
anchor's stored pool. It also draws a paraphrase from the image's paraphrase rows that differ
from the anchor, and a reconstruction target (a caption of the same image, or the anchor's own). Each of these draws
has its own random stream derived from the one seed, so a variant that skips a term still sees
the same images, anchors and negatives as one that uses it.

The input tables are written by other stages (`read_clip.captions`, `read_clip.targets`); see
`read_negatives`, `read_paraphrases` and `read_targets` for their columns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from read_clip.data.karpathy import TrainingImage
from read_clip.models.decoder import EOS_ID, IGNORE_INDEX
from read_clip.train.images import ImageStore

log = logging.getLogger(__name__)

# Random streams of the sampler, each seeded by (seed, its index here). Appending a stream
# keeps the others unchanged.
STREAMS = ("order", "anchor", "negatives", "paraphrase", "target")


class TrainingDataError(ValueError):
    """An input table that is missing, malformed or does not cover the training captions."""


@dataclass
class Batch:
    """One optimiser step's inputs. B images, k negatives per caption, U distinct texts.

    images: (B, 3, H, W) float32, CLIP-normalised; None when no loss term reads images.
    text_tokens: (U, context_length) int64 CLIP tokens, each distinct text of the step once.
    texts: the U strings behind `text_tokens`.
    anchor_index: (B,) int64 row of `text_tokens` holding each image's anchor caption.
    negative_index: (B*k,) int64 rows of the negatives, image i's at positions i*k .. i*k+k-1;
        None when negatives are not sampled.
    paraphrase_index: (B,) int64 rows of the paraphrases; None when not sampled.
    target_labels: (B, T) int64 target token ids ending in eos, IGNORE_INDEX after it;
        T is the longest target of the step. None when targets are not sampled.
    image_ids: (B,) int64 COCO ids of the images.
    positions: the B positions in the sampler's image list (where the pixels come from).
    paraphrase_fallbacks: images of the step that had no paraphrase different from the anchor
        and were given the anchor itself.
    """

    images: torch.Tensor | None
    text_tokens: torch.Tensor
    texts: list[str]
    anchor_index: torch.Tensor
    negative_index: torch.Tensor | None
    paraphrase_index: torch.Tensor | None
    target_labels: torch.Tensor | None
    image_ids: torch.Tensor
    paraphrase_fallbacks: int = 0
    positions: list[int] | None = None

    @property
    def size(self) -> int:
        return int(self.anchor_index.shape[0])

    def shard(self, rank: int, world_size: int) -> Batch:
        """Return rank `rank`'s contiguous 1/world_size of the images and their texts.

        Only the texts the shard's rows index are kept, renumbered in their old order. Raises
        ValueError unless the batch size is a multiple of `world_size`.
        """
        if self.size % world_size:
            raise ValueError(f"batch of {self.size} images does not split over {world_size} processes")
        per_rank = self.size // world_size
        rows = slice(rank * per_rank, (rank + 1) * per_rank)
        k = 0 if self.negative_index is None else self.negative_index.shape[0] // self.size
        parts = {"anchor": self.anchor_index[rows]}
        if self.negative_index is not None:
            parts["negative"] = self.negative_index[rows.start * k:rows.stop * k]
        if self.paraphrase_index is not None:
            parts["paraphrase"] = self.paraphrase_index[rows]
        kept = torch.unique(torch.cat(list(parts.values())))  # sorted old text rows
        renumber = torch.full((len(self.texts),), -1, dtype=torch.int64)
        renumber[kept] = torch.arange(kept.shape[0])
        return Batch(
            images=None if self.images is None else self.images[rows],
            text_tokens=self.text_tokens[kept],
            texts=[self.texts[i] for i in kept.tolist()],
            anchor_index=renumber[parts["anchor"]],
            negative_index=renumber[parts["negative"]] if "negative" in parts else None,
            paraphrase_index=renumber[parts["paraphrase"]] if "paraphrase" in parts else None,
            target_labels=None if self.target_labels is None else trim_padding(self.target_labels[rows]),
            image_ids=self.image_ids[rows],
            paraphrase_fallbacks=self.paraphrase_fallbacks,
            positions=None if self.positions is None else self.positions[rows],
        )

    def to(self, device: str | torch.device) -> Batch:
        """Return a copy with every tensor on `device`."""
        moved = {}
        for field in fields(self):
            value = getattr(self, field.name)
            moved[field.name] = value.to(device) if isinstance(value, torch.Tensor) else value
        return Batch(**moved)


def _read_table(path: str | Path, columns: dict[str, pa.DataType], what: str) -> pa.Table:
    """Read `columns` of a Parquet file, raising TrainingDataError on a missing file or column."""
    path = Path(path)
    if not path.exists():
        raise TrainingDataError(f"{what} file {path} not found")
    schema = pq.read_schema(path)
    missing = [name for name in columns if name not in schema.names]
    if missing:
        raise TrainingDataError(
            f"{path}: {what} table lacks columns {missing}; expected {list(columns)} "
            f"(found {schema.names})")
    table = pq.read_table(path, columns=list(columns))
    for name, dtype in columns.items():
        if not _same_type(table.schema.field(name).type, dtype):
            raise TrainingDataError(
                f"{path}: column {name!r} has type {table.schema.field(name).type}, expected {dtype}")
    return table


def _same_type(actual: pa.DataType, expected: pa.DataType) -> bool:
    # Parquet writers name a list's item field differently ("item", "element"), so lists
    # compare by their value types only.
    if pa.types.is_list(actual) and pa.types.is_list(expected):
        return actual.value_type.equals(expected.value_type)
    return actual.equals(expected)


def read_negatives(paths: list[str | Path]) -> dict[int, list[str]]:
    """Read negatives shards into {caption_id: pool of distinct hard negatives}.

    Columns: image_id int64, caption_id int64, caption string, negatives list<string>,
    fallback bool. Every pool must hold at least one negative.
    """
    columns = {"caption_id": pa.int64(), "negatives": pa.list_(pa.string())}
    pools: dict[int, list[str]] = {}
    for path in paths:
        table = _read_table(path, columns, "negatives")
        for caption_id, pool in zip(table["caption_id"].to_pylist(), table["negatives"].to_pylist()):
            if not pool:
                raise TrainingDataError(
                    f"{path}: caption {caption_id} has an empty negatives pool; rerun make-negatives")
            pools[caption_id] = pool
    return pools


def read_paraphrases(paths: list[str | Path]) -> dict[int, list[str]]:
    """Read paraphrase shards into {image_id: paraphrase candidate texts}.

    Columns: image_id int64, caption_id int64, text string, source string ("sibling" for the
    image's own captions, "generated" for model-written paraphrases).
    """
    columns = {"image_id": pa.int64(), "text": pa.string()}
    candidates: dict[int, list[str]] = {}
    for path in paths:
        table = _read_table(path, columns, "paraphrases")
        for image_id, text in zip(table["image_id"].to_pylist(), table["text"].to_pylist()):
            candidates.setdefault(image_id, []).append(text.strip())
    return candidates


def read_targets(path: str | Path, max_tokens: int | None = None) -> dict[int, list[int]]:
    """Read decoder targets into {caption_id: token ids ending in eos}.

    Columns: image_id int64, caption_id int64, input_ids list<int32> (no padding, eos last).
    With `max_tokens`, a longer target is cut to max_tokens - 1 tokens plus eos.
    """
    columns = {"caption_id": pa.int64(), "input_ids": pa.list_(pa.int32())}
    table = _read_table(path, columns, "decoder targets")
    targets = {}
    for caption_id, ids in zip(table["caption_id"].to_pylist(), table["input_ids"].to_pylist()):
        if not ids or ids[-1] != EOS_ID:
            raise TrainingDataError(
                f"{path}: target of caption {caption_id} does not end with eos id {EOS_ID}: {ids[-5:]}; "
                "rerun make-decoder-targets")
        if max_tokens is not None and len(ids) > max_tokens:
            ids = ids[: max_tokens - 1] + [EOS_ID]
        targets[caption_id] = ids
    return targets


def check_coverage(images: list[TrainingImage], table: dict[int, object], what: str,
                   source: str) -> None:
    """Raise unless `table` has an entry for every caption of `images`."""
    missing = [c.caption_id for image in images for c in image.captions if c.caption_id not in table]
    if missing:
        raise TrainingDataError(
            f"{source}: {len(missing)} training captions have no {what} (first caption ids "
            f"{missing[:5]}); build it from the same Karpathy file, splits, max_train_images and seed")


def pad_targets(targets: list[list[int]]) -> torch.Tensor:
    """Stack token id lists into (B, T) int64, T the longest, filled with IGNORE_INDEX."""
    labels = torch.full((len(targets), max(map(len, targets))), IGNORE_INDEX, dtype=torch.int64)
    for row, ids in enumerate(targets):
        labels[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return labels


def trim_padding(labels: torch.Tensor) -> torch.Tensor:
    """Drop the trailing columns of (B, T) labels that are IGNORE_INDEX in every row."""
    length = int((labels != IGNORE_INDEX).sum(dim=1).max())
    return labels[:, :length]


class TextTable:
    """Collect the distinct texts of a step in first-seen order; `add` returns a text's row."""

    def __init__(self):
        self.rows: dict[str, int] = {}

    def add(self, text: str) -> int:
        return self.rows.setdefault(text, len(self.rows))

    @property
    def texts(self) -> list[str]:
        return list(self.rows)


@dataclass
class SamplerTables:
    """Tables the sampler draws from besides the images; None turns a draw off.

    negatives: {caption_id: pool}; paraphrases: {image_id: texts}; targets: {caption_id: ids}.
    target_from_anchor: reconstruct the anchor itself instead of a random caption of the image.
    """

    negatives: dict[int, list[str]] | None = None
    negatives_per_caption: int = 3
    paraphrases: dict[int, list[str]] | None = None
    targets: dict[int, list[int]] | None = None
    target_from_anchor: bool = False


class Sampler:
    """Draw batches of training samples from a fixed image list with one seed."""

    def __init__(self, images: list[TrainingImage], tokenizer: Callable[[list[str]], torch.Tensor],
                 seed: int, tables: SamplerTables, image_store: ImageStore | None = None):
        if tables.negatives is not None:
            check_coverage(images, tables.negatives, "hard negatives", "negatives shards")
        if tables.targets is not None:
            check_coverage(images, tables.targets, "decoder target", "decoder targets")
        self.images = images
        self.tokenizer = tokenizer
        self.tables = tables
        self.image_store = image_store
        self.seed = seed
        self.rng = {name: np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
                    for index, name in enumerate(STREAMS)}

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per pass over the images; the last partial batch is dropped."""
        if batch_size > len(self.images):
            raise TrainingDataError(
                f"batch size {batch_size} exceeds the {len(self.images)} training images; "
                "lower the batch size or train on more images")
        return len(self.images) // batch_size

    def plan(self, batch_size: int, steps: int) -> list[list[int]]:
        """Return the image positions of each of `steps` batches, each epoch a fresh permutation.

        The plan depends only on the seed (the "order" stream from its start), so a resumed run
        and every rank of a distributed run compute the same one.
        """
        per_epoch = self.steps_per_epoch(batch_size)
        order_rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(STREAMS.index("order"),)))
        plan: list[list[int]] = []
        while len(plan) < steps:
            order = order_rng.permutation(len(self.images))
            for start in range(0, per_epoch * batch_size, batch_size):
                if len(plan) == steps:
                    break
                plan.append(order[start:start + batch_size].tolist())
        return plan

    def batches(self, batch_size: int, steps: int, start: int = 0) -> Iterator[Batch]:
        """Yield batches `start` .. `steps` - 1 of the plan (see `plan`).

        A resumed run passes the step it resumes at, after `load_state_dict` restored the draws.
        """
        for positions in self.plan(batch_size, steps)[start:]:
            yield self.make_batch(positions)

    def state_dict(self) -> dict[str, dict]:
        """Return the states of the per-sample random streams as JSON values (ints and strings)."""
        return {name: rng.bit_generator.state for name, rng in self.rng.items() if name != "order"}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for name, stream_state in state.items():
            self.rng[name].bit_generator.state = stream_state

    def make_batch(self, positions: list[int]) -> Batch:
        """Draw one sample for each image at `positions` of the image list and collate them."""
        tables = self.tables
        text_table = TextTable()
        anchors, negatives, paraphrases, targets = [], [], [], []
        fallbacks = 0
        for position in positions:
            image = self.images[position]
            anchor = image.captions[self.rng["anchor"].integers(len(image.captions))]
            anchors.append(text_table.add(anchor.text))
            if tables.negatives is not None:
                negatives.extend(text_table.add(t) for t in self._draw_negatives(anchor.caption_id))
            if tables.paraphrases is not None:
                paraphrase, fell_back = self._draw_paraphrase(image, anchor.text)
                paraphrases.append(text_table.add(paraphrase))
                fallbacks += fell_back
            if tables.targets is not None:
                targets.append(self._draw_target(image, anchor.caption_id))

        texts = text_table.texts
        images = self.image_store.batch(positions) if self.image_store is not None else None
        return Batch(
            images=images,
            text_tokens=self.tokenizer(texts),
            texts=texts,
            anchor_index=torch.tensor(anchors, dtype=torch.int64),
            negative_index=torch.tensor(negatives, dtype=torch.int64) if tables.negatives is not None else None,
            paraphrase_index=torch.tensor(paraphrases, dtype=torch.int64) if tables.paraphrases is not None else None,
            target_labels=pad_targets(targets) if tables.targets is not None else None,
            image_ids=torch.tensor([self.images[p].image_id for p in positions], dtype=torch.int64),
            paraphrase_fallbacks=fallbacks,
            positions=list(positions),
        )

    def _draw_negatives(self, caption_id: int) -> list[str]:
        # Without replacement from the stored pool; with replacement only when the pool is
        # smaller than k.
        pool = self.tables.negatives[caption_id]
        k = self.tables.negatives_per_caption
        picks = self.rng["negatives"].choice(len(pool), size=k, replace=len(pool) < k)
        return [pool[i] for i in picks]

    def _draw_paraphrase(self, image: TrainingImage, anchor_text: str) -> tuple[str, bool]:
        # NOTE: an image whose paraphrase rows all equal the anchor (or that has none) gets
        # the anchor itself as its paraphrase. Batch.paraphrase_fallbacks counts these.
        candidates = [t for t in self.tables.paraphrases.get(image.image_id, []) if t != anchor_text]
        if not candidates:
            return anchor_text, True
        return candidates[self.rng["paraphrase"].integers(len(candidates))], False

    def _draw_target(self, image: TrainingImage, anchor_caption_id: int) -> list[int]:
        if self.tables.target_from_anchor:
            return self.tables.targets[anchor_caption_id]
        caption = image.captions[self.rng["target"].integers(len(image.captions))]
        return self.tables.targets[caption.caption_id]
