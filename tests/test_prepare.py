"""prepare-images and report-leakage: pixel values of the shards, and overlap counts on real files."""

import json
import shutil

import numpy as np
import open_clip
import pyarrow as pa
import pytest
import yaml
from PIL import Image

from read_clip.cli import main
from read_clip.config import REPO_ROOT
from read_clip.data.leakage import coco_id
from read_clip.data.prepare import _decode, load_square_rgb, shard_bounds, summarize
from read_clip.io import write_parquet


def save(image: Image.Image, path, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=95, **options)
    return path


# --- decoding ----------------------------------------------------------------------------------

def test_geometry_matches_open_clip(tmp_path):
    """Resize and crop equal the first two steps of open_clip's evaluation transform."""
    pixels = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(pixels).save(path)
    transform = open_clip.image_transform(32, is_train=False)
    expected = Image.open(path).convert("RGB")
    for step in transform.transforms[:2]:
        expected = step(expected)
    assert np.array_equal(load_square_rgb(path, 32), np.asarray(expected))


def test_portrait_cropped_centre(tmp_path):
    """A 40x80 image, red top quarter, green middle half, blue bottom quarter: the crop is the green."""
    image = Image.new("RGB", (40, 80), (0, 255, 0))
    image.paste((255, 0, 0), (0, 0, 40, 20))
    image.paste((0, 0, 255), (0, 60, 40, 80))
    array = load_square_rgb(save(image, tmp_path / "portrait.png"), 10)
    assert array.shape == (10, 10, 3)
    assert np.abs(array[5, 5].astype(int) - [0, 255, 0]).max() <= 3
    assert array[..., 0].max() < 128
    assert array[..., 2].max() < 128


def test_greyscale_becomes_rgb(tmp_path):
    array = load_square_rgb(save(Image.new("L", (30, 20), 90), tmp_path / "grey.jpg"), 16)
    assert array.shape == (16, 16, 3)
    assert np.abs(array.astype(int) - 90).max() <= 1


def test_cmyk_becomes_rgb(tmp_path):
    array = load_square_rgb(save(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), tmp_path / "cmyk.jpg"), 8)
    assert np.abs(array[4, 4].astype(int) - [255, 0, 0]).max() <= 3


def test_truncated_reported(tmp_path):
    path = save(Image.new("RGB", (64, 64), (10, 20, 30)), tmp_path / "whole.jpg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(path.read_bytes()[:300])
    array, error = _decode(truncated, 16)
    assert array is None
    assert error.startswith("OSError")


def test_shard_bounds_partition():
    bounds = [shard_bounds(10, shard, 3) for shard in range(3)]
    assert bounds == [(0, 3), (3, 6), (6, 10)]


def test_shard_outside_range_rejected():
    with pytest.raises(ValueError, match="outside 0..2"):
        shard_bounds(10, 3, 3)


# --- shards ------------------------------------------------------------------------------------

def karpathy(tmp_path, ids, split="train"):
    images = [{"filepath": "train2014", "filename": f"COCO_train2014_{i:012d}.jpg", "cocoid": i,
               "split": split, "sentences": [{"raw": f"caption {i}", "sentid": i}]} for i in ids]
    path = tmp_path / "coco" / "dataset_coco.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images}))
    return path


def test_missing_image_fails(tmp_path):
    path = karpathy(tmp_path, [1, 2])
    save(Image.new("RGB", (8, 8)), tmp_path / "coco" / "train2014" / "COCO_train2014_000000000001.jpg")
    settings = json.dumps({"seed": 0, "train_splits": ["train"], "max_train_images": None, "image_size": 8})
    with pytest.raises(FileNotFoundError, match="1 of 2 training images"):
        main(["prepare-images", "shard", "--karpathy", str(path), "--settings", settings, "--shard", "0",
              "--shards", "1", "--out-images", str(tmp_path / "s.npy"), "--out-index", str(tmp_path / "s.parquet")])
    assert not (tmp_path / "s.npy").exists()


def test_shard_follows_sample_cap(tmp_path):
    """The shard contains the capped, id-sorted selection that every other stage trains on."""
    path = karpathy(tmp_path, [5, 3, 9, 7])
    for image_id in (3, 5, 7, 9):
        save(Image.new("RGB", (12, 12), (image_id * 20, 0, 0)),
             tmp_path / "coco" / "train2014" / f"COCO_train2014_{image_id:012d}.jpg")
    settings = json.dumps({"seed": 1, "train_splits": ["train"], "max_train_images": 2, "image_size": 12})
    main(["prepare-images", "shard", "--karpathy", str(path), "--settings", settings, "--shard", "0",
          "--shards", "1", "--threads", "2", "--out-images", str(tmp_path / "s.npy"),
          "--out-index", str(tmp_path / "s.parquet")])
    index = pa.parquet.read_table(tmp_path / "s.parquet").to_pylist()
    ids = [row["image_id"] for row in index]
    assert len(ids) == 2
    assert ids == sorted(ids)
    reds = np.load(tmp_path / "s.npy")[:, 6, 6, 0].astype(int)
    assert np.abs(reds - [image_id * 20 for image_id in ids]).max() <= 3


def test_summary_mismatch_named(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((2, 4, 4, 3), dtype=np.uint8))
    write_parquet(tmp_path / "s.parquet", pa.table({
        "image_id": pa.array([1], pa.int64()), "path": ["a.jpg"], "row": pa.array([0], pa.int32()),
        "error": pa.array([None], pa.string())}))
    with pytest.raises(ValueError, match="has 2 images but"):
        summarize([tmp_path / "s.npy"], [tmp_path / "s.parquet"])


# --- leakage -----------------------------------------------------------------------------------

def test_coco_id_parsed():
    assert coco_id("COCO_val2014_000000085329.jpg") == 85329
    assert coco_id("000000397133.jpg") == 397133


@pytest.fixture
def leakage_root(tmp_path, annotations_dir):
    """Real SugarCrepe files and two real VALSE pieces (COCO 2017 plurals, Visual7W existence)."""
    root = tmp_path / "data"
    shutil.copytree(annotations_dir / "sugarcrepe", root / "sugarcrepe")
    (root / "valse").mkdir(parents=True)
    for piece in ("plurals", "existence"):
        shutil.copy(annotations_dir / "valse" / f"{piece}.json", root / "valse" / f"{piece}.json")
    return root


def test_leakage_counts_real_files(tmp_path, leakage_root, annotations_dir):
    add_att = json.loads((annotations_dir / "sugarcrepe" / "add_att.json").read_text())
    names = list(dict.fromkeys(item["filename"] for item in add_att.values()))[:3]
    plurals = json.loads((annotations_dir / "valse" / "plurals.json").read_text())
    valid = next(item for item in plurals.values() if item["mturk"]["caption"] >= 2)

    # Two add_att images and one plurals image in the training split; one add_att image in "test".
    train_ids = [coco_id(names[0]), coco_id(names[1]), coco_id(valid["image_file"]), 999_999_999]
    images = [{"filepath": "train2014", "filename": f"COCO_train2014_{i:012d}.jpg", "cocoid": i,
               "split": "train", "sentences": [{"raw": "x", "sentid": n}]} for n, i in enumerate(train_ids)]
    images.append({"filepath": "val2014", "filename": "x.jpg", "cocoid": coco_id(names[2]), "split": "test",
                   "sentences": [{"raw": "x", "sentid": 99}]})
    karpathy_json = tmp_path / "dataset_coco.json"
    karpathy_json.write_text(json.dumps({"images": images}))

    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    settings = {"seed": 0, "train_splits": ["train", "restval"], "max_train_images": None,
                "benchmarks": ["sugarcrepe", "valse"], "image_roots": config["eval"]["image_roots"],
                "valse_datasets": config["eval"]["valse_datasets"]}
    out = tmp_path / "leakage"
    assert main(["report-leakage", "--karpathy", str(karpathy_json), "--data-root", str(leakage_root),
                 "--settings", json.dumps(settings), "--out-json", str(out / "leakage.json"),
                 "--out-markdown", str(out / "leakage.md")]) == 0
    report = json.loads((out / "leakage.json").read_text())

    row = report["benchmarks"]["sugarcrepe"]["add_att"]
    expected_items = sum(1 for item in add_att.values() if item["filename"] in names[:2])
    assert row["items"] == len(add_att)
    assert row["coco_images_in_training"] == 2
    assert row["items_with_training_image"] == expected_items
    assert row["training_images_by_split"] == {"train": 2}
    assert report["benchmarks"]["valse"]["plurals"]["items"] == 851
    assert report["benchmarks"]["valse"]["plurals"]["coco_images_in_training"] == 1
    assert report["benchmarks"]["valse"]["existence"]["items_with_coco_image"] == 0
    assert report["training"]["images"] == 4
    assert "| sugarcrepe | add_att | 692 |" in (out / "leakage.md").read_text()
