"""`read-clip pretrain-clip`: train the demo's base CLIP from random weights.

The demo has no OpenAI weights, so this run replaces them. It trains with the plain CLIP
contrastive loss on (image, random caption of the image) pairs. Settings JSON: {"seed", "architecture",
"train_splits", "max_train_images", "run": {"steps", "batch_size", "lr", "warmup_steps"}}.
Writes the model directory, metrics.jsonl, config.json and versions.json into --out.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from read_clip.config import parse_settings
from read_clip.data.karpathy import training_images
from read_clip.models.clip import create_clip, save_model_dir
from read_clip.train.data import Sampler, SamplerTables
from read_clip.train.images import ImageStore
from read_clip.train.loop import LoopSettings, run_training, seed_everything, set_threads, write_run_files
from read_clip.train.objectives import ClipPretrainObjective
from read_clip.train.optim import OptimiserSettings, make_optimizer, make_scheduler
from read_clip.train.settings import RUN_KEYS, add_runtime_options, require_keys

log = logging.getLogger(__name__)

SETTINGS_KEYS = ("seed", "architecture", "train_splits", "max_train_images", "run")

# Optimiser of CLIP pretraining from scratch, with open_clip's ViT defaults for beta2 and eps.
# The recipe's fine-tuning values (beta2 0.999, eps 1e-8) are meant for an already trained model.
WEIGHT_DECAY = 0.1
BETAS = (0.9, 0.98)
EPS = 1e-6
GRAD_CLIP_NORM = 1.0
# open_clip_train clamps the exponentiated logit scale at 100 after every step.
MAX_LOGIT_SCALE = 100.0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", required=True, help="JSON settings (see the module docstring).")
    parser.add_argument("--karpathy", required=True, type=Path, help="dataset_coco.json of the training images.")
    parser.add_argument("--out", required=True, type=Path, help="Output model directory.")
    parser.add_argument("--log-every", type=int, default=20, help="Steps between log lines (default 20).")
    add_runtime_options(parser)


def check_settings(settings: dict) -> dict:
    require_keys(settings, SETTINGS_KEYS, "pretrain-clip --settings")
    require_keys(settings["run"], RUN_KEYS, "pretrain-clip --settings 'run'")
    return settings


def main(args: argparse.Namespace) -> int:
    settings = check_settings(parse_settings(args.settings))
    run = settings["run"]
    set_threads(args.threads)
    seed_everything(settings["seed"])

    images = training_images(args.karpathy, settings["train_splits"], settings["max_train_images"],
                             settings["seed"])
    clip = create_clip(settings["architecture"])
    store = ImageStore.load(images, args.karpathy.parent, clip.model, clip.preprocess)
    sampler = Sampler(images, clip.tokenizer, settings["seed"], SamplerTables(), store)

    objective = ClipPretrainObjective(clip.model)
    optimizer = make_optimizer(objective, OptimiserSettings(
        lr=run["lr"], weight_decay=WEIGHT_DECAY, betas=BETAS, eps=EPS,
        warmup_steps=run["warmup_steps"], total_steps=run["steps"]))
    loop = LoopSettings(total_steps=run["steps"], steps_per_epoch=sampler.steps_per_epoch(run["batch_size"]),
                        log_every=args.log_every, grad_clip_norm=GRAD_CLIP_NORM,
                        max_logit_scale=MAX_LOGIT_SCALE, device=args.device)
    log.info("pretraining %s from random weights: %d steps of %d images, %d training images",
             settings["architecture"], run["steps"], run["batch_size"], len(images))

    records = run_training(objective, optimizer, make_scheduler(optimizer, run["warmup_steps"], run["steps"]),
                           sampler.batches(run["batch_size"], run["steps"]), loop, args.out / "metrics.jsonl")

    save_model_dir(clip.model, settings["architecture"], args.out, extra={
        "pretrained": "demo",
        "steps": run["steps"],
        "seed": settings["seed"],
        "final_loss": records[-1]["loss"],
    })
    write_run_files(args.out, settings)
    log.info("wrote %s", args.out)
    return 0
