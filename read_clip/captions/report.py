"""`read-clip gather-captions`: check the caption shards and summarise them in one JSON report."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from read_clip.captions import NEGATIVES_SCHEMA, PARAPHRASE_SOURCES, PARAPHRASES_SCHEMA
from read_clip.io import write_json

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--negatives", nargs="+", required=True, help="Negatives Parquet shards.")
    parser.add_argument("--paraphrases", nargs="+", required=True,
                        help="Paraphrase Parquet files (sibling shards and any generated ones).")
    parser.add_argument("--out", required=True, help="JSON report to write.")


def read_shards(paths: Sequence[str | Path], schema: pa.Schema, kind: str) -> pa.Table:
    """Concatenate Parquet files of one `kind`; raise ValueError naming a file without `schema`."""
    tables = []
    for path in paths:
        table = pq.read_table(path)
        if not table.schema.equals(schema):
            raise ValueError(
                f"{path}: {kind} schema\n{table.schema}\ndiffers from the expected\n{schema}\n"
                f"Rerun the step that wrote it with this version of read-clip.")
        tables.append(table)
    return pa.concat_tables(tables) if tables else schema.empty_table()


def check_unique_captions(negatives: pa.Table) -> None:
    """Raise ValueError when a caption id occurs in more than one row (overlapping shards)."""
    caption_ids = negatives["caption_id"]
    if pc.count_distinct(caption_ids).as_py() != len(caption_ids):
        counts = pc.value_counts(caption_ids)
        repeated = [item["values"] for item in counts.to_pylist() if item["counts"] > 1][:5]
        raise ValueError(
            f"caption ids {repeated} occur in more than one negatives row: the shards overlap. "
            f"Pass each shard of one run once.")


def pool_size_summary(negatives: pa.Table) -> dict:
    """Return mean, min, max and histogram (size -> captions) of the pool sizes."""
    sizes = pc.list_value_length(negatives["negatives"])
    if len(sizes) == 0:
        return {"mean": None, "min": None, "max": None, "histogram": {}}
    counts = sorted((item["values"], item["counts"]) for item in pc.value_counts(sizes).to_pylist())
    return {
        "mean": pc.mean(sizes).as_py(),
        "min": pc.min(sizes).as_py(),
        "max": pc.max(sizes).as_py(),
        "histogram": {str(size): count for size, count in counts},
    }


def images_without_paraphrase(negatives: pa.Table, paraphrases: pa.Table) -> int:
    """Count images of `negatives` whose paraphrase rows contain fewer than 2 distinct texts.

    No caption of such an image has a paraphrase that differs from it.
    """
    distinct = (paraphrases.to_pandas().groupby("image_id")["text"].nunique()
                if paraphrases.num_rows else {})
    images = set(negatives["image_id"].to_pylist())
    return sum(1 for image_id in images if distinct.get(image_id, 0) < 2)


def generated_captions(paraphrases: pa.Table) -> int:
    """Count the distinct caption ids of the rows with source "generated"."""
    generated = paraphrases.filter(pc.equal(paraphrases["source"], "generated"))
    return pc.count_distinct(generated["caption_id"]).as_py()


def caption_report(negatives: pa.Table, paraphrases: pa.Table) -> dict:
    """Summarise the concatenated shards: counts, pool sizes, fallbacks and paraphrase rows."""
    check_unique_captions(negatives)
    captions = negatives.num_rows
    fallbacks = pc.sum(negatives["fallback"]).as_py() or 0
    sources = {source: 0 for source in PARAPHRASE_SOURCES}
    for item in pc.value_counts(paraphrases["source"]).to_pylist():
        sources[item["values"]] = item["counts"]
    return {
        "captions": captions,
        "images": pc.count_distinct(negatives["image_id"]).as_py(),
        "pool_size": pool_size_summary(negatives),
        "fallback": {"count": fallbacks, "share": fallbacks / captions if captions else None},
        "paraphrase_rows": sources,
        # Captions with at least one model-written paraphrase. The generator drops outputs that
        # are empty or repeat the caption, so this count can be below the number of captions.
        "captions_with_generated": generated_captions(paraphrases),
        "images_without_paraphrase": images_without_paraphrase(negatives, paraphrases),
    }


def main(args: argparse.Namespace) -> int:
    negatives = read_shards(args.negatives, NEGATIVES_SCHEMA, "negatives")
    paraphrases = read_shards(args.paraphrases, PARAPHRASES_SCHEMA, "paraphrases")
    report = caption_report(negatives, paraphrases)
    report["shards"] = {"negatives": len(args.negatives), "paraphrases": len(args.paraphrases)}
    logger.info("%d captions of %d images, mean pool size %s, %d fallbacks",
                report["captions"], report["images"], report["pool_size"]["mean"],
                report["fallback"]["count"])
    write_json(args.out, report)
    return 0
