"""Measure the training step time of read_clip relative to negclip on the same model and batch.

    python -m read_clip.perf.step_time [--architecture readclip-tiny] [--batch-size 64]
        [--steps 10] [--warmup 3] [--threads N]

Both variants run the real fine-tuning objective, backward pass and AdamW update on one
synthetic batch (random pixels, random caption tokens of 5 to 14 words, random decoder targets),
with the demo's decoder size. negclip's batch contains only the anchors and negatives, as its
sampler's would. read_clip's also contains the paraphrases and targets.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from read_clip.models.clip import create_clip
from read_clip.models.decoder import EOS_ID, IGNORE_INDEX, build_decoder, make_bridge, make_t5_config
from read_clip.train.data import Batch
from read_clip.train.loop import LoopSettings, train_step
from read_clip.train.objectives import FinetuneObjective, LossWeights
from read_clip.train.optim import OptimiserSettings, make_optimizer

VARIANTS = {"negclip": LossWeights(1.0, 0.0, 0.0), "read_clip": LossWeights(1.0, 0.1, 0.5)}
NEGATIVES_PER_CAPTION = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="readclip-tiny", help="open_clip architecture (random weights).")
    parser.add_argument("--batch-size", type=int, default=64, help="Images per step.")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per variant; the median counts.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps before timing.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own).")
    parser.add_argument("--vocab-size", type=int, default=200, help="Decoder vocabulary size.")
    parser.add_argument("--target-tokens", type=int, default=24, help="Maximum decoder target length in tokens.")
    parser.add_argument("--d-model", type=int, default=128, help="Decoder width.")
    parser.add_argument("--decoder-layers", type=int, default=2, help="Decoder blocks.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the weights and the batch.")
    return parser.parse_args(argv)


def random_tokens(rows: int, context: int, generator: torch.Generator) -> torch.Tensor:
    """CLIP-style token rows: start id, 5-14 random word ids, end-of-text, zero padding."""
    tokens = torch.zeros(rows, context, dtype=torch.int64)
    lengths = torch.randint(5, min(15, context - 1), (rows,), generator=generator)
    for row, length in enumerate(lengths.tolist()):
        tokens[row, 0] = 49406
        tokens[row, 1:length + 1] = torch.randint(300, 40000, (length,), generator=generator)
        tokens[row, length + 1] = 49407
    return tokens


def synthetic_batch(size: int, image_size: int, context: int, args: argparse.Namespace,
                    with_read_clip_texts: bool) -> Batch:
    generator = torch.Generator().manual_seed(args.seed)
    k = NEGATIVES_PER_CAPTION
    tokens = random_tokens(size * (k + 2), context, generator)
    labels = torch.randint(3, args.vocab_size, (size, args.target_tokens), generator=generator)
    lengths = torch.randint(4, args.target_tokens + 1, (size,), generator=generator)
    for row, length in enumerate(lengths.tolist()):
        labels[row, length - 1] = EOS_ID
        labels[row, length:] = IGNORE_INDEX
    rows = size * (k + 2) if with_read_clip_texts else size * (k + 1)
    return Batch(
        images=torch.randn(size, 3, image_size, image_size, generator=generator),
        text_tokens=tokens[:rows],
        texts=[str(i) for i in range(rows)],
        anchor_index=torch.arange(size),
        negative_index=torch.arange(size, size * (k + 1)),
        paraphrase_index=torch.arange(size * (k + 1), size * (k + 2)) if with_read_clip_texts else None,
        target_labels=labels if with_read_clip_texts else None,
        image_ids=torch.arange(size),
    )


def time_variant(name: str, args: argparse.Namespace) -> list[float]:
    """Return the wall time in seconds of each timed step of one variant."""
    torch.manual_seed(args.seed)
    clip = create_clip(args.architecture).model
    weights = VARIANTS[name]
    decoder = bridge = None
    if weights.rec > 0:
        config = make_t5_config({"d_model": args.d_model, "d_ff": 2 * args.d_model, "num_heads": 4,
                                 "d_kv": args.d_model // 4, "num_decoder_layers": args.decoder_layers},
                                args.vocab_size)
        decoder = build_decoder(config).freeze()
        bridge = make_bridge(clip.transformer.width, args.d_model)
    objective = FinetuneObjective(clip, weights, decoder, bridge).train()
    optimizer = make_optimizer(objective, OptimiserSettings(
        lr=1e-5, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8, warmup_steps=0, total_steps=1))
    loop = LoopSettings(total_steps=1, steps_per_epoch=1, log_every=1, grad_clip_norm=1.0)
    batch = synthetic_batch(args.batch_size, clip.visual.image_size[0], clip.context_length, args,
                            with_read_clip_texts=weights.rec > 0 or weights.align > 0)

    times = []
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        train_step(objective, optimizer, batch, loop)
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    medians = {name: statistics.median(time_variant(name, args)) for name in VARIANTS}
    ratio = medians["read_clip"] / medians["negclip"]
    print(f"read_clip/negclip step time: {ratio:.2f} (read_clip {medians['read_clip']:.3f} s, "
          f"negclip {medians['negclip']:.3f} s; median of {args.steps} steps after {args.warmup}, "
          f"{args.architecture}, batch {args.batch_size}, {torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
