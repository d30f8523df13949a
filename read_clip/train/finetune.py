"""`read-clip finetune`: fine-tune the base CLIP with one variant's loss weights.

Settings JSON: {"seed", "train_splits", "max_train_images", "train": <the config's train section
without `variants`>, "weights": {"neg", "rec", "align"}} and optionally "run_seed". `seed` selects
the training images, as in every data stage. `run_seed` (default: `seed`) seeds the training itself
(initialisation, data order, sampling), so extra training seeds reuse the same data. The run trains for
epochs x (images // batch_size) steps and writes the model directory (model.safetensors,
model.json), metrics.jsonl, config.json and versions.json into --out, and the Hugging Face
CLIPModel directory into <out>/hf.

Images come from the prepared shards (--image-shards, --image-indexes; memory-mapped, read by
`train.loader_workers` DataLoader processes) or, without them, are decoded into memory (demo).
Every `train.checkpoint_every` steps the state is saved to --checkpoints (default
<out>/checkpoints); a rerun resumes from it, and a finished run deletes it. With --gpus N > 1
the command reruns itself under `torchrun --standalone --nproc_per_node=N` and trains with
DistributedDataParallel, each rank on 1/N of the global batch.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from read_clip.config import ConfigError, parse_settings
from read_clip.data.karpathy import training_images
from read_clip.models.clip import LoadedClip, load_model_dir, save_model_dir
from read_clip.models.decoder import load_decoder_dir, load_target_tokenizer, make_bridge
from read_clip.train.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from read_clip.train.data import (Batch, Sampler, SamplerTables, read_negatives,
                                  read_paraphrases, read_targets)
from read_clip.train.device import Precision, choose_precision, resolve_device
from read_clip.train.distributed import World, init_world, relaunch_under_torchrun, should_relaunch
from read_clip.train.export import export_hf_dir
from read_clip.train.images import ImageStore, ShardImageStore, keep_prepared, normalise, plan_loader
from read_clip.train.loop import LoopSettings, run_training, seed_everything, set_threads, write_run_files
from read_clip.train.objectives import FinetuneObjective, LossWeights
from read_clip.train.optim import OptimiserSettings, make_optimizer, make_scheduler
from read_clip.train.settings import TRAIN_KEYS, WEIGHT_KEYS, add_runtime_options, require_keys

log = logging.getLogger(__name__)

SETTINGS_KEYS = ("seed", "train_splits", "max_train_images", "train", "weights")
OPTIONAL_SETTINGS_KEYS = ("run_seed",)


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
    parser.add_argument("--image-shards", nargs="*", type=Path, default=[],
                        help="Prepared image shards (.npy); without them the images are decoded into memory.")
    parser.add_argument("--image-indexes", nargs="*", type=Path, default=[],
                        help="Parquet indexes of the image shards, in the same order.")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="Checkpoint folder (default: <out>/checkpoints); not deleted by a failed run.")
    parser.add_argument("--gpus", type=int, default=1,
                        help="GPUs to train on: 0 for the CPU, N > 1 relaunches under torchrun (default 1).")
    add_runtime_options(parser)
    parser.set_defaults(device="auto")


def check_settings(settings: dict) -> dict:
    """Raise ConfigError unless `settings` has exactly the keys finetune reads."""
    present = [key for key in OPTIONAL_SETTINGS_KEYS if key in settings]
    require_keys(settings, [*SETTINGS_KEYS, *present], "finetune --settings")
    if "run_seed" in settings and not isinstance(settings["run_seed"], int):
        raise ConfigError(f"finetune --settings 'run_seed' must be an integer, got {settings['run_seed']!r}")
    require_keys(settings["train"], TRAIN_KEYS, "finetune --settings 'train'")
    require_keys(settings["weights"], WEIGHT_KEYS, "finetune --settings 'weights'")
    try:
        LossWeights(**settings["weights"])
    except ValueError as error:
        raise ConfigError(f"finetune --settings 'weights': {error}") from error
    return settings


@dataclass
class FinetuneRun:
    """Everything a fine-tuning run needs, built but not yet trained.

    batch_size is the global batch; each of the world's ranks trains on its 1/size share.
    store is None when no loss term reads images.
    """

    clip: LoadedClip
    objective: FinetuneObjective
    sampler: Sampler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loop: LoopSettings
    batch_size: int
    store: ImageStore | ShardImageStore | None = None
    precision: Precision | None = None
    world: World = World()
    loader_workers: int = 0


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


def open_store(images: list, args: argparse.Namespace, clip: LoadedClip) -> ImageStore | ShardImageStore:
    """Memory-mapped prepared shards when given, else every image decoded into memory."""
    if args.image_shards:
        return ShardImageStore.open(images, args.image_shards, args.image_indexes, clip.model)
    return ImageStore.load(images, args.karpathy.parent, clip.model, clip.preprocess)


def build_run(settings: dict, args: argparse.Namespace, device: torch.device | str = "cpu",
              world: World = World()) -> FinetuneRun:
    """Load the models and data of a fine-tuning run onto `device`; seeds every generator first."""
    train = settings["train"]
    weights = LossWeights(**settings["weights"])
    device = torch.device(device)
    if train["batch_size"] % world.size:
        raise ConfigError(f"train.batch_size {train['batch_size']} does not split over {world.size} GPUs")
    run_seed = settings.get("run_seed", settings["seed"])
    seed_everything(run_seed)

    images = training_images(args.karpathy, settings["train_splits"], settings["max_train_images"],
                             settings["seed"])
    if args.image_shards and weights.neg > 0:
        images = keep_prepared(images, args.image_indexes)
    clip = load_model_dir(args.base_model)

    decoder = bridge = None
    if weights.rec > 0:
        loaded = load_decoder_dir(args.decoder)
        check_tokenizer(args.tokenizer, loaded.decoder.config.vocab_size)
        decoder = loaded.decoder.freeze()
        # The recipe trains a fresh bridge: the decoder directory's bridge is not used here.
        bridge = make_bridge(clip.model.transformer.width, loaded.decoder.config.d_model)

    tables = load_tables(args, weights, train["negatives_per_caption"])
    store = open_store(images, args, clip) if weights.neg > 0 else None
    # Pixels reach the batches through a DataLoader (see `run_batches`), not the sampler.
    sampler = Sampler(images, clip.tokenizer, run_seed, tables)

    steps_per_epoch = sampler.steps_per_epoch(train["batch_size"])
    total_steps = train["epochs"] * steps_per_epoch
    if train["grad_checkpointing"]:
        clip.model.set_grad_checkpointing(True)
    objective = FinetuneObjective(clip.model, weights, decoder, bridge).to(device)
    optimiser = OptimiserSettings(lr=train["lr"], weight_decay=train["weight_decay"],
                                  betas=tuple(train["betas"]), eps=train["eps"],
                                  warmup_steps=train["warmup_steps"], total_steps=total_steps)
    optimizer = make_optimizer(objective, optimiser, fused=device.type == "cuda")
    # No logit-scale clamp (max_logit_scale None): the recipe's fine-tuning lists none.
    loop = LoopSettings(total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                        log_every=train["log_every"], grad_clip_norm=train["grad_clip_norm"],
                        device=device, world_size=world.size, is_main=world.is_main)
    workers = train["loader_workers"] if isinstance(store, ShardImageStore) else 0
    return FinetuneRun(clip, objective, sampler, optimizer,
                       make_scheduler(optimizer, train["warmup_steps"], total_steps), loop, train["batch_size"],
                       store, choose_precision(device), world, workers)


def run_batches(run: FinetuneRun, start: int) -> Iterator[Batch]:
    """This rank's batches from step `start` on, images normalised on the training device."""
    world, device = run.world, torch.device(run.loop.device)
    texts = run.sampler.batches(run.batch_size, run.loop.total_steps, start)
    if world.size > 1:
        texts = (batch.shard(world.rank, world.size) for batch in texts)
    if run.store is None:
        yield from texts
        return
    share = run.batch_size // world.size
    plan = [positions[world.rank * share:(world.rank + 1) * share]
            for positions in run.sampler.plan(run.batch_size, run.loop.total_steps)[start:]]
    loader = plan_loader(run.store, plan, run.loader_workers, pin_memory=device.type == "cuda")
    for batch, pixels in zip(texts, loader):
        batch.images = normalise(pixels.to(device, non_blocking=True), run.store.mean, run.store.std)
        yield batch


def wrap_for_world(run: FinetuneRun) -> nn.Module:
    """Wrap the objective in DistributedDataParallel when several ranks train."""
    if run.world.size == 1:
        return run.objective
    # A variant without the image loss leaves the vision tower unused.
    return DistributedDataParallel(run.objective, device_ids=None, broadcast_buffers=False,
                                   find_unused_parameters=run.objective.weights.neg == 0)


def resolve_run_device(args: argparse.Namespace, settings: dict, world: World) -> torch.device:
    requested = "cpu" if args.device == "auto" and args.gpus == 0 else args.device
    device = resolve_device(requested, settings["train"]["allow_cpu"], world.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def train(run: FinetuneRun, args: argparse.Namespace, settings: dict) -> list[dict]:
    """Resume from the latest matching checkpoint, train to the end and return the records."""
    checkpoints = args.checkpoints or args.out / "checkpoints"
    run_fingerprint = fingerprint({"variant": args.variant, **settings})
    resume = load_checkpoint(checkpoints, run_fingerprint, run.objective, run.optimizer, run.scheduler,
                             run.sampler)
    every = settings["train"]["checkpoint_every"]

    def after_step(step: int, records: list[dict], fallbacks: int) -> None:
        if run.world.is_main and every and step % every == 0 and step < run.loop.total_steps:
            save_checkpoint(checkpoints, step, run_fingerprint, run.objective, run.optimizer, run.scheduler,
                            run.sampler.state_dict(), records, fallbacks)

    return run_training(wrap_for_world(run), run.optimizer, run.scheduler, run_batches(run, resume.step),
                        run.loop, args.out / "metrics.jsonl", run.precision, resume, after_step)


def main(args: argparse.Namespace) -> int:
    settings = check_settings(parse_settings(args.settings))
    if should_relaunch(args.gpus):
        relaunch_under_torchrun(sys.argv[1:], args.gpus)
    set_threads(args.threads)
    world = init_world()
    device = resolve_run_device(args, settings, world)
    run = build_run(settings, args, device, world)
    log.info("fine-tuning %s (%s) for %d steps of %d images on %s x %d (%s), weights %s",
             args.variant, run.clip.architecture, run.loop.total_steps, run.batch_size, device, world.size,
             run.precision.name, settings["weights"])
    records = train(run, args, settings)
    if world.is_main:
        export(run, args, settings, records)
        shutil.rmtree(args.checkpoints or args.out / "checkpoints", ignore_errors=True)
    if world.size > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


def export(run: FinetuneRun, args: argparse.Namespace, settings: dict, records: list[dict]) -> None:
    """Write the open_clip model directory, the Hugging Face directory and the run files."""
    save_model_dir(run.clip.model, run.clip.architecture, args.out, extra={
        "variant": args.variant,
        "base_model": str(args.base_model),
        "weights": settings["weights"],
        "steps": run.loop.total_steps,
        "seed": settings.get("run_seed", settings["seed"]),
        "final_loss": records[-1]["loss"],
    })
    export_hf_dir(run.clip.model, run.clip.architecture, args.out / "hf", {"variant": args.variant, **settings})
    write_run_files(args.out, {"variant": args.variant, **settings})
    log.info("wrote %s", args.out)
