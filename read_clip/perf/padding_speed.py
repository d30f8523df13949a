"""Measure the text-tower speed-up of padding each batch to its longest caption instead of 77 tokens.

    python -m read_clip.perf.padding_speed --captions PATH [--architecture ViT-B-32-quickgelu]
        [--batch-size 256] [--batches 3] [--threads N] [--seed 0]

PATH is NegCLIP's valid_neg_clip.tsv (captions in its `title` column) or a SugarCrepe JSON
({id: {"caption": ...}}); these are real COCO captions. Batches are drawn at random from them.
Each batch runs the text tower forward and backward twice: through open_clip's `encode_text`
(always the full context) and through `encode_text_states` (trimmed to the batch's longest
caption), on random-init weights. The script prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from read_clip.models.clip import create_clip
from read_clip.models.text import encode_text_states, trim_to_longest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", required=True, type=Path,
                        help="valid_neg_clip.tsv (column `title`) or a SugarCrepe JSON file.")
    parser.add_argument("--architecture", default="ViT-B-32-quickgelu", help="open_clip architecture (random weights).")
    parser.add_argument("--batch-size", type=int, default=256, help="Captions per batch.")
    parser.add_argument("--batches", type=int, default=3, help="Timed batches; the median counts.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the weights and the batch draw.")
    return parser.parse_args(argv)


def read_captions(path: Path) -> list[str]:
    """Read the captions of a NegCLIP TSV (`title` column) or a SugarCrepe JSON file."""
    if path.suffix == ".tsv":
        frame = pd.read_csv(path, sep="\t")
        if "title" not in frame.columns:
            raise ValueError(f"{path}: no `title` column (found {list(frame.columns)}); expected NegCLIP's TSV")
        return frame["title"].astype(str).tolist()
    items = json.loads(path.read_text(encoding="utf-8"))
    try:
        return [item["caption"] for item in items.values()]
    except (AttributeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: expected a SugarCrepe JSON {{id: {{'caption': ...}}}}") from error


def time_call(step: Callable[[], torch.Tensor]) -> float:
    """Seconds of one forward (`step`) plus backward of its output's sum."""
    started = time.perf_counter()
    step().float().sum().backward()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    captions = read_captions(args.captions)
    torch.manual_seed(args.seed)
    clip = create_clip(args.architecture)
    model = clip.model.train()
    generator = torch.Generator().manual_seed(args.seed)

    full, trimmed, lengths = [], [], []
    for _ in range(args.batches + 1):  # the first batch warms up and is not counted
        picks = torch.randint(len(captions), (args.batch_size,), generator=generator).tolist()
        tokens = clip.tokenizer([captions[i] for i in picks])
        full.append(time_call(lambda: model.encode_text(tokens)))
        trimmed.append(time_call(lambda: encode_text_states(model, tokens).projected))
        lengths.append(trim_to_longest(tokens).shape[1])
        model.zero_grad(set_to_none=True)
    full_s, trimmed_s = statistics.median(full[1:]), statistics.median(trimmed[1:])
    print(f"text tower forward+backward, {args.architecture}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, {len(captions)} captions from {args.captions.name}: "
          f"full context {tokens.shape[1]} tokens {full_s:.3f} s, batch maximum "
          f"(median {statistics.median(lengths[1:])} tokens) {trimmed_s:.3f} s, "
          f"speed-up {full_s / trimmed_s:.2f}x (median of {args.batches} batches)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
