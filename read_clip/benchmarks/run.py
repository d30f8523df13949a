"""The `score-benchmark` command: score one model on one benchmark.

Texts are embedded here, each distinct text once. Image embeddings come from the shared files that
`embed-images` wrote per image set, except CREPE's crops, which are embedded here. The command
writes the per-item score table (layout in `scoring`) and a summary JSON whose accuracies are
computed from that table.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F

from read_clip.benchmarks import aggregate, scoring
from read_clip.benchmarks.crepe import IMAGE_SET as CREPE_IMAGE_SET
from read_clip.benchmarks.embed import (
    MAX_LISTED, ImageFiles, default_device, embed_images, read_embeddings,
)
from read_clip.benchmarks.images import resolve_image
from read_clip.benchmarks.items import Item
from read_clip.benchmarks.loaders import BENCHMARKS, benchmark_folder, load_benchmark
from read_clip.config import parse_settings
from read_clip.io import package_versions, write_json, write_parquet

log = logging.getLogger(__name__)

# Score rows computed per step; bounds the memory of the gathered embedding pairs.
SCORE_CHUNK = 65536


@torch.inference_mode()
def embed_texts(model: torch.nn.Module, tokenizer, texts: Sequence[str], batch_size: int,
                device: str | torch.device) -> torch.Tensor:
    """Encode raw texts (no prompt template); return float32 (N, D) on the CPU, rows L2-normalised."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start:start + batch_size])).to(device)
        chunks.append(F.normalize(model.encode_text(tokens).float(), dim=-1).cpu())
    return torch.cat(chunks)


def embed_item_texts(items: Sequence[Item], loaded, batch_size: int,
                     device: str | torch.device) -> tuple[torch.Tensor, dict[str, int]]:
    """Embed each distinct candidate text of the items once; return (embeddings, row of each text)."""
    texts = list(dict.fromkeys(text for item in items for text in item.texts))
    embeddings = embed_texts(loaded.model, loaded.tokenizer, texts, batch_size, device)
    log.info("embedded %d distinct texts", len(texts))
    return embeddings, {text: row for row, text in enumerate(texts)}


def parse_embedding_files(values: Sequence[str]) -> dict[str, Path]:
    """Parse SET=FILE arguments."""
    files = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--embeddings {value!r} must have the form SET=FILE")
        files[name] = Path(path)
    return files


def lookup_image_rows(items: Sequence[Item], files: dict[str, Path]) -> tuple[torch.Tensor, list[int]]:
    """Stack the shared embedding files and return (embeddings, row of each item's image)."""
    needed = sorted({item.image.image_set for item in items})
    absent = [s for s in needed if s not in files]
    if absent:
        raise ValueError(f"no --embeddings file given for image sets {absent}; the items need {needed}")

    blocks, rows = [], {}
    offset = 0
    for image_set in needed:
        embeddings, paths = read_embeddings(files[image_set])
        rows.update({(image_set, path): offset + i for i, path in enumerate(paths)})
        blocks.append(embeddings)
        offset += len(paths)

    missing = sorted({(i.image.image_set, i.image.path) for i in items} - rows.keys())
    if missing:
        raise ValueError(
            f"{len(missing)} images of the items are not in the embedding files, first: {missing[:MAX_LISTED]}; "
            "rerun list-images and embed-images for those sets")
    return torch.cat(blocks), [rows[(i.image.image_set, i.image.path)] for i in items]


def embed_crops(items: Sequence[Item], loaded, set_root: Path, batch_size: int, workers: int,
                device: str) -> tuple[torch.Tensor, list[int]]:
    """Embed each distinct (image, crop box) of the items; return (embeddings, row of each item)."""
    keys = list(dict.fromkeys((item.image.path, item.image.box) for item in items))
    first_ref = {}
    for item in items:
        first_ref.setdefault((item.image.path, item.image.box), item.image)
    files = [resolve_image(first_ref[key], set_root) for key in keys]
    missing = [key[0] for key, path in zip(keys, files) if path is None]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} CREPE images are missing under {set_root}, first: {missing[:MAX_LISTED]} "
            "(VG_100K_2 was tried too). Check config eval.image_roots.visual_genome.")
    log.info("embedding %d crops of %d images", len(keys), len({k[0] for k in keys}))
    dataset = ImageFiles(files, loaded.preprocess, [key[1] for key in keys])
    embeddings = embed_images(loaded.model, dataset, batch_size, workers, device)
    index = {key: row for row, key in enumerate(keys)}
    return embeddings, [index[(item.image.path, item.image.box)] for item in items]


def score_pairs(queries: torch.Tensor, candidates: torch.Tensor, query_rows: list[int],
                candidate_rows: list[int]) -> torch.Tensor:
    """Dot products of the given row pairs in float32: the cosine similarity of normalised rows."""
    query_index = torch.tensor(query_rows, dtype=torch.long)
    candidate_index = torch.tensor(candidate_rows, dtype=torch.long)
    scores = []
    for start in range(0, len(query_rows), SCORE_CHUNK):
        q = queries[query_index[start:start + SCORE_CHUNK]]
        c = candidates[candidate_index[start:start + SCORE_CHUNK]]
        scores.append((q * c).sum(dim=-1))
    return torch.cat(scores) if scores else torch.empty(0)


def build_score_table(items: Sequence[Item], benchmark: str, image_rows: list[int], image_embeddings: torch.Tensor,
                      text_embeddings: torch.Tensor, text_rows: dict[str, int]) -> pa.Table:
    """Score every (item, query, candidate) into a table laid out as the `scoring` module describes."""
    columns: dict[str, list] = {"item_id": [], "subset": [], "query": [], "candidate": []}
    query_rows, candidate_rows = [], []
    n_images = image_embeddings.shape[0]

    def add(item: Item, query: str, query_row: int, texts: Sequence[str]) -> None:
        for candidate, text in enumerate(texts):
            columns["item_id"].append(item.item_id)
            columns["subset"].append(item.subset)
            columns["query"].append(query)
            columns["candidate"].append(candidate)
            query_rows.append(query_row)
            candidate_rows.append(text_rows[text])

    for item, image_row in zip(items, image_rows):
        add(item, scoring.IMAGE_QUERY, image_row, item.texts)
        if benchmark == "sugarcrepe_pp":
            # Text-only scores: each positive against the other texts, in order (gold = the other positive).
            p1, p2, negative = item.texts
            add(item, "P1", n_images + text_rows[p1], (p2, negative))
            add(item, "P2", n_images + text_rows[p2], (p1, negative))

    queries = torch.cat([image_embeddings, text_embeddings])
    scores = score_pairs(queries, text_embeddings, query_rows, candidate_rows)
    return pa.table({**columns, "score": scores.numpy()}, schema=scoring.SCORE_SCHEMA)


def summarise(scores: pd.DataFrame, benchmark: str, tie_policy: str) -> dict:
    """Compute per-subset results and both protocols' aggregates, all in percent, from the score table."""
    results = scoring.subset_results(scores, benchmark, tie_policy)
    per_subset = {name: aggregate.SubsetScore(r.accuracy, r.items) for name, r in results.items()}
    summary = {
        "subsets": {name: r.to_dict() for name, r in results.items()},
        "headline": aggregate.read_clip_protocol(benchmark, per_subset),
        "vl_compo": aggregate.vl_compo_protocol(benchmark, per_subset),
    }
    if benchmark == "sugarcrepe":
        summary["pooled"] = aggregate.pooled(per_subset)
    summary["missing_subsets"] = aggregate.missing_subsets(benchmark, per_subset)
    return summary


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", required=True, choices=BENCHMARKS, help="Benchmark to score.")
    parser.add_argument("--model-dir", required=True, help="Model directory written by save_model_dir.")
    parser.add_argument("--data-root", required=True, help="Data root holding the benchmark folders (config data.root).")
    parser.add_argument("--settings", required=True, help="The config's eval section as JSON.")
    parser.add_argument("--embeddings", nargs="*", default=[], metavar="SET=FILE",
                        help="Image embedding files from embed-images, one per image set the benchmark reads.")
    parser.add_argument("--model-name", required=True, help="Model name recorded in the summary.")
    parser.add_argument("--out-scores", required=True, help="Parquet file of per-item scores to write.")
    parser.add_argument("--out-summary", required=True, help="Summary JSON to write.")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for CREPE's crops.")
    parser.add_argument("--device", default=default_device(), help="Torch device (default: cuda when available, else cpu).")


def main(args: argparse.Namespace) -> int:
    from read_clip.models.clip import load_model_dir

    settings = parse_settings(args.settings)
    tie_policy, batch_size = settings["tie_policy"], settings["batch_size"]
    scoring.check_tie_policy(tie_policy)
    data = load_benchmark(args.benchmark, benchmark_folder(args.data_root, args.benchmark), settings["valse_datasets"])
    if data.absent:
        log.warning("%s: %d expected files are absent and not scored: %s", args.benchmark, len(data.absent), data.absent)
    log.info("%s: %d items in subsets %s", args.benchmark, len(data.items), data.subset_counts())

    loaded = load_model_dir(args.model_dir, device=args.device)
    text_embeddings, text_rows = embed_item_texts(data.items, loaded, batch_size, args.device)

    if args.benchmark == "crepe":
        set_root = Path(args.data_root) / settings["image_roots"][CREPE_IMAGE_SET]
        image_embeddings, image_rows = embed_crops(data.items, loaded, set_root, batch_size, args.workers, args.device)
    else:
        image_embeddings, image_rows = lookup_image_rows(data.items, parse_embedding_files(args.embeddings))

    table = build_score_table(data.items, args.benchmark, image_rows, image_embeddings, text_embeddings, text_rows)
    write_parquet(args.out_scores, table)
    summary = {"benchmark": args.benchmark, "model": args.model_name, "tie_policy": tie_policy,
               **summarise(table.to_pandas(), args.benchmark, tie_policy),
               "absent_files": data.absent, "settings": settings, "package_versions": package_versions()}
    write_json(args.out_summary, summary)
    log.info("%s on %s: headline %s, vl_compo %s", args.model_name, args.benchmark, summary["headline"], summary["vl_compo"])
    return 0
