"""The `evaluate` command: score any CLIP checkpoint on benchmarks without editing the config.

It reads the image folders and the tie policy from the config and builds the model from a spec
(`read_clip.models.sources`). Each image is embedded once across all the benchmarks of the run.
Per benchmark it writes the two files that `score-benchmark` writes in the workflow:
`<out>/<benchmark>.parquet` (per-item scores) and `<out>/<benchmark>.json` (summary). A readable
table of the results goes to stdout, and logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import torch

from read_clip.benchmarks import run, scoring
from read_clip.benchmarks.crepe import IMAGE_SET as CREPE_IMAGE_SET
from read_clip.benchmarks.embed import MAX_LISTED, ImageFiles, default_device, embed_images
from read_clip.benchmarks.images import resolve_image
from read_clip.benchmarks.items import Item
from read_clip.benchmarks.loaders import BENCHMARKS, benchmark_folder, image_sets_for, load_benchmark
from read_clip.config import load_config
from read_clip.io import package_versions, write_json, write_parquet

log = logging.getLogger(__name__)

ImageKey = tuple[str, str]  # (image set, path relative to the set's folder)
# Characters of the label column under the printed per-subset table.
LABEL_WIDTH = 24


def set_roots(data_root: str | Path, eval_settings: Mapping) -> dict[str, Path]:
    """Folder of every image set in config `eval.image_roots`, under the data root."""
    return {name: Path(data_root) / folder for name, folder in eval_settings["image_roots"].items()}


def embed_item_images(items: Sequence[Item], loaded, roots: Mapping[str, Path], batch_size: int, workers: int,
                      device: str, known: dict[ImageKey, torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    """Embed the items' images that `known` lacks, then return (embeddings, row of each item's image).

    `known` maps (image set, path) to a float32 (D,) embedding and is updated in place, so
    benchmarks scored in one run that share images (SugarCrepe and SugarCrepe++) encode them once.
    """
    refs = {}
    for item in items:
        refs.setdefault((item.image.image_set, item.image.path), item.image)
    new = [key for key in refs if key not in known]

    files = [resolve_image(refs[key], roots[key[0]]) for key in new]
    missing = [f"{key[0]}/{key[1]}" for key, path in zip(new, files) if path is None]
    if missing:
        used = {key[0]: str(roots[key[0]]) for key in new}
        raise FileNotFoundError(
            f"{len(missing)} of {len(new)} images are missing, first: {missing[:MAX_LISTED]}; image set folders: "
            f"{used}. Check --data-root and config eval.image_roots.")
    if new:
        log.info("embedding %d images (%d already embedded in this run)", len(new), len(refs) - len(new))
        embeddings = embed_images(loaded.model, ImageFiles(files, loaded.preprocess), batch_size, workers, device)
        known.update(zip(new, embeddings))

    keys = list(refs)
    row = {key: index for index, key in enumerate(keys)}
    stacked = torch.stack([known[key] for key in keys])
    return stacked, [row[(item.image.image_set, item.image.path)] for item in items]


def score_benchmark(benchmark: str, loaded, settings: Mapping, data_root: str | Path, workers: int, device: str,
                    known: dict[ImageKey, torch.Tensor]) -> tuple[pa.Table, dict, list[str]]:
    """Score one benchmark; return (score table, summary without run metadata, absent files)."""
    data = load_benchmark(benchmark, benchmark_folder(data_root, benchmark), settings["valse_datasets"])
    if data.absent:
        log.warning("%s: %d expected files are absent and not scored: %s", benchmark, len(data.absent), data.absent)
    log.info("%s: %d items in subsets %s", benchmark, len(data.items), data.subset_counts())
    image_sets_for(benchmark, settings)  # raises naming any image set without a folder
    roots = set_roots(data_root, settings)
    batch_size = settings["batch_size"]

    text_embeddings, text_rows = run.embed_item_texts(data.items, loaded, batch_size, device)
    if benchmark == "crepe":
        image_embeddings, image_rows = run.embed_crops(data.items, loaded, roots[CREPE_IMAGE_SET], batch_size,
                                                       workers, device)
    else:
        image_embeddings, image_rows = embed_item_images(data.items, loaded, roots, batch_size, workers, device, known)

    table = run.build_score_table(data.items, benchmark, image_rows, image_embeddings, text_embeddings, text_rows)
    return table, run.summarise(table.to_pandas(), benchmark, settings["tie_policy"]), data.absent


def format_summary(summary: Mapping) -> str:
    """Render one benchmark's summary as a plain-text table: per-subset rows, then both protocols."""
    subsets = pd.DataFrame.from_dict(summary["subsets"], orient="index")[["items", "correct", "accuracy", "ties"]]
    # Subset names left-aligned, header included, by padding them to one width.
    width = max(len("subset"), *(len(name) for name in subsets.index))
    subsets.index = [f"{name:<{width}}" for name in subsets.index]
    subsets = subsets.rename_axis(f"{'subset':<{width}}").reset_index()
    lines = [f"{summary['benchmark']}: {summary['model']} (tie policy {summary['tie_policy']})",
             subsets.to_string(index=False, float_format=lambda value: f"{value:.2f}"), ""]
    for label, key in (("READ-CLIP protocol", "headline"), ("vl_compo protocol", "vl_compo")):
        values = ", ".join(f"{column} {value:.2f}" for column, value in summary[key].items()) or "not reported"
        lines.append(f"{label:<{LABEL_WIDTH}}{values}")
    if "pooled" in summary:
        lines.append(f"{'pooled over all items':<{LABEL_WIDTH}}{summary['pooled']:.2f}")
    if summary["missing_subsets"]:
        lines.append(f"{'subsets not scored':<{LABEL_WIDTH}}{', '.join(summary['missing_subsets'])}")
    return "\n".join(lines) + "\n"


def eval_settings(config: Mapping, args: argparse.Namespace) -> dict:
    """Return the config's eval section with the command-line overrides applied."""
    settings = dict(config["eval"])
    if args.tie_policy is not None:
        settings["tie_policy"] = args.tie_policy
    if args.batch_size is not None:
        settings["batch_size"] = args.batch_size
    scoring.check_tie_policy(settings["tie_policy"])
    return settings


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="Model spec: openclip:ARCH/TAG, file:PATH@ARCH, hf:ID_OR_DIR, hfhub:OWNER/REPO/FILE@ARCH, "
                             "dir:PATH, or a JSON object (see read_clip.models.sources).")
    parser.add_argument("--model-name", default=None, help="Name recorded in the outputs (default: built from the spec).")
    parser.add_argument("--benchmark", required=True, nargs="+", choices=BENCHMARKS,
                        help="Benchmarks to score; images shared between them are embedded once.")
    parser.add_argument("--config", nargs="+", default=["config.yaml"],
                        help="Config files, later ones overriding earlier ones (default: config.yaml).")
    parser.add_argument("--data-root", default=None,
                        help="Data root holding the benchmark folders (default: config data.root).")
    parser.add_argument("--tie-policy", default=None, choices=scoring.TIE_POLICIES,
                        help="Override config eval.tie_policy.")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Images or texts per forward pass (default: config eval.batch_size).")
    parser.add_argument("--cache-dir", default=None, help="Folder where downloaded weights are kept.")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes that decode images.")
    parser.add_argument("--device", default=default_device(), help="Torch device (default: cuda when available, else cpu).")
    parser.add_argument("--out", required=True, help="Folder to write <benchmark>.parquet and <benchmark>.json into.")


def main(args: argparse.Namespace) -> int:
    from read_clip.models.sources import load_model, parse_spec

    missing_configs = [path for path in args.config if not Path(path).is_file()]
    if missing_configs:
        raise FileNotFoundError(f"config files {missing_configs} not found; run from the repository root or pass --config")
    config = load_config(args.config)
    settings = eval_settings(config, args)
    data_root = args.data_root or config["data"]["root"]
    spec = parse_spec(args.model)
    name = args.model_name or spec.label()
    loaded = load_model(spec, cache_dir=args.cache_dir, device=args.device)

    known: dict[ImageKey, torch.Tensor] = {}
    for benchmark in dict.fromkeys(args.benchmark):
        table, results, absent = score_benchmark(benchmark, loaded, settings, data_root, args.workers, args.device, known)
        summary = {"benchmark": benchmark, "model": name, "model_spec": spec.to_dict(),
                   "architecture": loaded.architecture, "tie_policy": settings["tie_policy"], **results,
                   "absent_files": absent, "settings": settings, "package_versions": package_versions()}
        out = Path(args.out)
        write_parquet(out / f"{benchmark}.parquet", table)
        write_json(out / f"{benchmark}.json", summary)
        print(format_summary(summary), flush=True)
    return 0
