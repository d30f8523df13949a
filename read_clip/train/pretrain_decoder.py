"""`read-clip pretrain-decoder`: train the demo's T5 decoder and bridge on a frozen base CLIP.

The recipe's decoder is a pretrained T5; the demo has none, so this trains a small one to
reconstruct each anchor caption (its own target) from the anchor's pooled CLIP text state.
Settings JSON: {"seed", "train_splits", "max_train_images", "run": {"steps", "batch_size",
"lr", "warmup_steps"}, "decoder_config": {"d_model", "d_ff", "num_heads", "d_kv",
"num_decoder_layers"}, "max_target_tokens"}. Writes the decoder directory, metrics.jsonl,
config.json and versions.json into --out.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from read_clip.config import parse_settings
from read_clip.data.karpathy import training_images
from read_clip.models.clip import load_model_dir
from read_clip.models.decoder import (build_decoder, load_target_tokenizer, make_bridge, make_t5_config,
                                      save_decoder_dir)
from read_clip.train.data import Sampler, SamplerTables, read_targets
from read_clip.train.loop import LoopSettings, run_training, seed_everything, set_threads, write_run_files
from read_clip.train.objectives import DecoderPretrainObjective
from read_clip.train.optim import OptimiserSettings, make_optimizer, make_scheduler
from read_clip.train.pretrain import BETAS, EPS, GRAD_CLIP_NORM, WEIGHT_DECAY
from read_clip.train.settings import RUN_KEYS, add_runtime_options, require_keys

log = logging.getLogger(__name__)

SETTINGS_KEYS = ("seed", "train_splits", "max_train_images", "run", "decoder_config", "max_target_tokens")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", required=True, help="JSON settings (see the module docstring).")
    parser.add_argument("--base-model", required=True, type=Path, help="Model directory of the frozen base CLIP.")
    parser.add_argument("--karpathy", required=True, type=Path, help="dataset_coco.json of the training images.")
    parser.add_argument("--targets", required=True, type=Path, help="Decoder targets Parquet file.")
    parser.add_argument("--tokenizer", required=True, type=Path, help="Tokenizer directory of the targets.")
    parser.add_argument("--out", required=True, type=Path, help="Output decoder directory.")
    parser.add_argument("--log-every", type=int, default=20, help="Steps between log lines (default 20).")
    add_runtime_options(parser)


def check_settings(settings: dict) -> dict:
    require_keys(settings, SETTINGS_KEYS, "pretrain-decoder --settings")
    require_keys(settings["run"], RUN_KEYS, "pretrain-decoder --settings 'run'")
    return settings


def main(args: argparse.Namespace) -> int:
    settings = check_settings(parse_settings(args.settings))
    run = settings["run"]
    set_threads(args.threads)
    seed_everything(settings["seed"])

    images = training_images(args.karpathy, settings["train_splits"], settings["max_train_images"],
                             settings["seed"])
    clip = load_model_dir(args.base_model)
    vocab_size = len(load_target_tokenizer(args.tokenizer))
    decoder = build_decoder(make_t5_config(settings["decoder_config"], vocab_size))
    bridge = make_bridge(clip.model.transformer.width, decoder.config.d_model)

    # Targets are the anchors' own captions, so the decoder learns to read the bridged state.
    tables = SamplerTables(targets=read_targets(args.targets, settings["max_target_tokens"]),
                           target_from_anchor=True)
    sampler = Sampler(images, clip.tokenizer, settings["seed"], tables)

    objective = DecoderPretrainObjective(clip.model, decoder, bridge)
    optimizer = make_optimizer(objective, OptimiserSettings(
        lr=run["lr"], weight_decay=WEIGHT_DECAY, betas=BETAS, eps=EPS,
        warmup_steps=run["warmup_steps"], total_steps=run["steps"]))
    loop = LoopSettings(total_steps=run["steps"], steps_per_epoch=sampler.steps_per_epoch(run["batch_size"]),
                        log_every=args.log_every, grad_clip_norm=GRAD_CLIP_NORM, device=args.device)
    log.info("pretraining a %d-layer T5 decoder (d_model %d, vocabulary %d) for %d steps of %d captions",
             decoder.config.num_decoder_layers, decoder.config.d_model, vocab_size, run["steps"], run["batch_size"])

    records = run_training(objective, optimizer, make_scheduler(optimizer, run["warmup_steps"], run["steps"]),
                           sampler.batches(run["batch_size"], run["steps"]), loop, args.out / "metrics.jsonl")

    uniform_loss = math.log(vocab_size)
    final_loss = records[-1]["rec_loss"]
    log.info("final rec_loss %.4f; a uniform guess over %d tokens scores ln(%d) = %.4f",
             final_loss, vocab_size, vocab_size, uniform_loss)
    save_decoder_dir(decoder, bridge, args.out, extra={
        "base_model": str(args.base_model),
        "steps": run["steps"],
        "seed": settings["seed"],
        "final_rec_loss": final_loss,
        "uniform_rec_loss": uniform_loss,
    })
    write_run_files(args.out, settings)
    log.info("wrote %s", args.out)
    return 0
