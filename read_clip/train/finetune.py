"""`read-clip finetune`: fine-tune the base CLIP with one variant's loss weights.

Settings JSON: {"seed", "train_splits", "max_train_images", "train": <the config's train section
without `variants`>, "weights": {"neg", "rec", "align"}}. The run trains for
epochs x (images // batch_size) steps and writes the model directory (model.safetensors,
model.json), metrics.jsonl, config.json and versions.json into --out.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from read_clip.config import ConfigError, parse_settings
from read_clip.data.karpathy import training_images
from read_clip.models.clip import LoadedClip, load_model_dir, save_model_dir
from read_clip.models.decoder import load_decoder_dir, load_target_tokenizer, make_bridge
from read_clip.train.data import Sampler, SamplerTables, read_negatives, read_paraphrases, read_targets
from read_clip.train.images import ImageStore
from read_clip.train.loop import LoopSettings, run_training, seed_everything, set_threads, write_run_files
from read_clip.train.objectives import FinetuneObjective, LossWeights
from read_clip.train.optim import OptimiserSettings, make_optimizer, make_scheduler
from read_clip.train.settings import TRAIN_KEYS, WEIGHT_KEYS, add_runtime_options, require_keys

log = logging.getLogger(__name__)

SETTINGS_KEYS = ("seed", "train_splits", "max_train_images", "train", "weights")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, help="Variant name, recorded in model.json.")
    parser.add_argument("--settings", required=True, help="JSON settings (see the module docstring).")
    parser.add_argument("--base-model", required=True, type=Path, help="Model directory to start from.")
    parser.add_argument("--decoder", required=True, type=Path,
                        help="Decoder directory (read only when the rec weight is > 0).")
    parser.add_argument("--karpathy", required=True, type=Path, help="dataset_coco.json of the training images.")
    parser.add_argument("--negatives", required=True, nargs="+", type=Path, help="Negatives Parquet shards.")
    parser.add_argument("--paraphrases", required=True, nargs="+", type=Path, help="Paraphrase Parquet shards.")
    parser.add_argument("--targets", required=True, type=Path, help="Decoder targets Parquet file.")
    parser.add_argument("--tokenizer", required=True, type=Path, help="Tokenizer directory of the targets.")
    parser.add_argument("--out", required=True, type=Path, help="Output model directory.")
    add_runtime_options(parser)


def check_settings(settings: dict) -> dict:
    """Raise ConfigError unless `settings` has exactly the keys finetune reads."""
    require_keys(settings, SETTINGS_KEYS, "finetune --settings")
    require_keys(settings["train"], TRAIN_KEYS, "finetune --settings 'train'")
    require_keys(settings["weights"], WEIGHT_KEYS, "finetune --settings 'weights'")
    try:
        LossWeights(**settings["weights"])
    except ValueError as error:
        raise ConfigError(f"finetune --settings 'weights': {error}") from error
    return settings


@dataclass
class FinetuneRun:
    """Everything a fine-tuning run needs, built but not yet trained."""

    clip: LoadedClip
    objective: FinetuneObjective
    sampler: Sampler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loop: LoopSettings
    batch_size: int


def check_tokenizer(path: Path, vocab_size: int) -> None:
    """Raise unless the target tokenizer has T5's pad and eos ids and fits the decoder's vocabulary."""
    tokenizer = load_target_tokenizer(path)
    if len(tokenizer) > vocab_size:
        raise ConfigError(
            f"{path}: tokenizer has {len(tokenizer)} tokens but the decoder's vocabulary has {vocab_size}; "
            "use the tokenizer the decoder was trained with")


def load_tables(args: argparse.Namespace, weights: LossWeights, negatives_per_caption: int) -> SamplerTables:
    """Read only the tables that the terms with a weight above 0 need."""
    return SamplerTables(
        negatives=read_negatives(args.negatives) if weights.neg > 0 else None,
        negatives_per_caption=negatives_per_caption,
        paraphrases=read_paraphrases(args.paraphrases) if weights.align > 0 else None,
        targets=read_targets(args.targets) if weights.rec > 0 else None,
    )


def build_run(settings: dict, args: argparse.Namespace) -> FinetuneRun:
    """Load the models and data of a fine-tuning run; seeds every generator first."""
    train = settings["train"]
    weights = LossWeights(**settings["weights"])
    seed_everything(settings["seed"])

    images = training_images(args.karpathy, settings["train_splits"], settings["max_train_images"],
                             settings["seed"])
    clip = load_model_dir(args.base_model)

    decoder = bridge = None
    if weights.rec > 0:
        loaded = load_decoder_dir(args.decoder)
        check_tokenizer(args.tokenizer, loaded.decoder.config.vocab_size)
        decoder = loaded.decoder.freeze()
        # The recipe trains a fresh bridge: the decoder directory's bridge is not used here.
        bridge = make_bridge(clip.model.transformer.width, loaded.decoder.config.d_model)

    tables = load_tables(args, weights, train["negatives_per_caption"])
    store = ImageStore.load(images, args.karpathy.parent, clip.model, clip.preprocess) if weights.neg > 0 else None
    sampler = Sampler(images, clip.tokenizer, settings["seed"], tables, store)

    steps_per_epoch = sampler.steps_per_epoch(train["batch_size"])
    total_steps = train["epochs"] * steps_per_epoch
    objective = FinetuneObjective(clip.model, weights, decoder, bridge)
    optimiser = OptimiserSettings(lr=train["lr"], weight_decay=train["weight_decay"],
                                  betas=tuple(train["betas"]), eps=train["eps"],
                                  warmup_steps=train["warmup_steps"], total_steps=total_steps)
    optimizer = make_optimizer(objective, optimiser)
    # No logit-scale clamp (max_logit_scale None): the recipe's fine-tuning lists none.
    loop = LoopSettings(total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                        log_every=train["log_every"], grad_clip_norm=train["grad_clip_norm"],
                        device=args.device)
    return FinetuneRun(clip, objective, sampler, optimizer,
                       make_scheduler(optimizer, train["warmup_steps"], total_steps), loop, train["batch_size"])


def main(args: argparse.Namespace) -> int:
    settings = check_settings(parse_settings(args.settings))
    set_threads(args.threads)
    run = build_run(settings, args)
    log.info("fine-tuning %s (%s) for %d steps of %d images, weights %s",
             args.variant, run.clip.architecture, run.loop.total_steps, run.batch_size, settings["weights"])

    batches = run.sampler.batches(run.batch_size, run.loop.total_steps)
    records = run_training(run.objective, run.optimizer, run.scheduler, batches, run.loop,
                           args.out / "metrics.jsonl")

    save_model_dir(run.clip.model, run.clip.architecture, args.out, extra={
        "variant": args.variant,
        "base_model": str(args.base_model),
        "weights": settings["weights"],
        "steps": run.loop.total_steps,
        "seed": settings["seed"],
        "final_loss": records[-1]["loss"],
    })
    write_run_files(args.out, {"variant": args.variant, **settings})
    log.info("wrote %s", args.out)
    return 0
