"""Measure benchmark scoring throughput, embedding each image once against once per item.

    python -m read_clip.perf.eval_speed [--images N] [--image-size WxH] [--batch-size B] [--repeats R]

It writes a synthetic data set in SugarCrepe's layout into a temporary folder. Like the real
benchmark, it has 7,511 items over the 7 subsets (with their upstream counts) on 1,560 distinct
JPEG images. It then scores it with a random-weight `readclip-tiny` model through the code
`evaluate` runs, once as `evaluate` does (each distinct image embedded once) and once embedding
every item's image separately. The texts and score computation are the same in both runs, so
their difference is the image step alone.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from read_clip.benchmarks import run
from read_clip.benchmarks.embed import ImageFiles, embed_images
from read_clip.benchmarks.evaluate import embed_item_images
from read_clip.benchmarks.loaders import load_benchmark
from read_clip.benchmarks.sugarcrepe import IMAGE_SET
from read_clip.io import write_json
from read_clip.models.clip import create_clip

# Items per subset of the released SugarCrepe files (7,511 in all).
SUBSET_ITEMS = {"add_att": 692, "add_obj": 2062, "replace_att": 788, "replace_obj": 1652,
                "replace_rel": 1406, "swap_att": 666, "swap_obj": 245}
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
SHAPES = ["circle", "square", "triangle", "star", "ring", "cross"]
RELATIONS = ["left of", "right of", "above", "below", "next to"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1560, help="Distinct images (SugarCrepe has 1,560).")
    parser.add_argument("--image-size", default="640x480",
                        help="Width x height of the JPEGs in pixels; 640x480 is a common COCO size.")
    parser.add_argument("--batch-size", type=int, default=256, help="Images or texts per forward pass.")
    parser.add_argument("--threads", type=int, default=None, help="Torch CPU threads (default: torch's choice).")
    parser.add_argument("--repeats", type=int, default=1, help="Timed runs of each kind; the fastest counts.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic data and model weights.")
    return parser.parse_args(argv)


def caption(rng: random.Random) -> str:
    first, second = rng.sample(SHAPES, 2)
    return f"a {rng.choice(COLOURS)} {first} {rng.choice(RELATIONS)} a {rng.choice(COLOURS)} {second}"


def write_data(root: Path, images: int, size: tuple[int, int], rng: random.Random) -> None:
    """Write `images` JPEGs and SugarCrepe's 7 subset files, every image used by at least one item."""
    folder = root / "coco" / "val2017"
    folder.mkdir(parents=True)
    names = [f"{index:012d}.jpg" for index in range(images)]
    for name in names:
        image = Image.new("RGB", size, rng.choice(COLOURS))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = rng.randrange(size[0] - 60), rng.randrange(size[1] - 60)
            draw.ellipse((x, y, x + 60, y + 60), fill=rng.choice(COLOURS))
        image.save(folder / name, quality=90)

    total = sum(SUBSET_ITEMS.values())
    filenames = [names[i % images] for i in range(total)]
    rng.shuffle(filenames)
    (root / "sugarcrepe").mkdir()
    start = 0
    for subset, count in SUBSET_ITEMS.items():
        items = {str(i): {"filename": filenames[start + i], "caption": caption(rng), "negative_caption": caption(rng)}
                 for i in range(count)}
        write_json(root / "sugarcrepe" / f"{subset}.json", items)
        start += count


def score(data, loaded, images: tuple, batch_size: int) -> tuple[dict, dict[str, float]]:
    """Score the items from the given image embeddings; return (summary, seconds per step)."""
    image_embeddings, image_rows, image_seconds = images
    start = time.perf_counter()
    text_embeddings, text_rows = run.embed_item_texts(data.items, loaded, batch_size, "cpu")
    text_seconds = time.perf_counter() - start

    start = time.perf_counter()
    table = run.build_score_table(data.items, "sugarcrepe", image_rows, image_embeddings, text_embeddings, text_rows)
    summary = run.summarise(table.to_pandas(), "sugarcrepe", "argmax")
    score_seconds = time.perf_counter() - start
    return summary, {"images": image_seconds, "texts": text_seconds, "scores": score_seconds}


def images_once(data, loaded, root: Path, batch_size: int) -> tuple:
    start = time.perf_counter()
    embeddings, rows = embed_item_images(data.items, loaded, {IMAGE_SET: root / "coco" / "val2017"},
                                         batch_size, 0, "cpu", {})
    return embeddings, rows, time.perf_counter() - start


def images_per_item(data, loaded, root: Path, batch_size: int) -> tuple:
    start = time.perf_counter()
    files = [root / "coco" / "val2017" / item.image.path for item in data.items]
    embeddings = embed_images(loaded.model, ImageFiles(files, loaded.preprocess), batch_size, 0, "cpu")
    return embeddings, list(range(len(files))), time.perf_counter() - start


def report(label: str, items: int, seconds: dict[str, float]) -> None:
    total = sum(seconds.values())
    steps = ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())
    print(f"{label:<28}{total:7.1f} s  {items / total:8.1f} items/s  ({steps})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    width, _, height = args.image_size.partition("x")
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    loaded = create_clip("readclip-tiny")
    loaded.model.eval()

    with tempfile.TemporaryDirectory(prefix="eval_speed_") as folder:
        root = Path(folder)
        start = time.perf_counter()
        write_data(root, args.images, (int(width), int(height)), rng)
        data = load_benchmark("sugarcrepe", root / "sugarcrepe")
        print(f"wrote {len(data.items):,} items on {args.images:,} {args.image_size} JPEGs in "
              f"{time.perf_counter() - start:.1f} s; readclip-tiny on the CPU, {torch.get_num_threads()} threads, "
              f"batch {args.batch_size}")

        # Runs alternate and the fastest time of each step counts, because other processes slow
        # single runs. Texts and scores are the same work in both kinds, so both kinds share the
        # fastest of those times; only the image step differs.
        runs = {"each image embedded once": images_once, "each item embeds its image": images_per_item}
        times = {label: {"images": [], "texts": [], "scores": []} for label in runs}
        summaries = {}
        for _ in range(args.repeats):
            for label, embed in runs.items():
                summaries[label], seconds = score(data, loaded, embed(data, loaded, root, args.batch_size),
                                                  args.batch_size)
                for step, value in seconds.items():
                    times[label][step].append(value)

    shared = {step: min(value for label in runs for value in times[label][step]) for step in ("texts", "scores")}
    best = {label: {"images": min(times[label]["images"]), **shared} for label in runs}
    for label, seconds in best.items():
        report(label, len(data.items), seconds)
    once, per_item = list(runs)
    same = summaries[once]["subsets"] == summaries[per_item]["subsets"]
    overall = sum(best[per_item].values()) / sum(best[once].values())
    print(f"speed-up of embedding each image once: {overall:.2f}x overall, "
          f"{best[per_item]['images'] / best[once]['images']:.2f}x on the image step; "
          f"accuracies identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
