"""GPU benchmark of the recipe's training step: ViT-B/32 plus the T5-v1.1-large decoder, bf16.

    python -m read_clip.perf.gpu_step [--batch-size 256] [--steps 20] [--warmup 5]
        [--no-grad-checkpointing] [--device cuda] [--tiny]

Both variants (negclip: L_neg only; read_clip: the full loss) run the real fine-tuning
objective, backward pass and fused AdamW update on one synthetic batch (random pixels, random
caption tokens, random T5 targets of up to 32 tokens) under the precision the training command
chooses (bf16 autocast and TF32 on CUDA). Weights are random, built from written configs, so no
download is needed: `ViT-B-32-quickgelu` and the T5Config of google/t5-v1_1-large below.
It prints samples/s, peak GPU memory and the read_clip/negclip step-time ratio.

Without CUDA it refuses, unless `--device cpu --tiny` asks for the smoke mode: tiny configs,
2 steps, for the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from transformers import T5Config

from read_clip.models.clip import create_clip
from read_clip.models.decoder import DECODER_START_ID, EOS_ID, PAD_ID, build_decoder, make_bridge
from read_clip.perf.step_time import VARIANTS, synthetic_batch
from read_clip.train.device import choose_precision
from read_clip.train.loop import LoopSettings, train_step
from read_clip.train.objectives import FinetuneObjective
from read_clip.train.optim import OptimiserSettings, make_optimizer

# google/t5-v1_1-large, decoder side. The encoder is built with one layer: it is never run.
T5_V1_1_LARGE = {"vocab_size": 32128, "d_model": 1024, "d_ff": 2816, "num_heads": 16, "d_kv": 64,
                 "num_decoder_layers": 24, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
TINY_T5 = {"vocab_size": 200, "d_model": 64, "d_ff": 128, "num_heads": 2, "d_kv": 32,
           "num_decoder_layers": 2, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}


class UnsupportedDevice(RuntimeError):
    """The requested device cannot run this benchmark (no CUDA, or the CPU without --tiny)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256, help="Images per step (recipe: 256).")
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per variant; the median counts.")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed steps before timing.")
    parser.add_argument("--target-tokens", type=int, default=32, help="Longest T5 target in tokens.")
    parser.add_argument("--no-grad-checkpointing", dest="grad_checkpointing", action="store_false",
                        help="Keep activations instead of recomputing them (the recipe recomputes).")
    parser.add_argument("--device", default="cuda", help="'cuda' (default) or 'cpu' with --tiny.")
    parser.add_argument("--tiny", action="store_true",
                        help="Smoke mode: readclip-tiny and a 2-layer T5, batch 8, 2 steps, no warm-up.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the weights and the batch.")
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch_size, args.steps, args.warmup, args.target_tokens = 8, 2, 0, 8
    return args


def check_device(args: argparse.Namespace) -> torch.device:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UnsupportedDevice("no CUDA GPU is visible to torch: this benchmark measures the GPU step. "
                      "Run it on a GPU machine, or use --device cpu --tiny for a smoke test.")
    if device.type == "cpu" and not args.tiny:
        raise UnsupportedDevice("the full-size benchmark on the CPU would take hours; use --tiny with --device cpu")
    return device


def t5_config(fields: dict) -> T5Config:
    return T5Config(**fields, num_layers=1, pad_token_id=PAD_ID, eos_token_id=EOS_ID,
                    decoder_start_token_id=DECODER_START_ID)


def step_times(name: str, args: argparse.Namespace, device: torch.device) -> tuple[list[float], int]:
    """Wall seconds of each timed step of one variant, and its peak GPU memory in bytes."""
    torch.manual_seed(args.seed)
    clip = create_clip("readclip-tiny" if args.tiny else "ViT-B-32-quickgelu").model
    clip.set_grad_checkpointing(args.grad_checkpointing)
    weights = VARIANTS[name]
    decoder = bridge = None
    config = t5_config(TINY_T5 if args.tiny else T5_V1_1_LARGE)
    if weights.rec > 0:
        decoder = build_decoder(config).freeze()
        bridge = make_bridge(clip.transformer.width, config.d_model)
    objective = FinetuneObjective(clip, weights, decoder, bridge).to(device).train()
    optimizer = make_optimizer(objective, OptimiserSettings(
        lr=1e-5, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8, warmup_steps=0, total_steps=1),
        fused=device.type == "cuda")
    loop = LoopSettings(total_steps=1, steps_per_epoch=1, log_every=1, grad_clip_norm=1.0, device=device)
    batch_args = argparse.Namespace(seed=args.seed, vocab_size=config.vocab_size, target_tokens=args.target_tokens)
    batch = synthetic_batch(args.batch_size, clip.visual.image_size[0], clip.context_length, batch_args,
                            with_read_clip_texts=weights.rec > 0 or weights.align > 0).to(device)
    precision = choose_precision(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(args.warmup + args.steps):
        synchronize(device)
        started = time.perf_counter()
        train_step(objective, optimizer, batch, loop, precision, step + 1)
        synchronize(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return times, peak


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = check_device(args)
    except UnsupportedDevice as error:
        print(f"gpu_step: {error}", file=sys.stderr)
        return 2
    medians = {}
    for name in VARIANTS:
        times, peak = step_times(name, args, device)
        medians[name] = statistics.median(times)
        print(f"{name}: {args.batch_size / medians[name]:.1f} samples/s, step {medians[name]:.3f} s, "
              f"peak memory {peak / 2**30:.2f} GiB (median of {len(times)} steps after {args.warmup}, "
              f"batch {args.batch_size}, {choose_precision(device).name}, "
              f"grad checkpointing {args.grad_checkpointing}, {device})")
    print(f"read_clip/negclip step time: {medians['read_clip'] / medians['negclip']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
