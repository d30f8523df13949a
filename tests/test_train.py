"""Training on a tiny data set written here: one step against a hand computation, and full runs."""

import argparse
import copy
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from read_clip import cli
from read_clip.config import ConfigError
from read_clip.io import write_parquet
from read_clip.models.clip import create_clip, save_model_dir
from read_clip.models.decoder import IGNORE_INDEX, build_decoder, make_bridge, make_t5_config, save_decoder_dir
from read_clip.train.data import TrainingDataError, read_negatives, read_targets
from read_clip.train.finetune import build_run, check_settings, run_batches
from read_clip.train.loop import run_training

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220),
           "yellow": (230, 220, 30), "purple": (150, 30, 180), "grey": (128, 128, 128)}
SHAPES = ["circle", "square", "triangle", "star", "circle", "square"]
NEGATIVES_PER_CAPTION = 3
# Pool size of each image's 1st, 2nd and 3rd caption: sampling k = 3 uses replacement only
# for pools smaller than 3.
POOL_SIZES = (1, 2, 4)
TRAIN = {"batch_size": 4, "epochs": 1, "lr": 1e-3, "warmup_steps": 1, "weight_decay": 0.1,
         "betas": [0.9, 0.999], "eps": 1e-8, "grad_clip_norm": 1.0,
         "negatives_per_caption": NEGATIVES_PER_CAPTION, "log_every": 1, "checkpoint_every": 0,
         "grad_checkpointing": False, "allow_cpu": True, "loader_workers": 0}
READ_CLIP_WEIGHTS = {"neg": 1.0, "rec": 0.1, "align": 0.5}


def image_captions(colour, shape):
    return [f"a {colour} {shape}", f"one {shape} that is {colour}", f"a {colour} {shape} on grey"]


def write_tokenizer(captions, directory):
    """A word-level tokenizer with T5's ids: <pad> 0, </s> 1, <unk> 2."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for c in captions for w in c.split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")
    fast.save_pretrained(directory)
    return fast


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six 64 px images with 3 captions each, every table the trainer reads, and the models."""
    root = tmp_path_factory.mktemp("data")
    (root / "coco" / "train2014").mkdir(parents=True)
    records, negatives, paraphrases, all_captions = [], [], [], []
    for index, (colour, shape) in enumerate(zip(COLOURS, SHAPES)):
        image_id = 100 + index
        filename = f"COCO_train2014_{image_id:012d}.jpg"
        Image.new("RGB", (64, 64), COLOURS[colour]).save(root / "coco" / "train2014" / filename, quality=95)
        captions = image_captions(colour, shape)
        sentences = [{"raw": c, "sentid": image_id * 10 + j} for j, c in enumerate(captions)]
        records.append({"filepath": "train2014", "filename": filename, "cocoid": image_id,
                        "split": "train", "sentences": sentences})
        for position, sentence in enumerate(sentences):
            other = "blue" if colour != "blue" else "red"
            candidates = [sentence["raw"].replace(colour, other), f"a {other} {shape}",
                          f"a {colour} cube", f"no {shape}"]
            pool = candidates[:POOL_SIZES[position]]
            negatives.append((image_id, sentence["sentid"], sentence["raw"], pool, False))
            paraphrases.append((image_id, sentence["sentid"], sentence["raw"], "sibling"))
        all_captions += captions
    karpathy = root / "coco" / "dataset_coco.json"
    karpathy.write_text(json.dumps({"images": records}), encoding="utf-8")

    negative_rows = list(zip(*negatives))
    negatives_schema = pa.schema([("image_id", pa.int64()), ("caption_id", pa.int64()), ("caption", pa.string()),
                                  ("negatives", pa.list_(pa.string())), ("fallback", pa.bool_())])
    shards = []
    for shard in range(2):
        table = pa.table([list(col[shard::2]) for col in negative_rows], schema=negatives_schema)
        write_parquet(root / f"negatives_{shard}.parquet", table)
        shards.append(root / f"negatives_{shard}.parquet")
    paraphrase_schema = pa.schema([("image_id", pa.int64()), ("caption_id", pa.int64()),
                                   ("text", pa.string()), ("source", pa.string())])
    write_parquet(root / "paraphrases.parquet",
                  pa.table([list(c) for c in zip(*paraphrases)], schema=paraphrase_schema))

    tokenizer = write_tokenizer(all_captions, root / "tokenizer")
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] + [1] for c in all_captions]
    targets_schema = pa.schema([("image_id", pa.int64()), ("caption_id", pa.int64()),
                                ("input_ids", pa.list_(pa.int32()))])
    caption_ids = [s[1] for s in negatives]
    write_parquet(root / "targets.parquet", pa.table(
        [[s[0] for s in negatives], caption_ids, ids], schema=targets_schema))

    torch.manual_seed(5)
    base = create_clip("readclip-tiny")
    save_model_dir(base.model, "readclip-tiny", root / "base")
    decoder = build_decoder(make_t5_config(
        {"d_model": 32, "d_ff": 64, "num_heads": 2, "d_kv": 16, "num_decoder_layers": 2}, len(tokenizer)))
    save_decoder_dir(decoder, make_bridge(128, 32), root / "decoder")
    return {"root": root, "karpathy": karpathy, "negatives": shards,
            "paraphrases": [root / "paraphrases.parquet"], "targets": root / "targets.parquet",
            "tokenizer": root / "tokenizer", "base": root / "base", "decoder": root / "decoder"}


def finetune_settings(weights=READ_CLIP_WEIGHTS, **train):
    return {"seed": 7, "train_splits": ["train"], "max_train_images": None,
            "train": {**TRAIN, **train}, "weights": dict(weights)}


def finetune_args(dataset, out, variant="read_clip", decoder=None):
    return argparse.Namespace(
        variant=variant, base_model=dataset["base"], decoder=decoder or dataset["decoder"],
        karpathy=dataset["karpathy"], negatives=dataset["negatives"], paraphrases=dataset["paraphrases"],
        targets=dataset["targets"], tokenizer=dataset["tokenizer"], out=out, device="cpu", threads=None,
        image_shards=[], image_indexes=[], checkpoints=None, gpus=0)


def finetune_argv(dataset, out, settings, variant="read_clip", decoder=None):
    return ["finetune", "--variant", variant, "--settings", json.dumps(settings),
            "--base-model", str(dataset["base"]), "--decoder", str(decoder or dataset["decoder"]),
            "--karpathy", str(dataset["karpathy"]),
            "--negatives", *map(str, dataset["negatives"]), "--paraphrases", *map(str, dataset["paraphrases"]),
            "--targets", str(dataset["targets"]), "--tokenizer", str(dataset["tokenizer"]), "--out", str(out)]


def cross_entropy_rows(logits, targets):
    """Mean of logsumexp(row) - row[target], written out rather than F.cross_entropy."""
    picked = logits.gather(1, targets.view(-1, 1)).squeeze(1)
    return (torch.logsumexp(logits, dim=1) - picked).mean()


def expected_terms(clip, decoder, bridge, batch):
    """Recompute the three loss terms with open_clip's own encoders and explicit formulas."""
    with torch.no_grad():
        captured = {}
        hook = clip.ln_final.register_forward_hook(lambda m, a, out: captured.update(x=out))
        text = clip.encode_text(batch.text_tokens)  # full context, no trimming
        hook.remove()
        pooled = captured["x"][torch.arange(len(batch.texts)), batch.text_tokens.argmax(dim=-1)]
        text = text / text.norm(dim=-1, keepdim=True)
        image = clip.encode_image(batch.images)
        image = image / image.norm(dim=-1, keepdim=True)
        scale = clip.logit_scale.exp()
        size = batch.size
        targets = torch.arange(size)

        anchors = text[batch.anchor_index]
        all_texts = torch.cat([anchors, text[batch.negative_index]])
        image_to_text = cross_entropy_rows(scale * image @ all_texts.T, targets)
        text_to_image = cross_entropy_rows(scale * anchors @ image.T, targets)
        neg = (image_to_text + text_to_image) / 2

        align = cross_entropy_rows(scale * text[batch.paraphrase_index] @ anchors.T, targets)

        labels = batch.target_labels
        inputs = torch.cat([torch.zeros(size, 1, dtype=torch.int64), labels[:, :-1]], dim=1).clamp(min=0)
        states = (pooled[batch.anchor_index] @ bridge.weight.T).unsqueeze(1)
        hidden = decoder.stack(input_ids=inputs, encoder_hidden_states=states, use_cache=False).last_hidden_state
        logits = decoder.lm_head(hidden * decoder.config.d_model ** -0.5)
        keep = labels != IGNORE_INDEX
        flat = logits[keep]
        rec = (torch.logsumexp(flat, dim=1) - flat.gather(1, labels[keep].view(-1, 1)).squeeze(1)).mean()
    total = neg + 0.1 * rec + 0.5 * align
    return {"neg_loss": neg.item(), "rec_loss": rec.item(), "align_loss": align.item(), "loss": total.item()}


def test_one_step_matches_hand(dataset, tmp_path):
    run = build_run(finetune_settings(), finetune_args(dataset, tmp_path))
    batch = next(run_batches(run, 0))
    clip_before = copy.deepcopy(run.objective.clip)
    bridge_before = copy.deepcopy(run.objective.reconstruction.bridge)
    decoder = run.objective.reconstruction.decoder
    decoder_before = {k: v.clone() for k, v in decoder.state_dict().items()}

    records = run_training(run.objective, run.optimizer, run.scheduler, iter([batch]),
                           run.loop, tmp_path / "metrics.jsonl")
    expected = expected_terms(clip_before, decoder, bridge_before, batch)

    for name, value in expected.items():
        assert abs(records[0][name] - value) < 1e-5, name
    assert not torch.equal(clip_before.logit_scale, run.objective.clip.logit_scale)
    assert not torch.equal(bridge_before.weight, run.objective.reconstruction.bridge.weight)
    assert all(torch.equal(decoder_before[k], v) for k, v in decoder.state_dict().items())


def test_batch_draws_follow_rules(dataset, tmp_path):
    run = build_run(finetune_settings(), finetune_args(dataset, tmp_path))
    batch = next(run_batches(run, 0))
    pools = {}
    for path in dataset["negatives"]:
        table = pq.read_table(path).to_pylist()
        pools.update({row["caption"]: row["negatives"] for row in table})
    by_image = {image.image_id: [c.text for c in image.captions] for image in run.sampler.images}

    assert batch.images.shape == (4, 3, 64, 64)
    assert batch.negative_index.shape == (4 * NEGATIVES_PER_CAPTION,)
    assert len(set(batch.texts)) == len(batch.texts)
    for row, image_id in enumerate(batch.image_ids.tolist()):
        anchor = batch.texts[batch.anchor_index[row]]
        paraphrase = batch.texts[batch.paraphrase_index[row]]
        negatives = [batch.texts[i] for i in batch.negative_index[row * 3:(row + 1) * 3]]
        assert anchor in by_image[image_id]
        assert paraphrase in by_image[image_id]
        assert paraphrase != anchor
        assert all(n in pools[anchor] for n in negatives)
        target = [t for t in batch.target_labels[row].tolist() if t != IGNORE_INDEX]
        assert target[-1] == 1


def test_negatives_without_replacement(dataset, tmp_path):
    # Pools of 4 give 3 distinct negatives; pools of 1 repeat their one negative.
    run = build_run(finetune_settings(), finetune_args(dataset, tmp_path))
    position_of = {c.text: i for image in run.sampler.images for i, c in enumerate(image.captions)}
    seen = {1: 0, 4: 0}
    for batch in run.sampler.batches(4, 20):
        for row in range(4):
            drawn = {batch.texts[i] for i in batch.negative_index[row * 3:(row + 1) * 3]}
            pool_size = POOL_SIZES[position_of[batch.texts[batch.anchor_index[row]]]]
            if pool_size in seen:
                assert len(drawn) == min(pool_size, 3)
                seen[pool_size] += 1
    assert seen[1] > 0
    assert seen[4] > 0


def test_finetune_command_outputs(dataset, tmp_path):
    settings = finetune_settings(epochs=2)
    assert cli.main(finetune_argv(dataset, tmp_path / "a", settings)) == 0
    out = tmp_path / "a"
    for name in ["model.safetensors", "model.json", "metrics.jsonl", "config.json", "versions.json"]:
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for field in ["step", "epoch", "samples_per_s", "lr", "logit_scale",
                  "neg_loss", "rec_loss", "align_loss", "loss"]:
        assert field in records[-1], field
    assert records[-1]["epoch"] == 2.0
    assert json.loads((out / "model.json").read_text())["variant"] == "read_clip"
    assert json.loads((out / "config.json").read_text())["weights"] == READ_CLIP_WEIGHTS
    assert "torch" in json.loads((out / "versions.json").read_text())


def test_finetune_same_seed_same_weights(dataset, tmp_path):
    settings = finetune_settings(epochs=2)
    for name in ["a", "b"]:
        assert cli.main(finetune_argv(dataset, tmp_path / name, settings)) == 0
    first = load_file(str(tmp_path / "a" / "model.safetensors"))
    second = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_run_seed_changes_weights(dataset, tmp_path):
    """An extra training seed reuses the data (selected by `seed`) but trains differently."""
    base = finetune_settings()
    assert cli.main(finetune_argv(dataset, tmp_path / "a", base)) == 0
    assert cli.main(finetune_argv(dataset, tmp_path / "b", {**base, "run_seed": 7})) == 0
    assert cli.main(finetune_argv(dataset, tmp_path / "c", {**base, "run_seed": 8})) == 0
    first = load_file(str(tmp_path / "a" / "model.safetensors"))
    same = load_file(str(tmp_path / "b" / "model.safetensors"))
    other = load_file(str(tmp_path / "c" / "model.safetensors"))
    assert all(torch.equal(first[k], same[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_negclip_skips_decoder(dataset, tmp_path):
    # The decoder path does not exist: a negclip run must never read it.
    settings = finetune_settings(weights={"neg": 1.0, "rec": 0.0, "align": 0.0})
    argv = finetune_argv(dataset, tmp_path / "n", settings, variant="negclip",
                         decoder=tmp_path / "no_such_decoder")
    assert cli.main(argv) == 0
    record = json.loads((tmp_path / "n" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "neg_loss" in record
    assert "rec_loss" not in record
    assert "align_loss" not in record


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("weights"), "missing ['weights']"),
    (lambda s: s.update(extra=1), "unknown ['extra']"),
    (lambda s: s["train"].pop("lr"), "missing ['lr']"),
    (lambda s: s["weights"].update(neg=0.0, rec=0.0, align=0.0), "at least one > 0"),
])
def test_settings_rejected(change, message):
    settings = finetune_settings()
    change(settings)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_settings(settings)


def test_missing_negatives_named(dataset, tmp_path):
    args = finetune_args(dataset, tmp_path)
    args.negatives = dataset["negatives"][:1]
    with pytest.raises(ValueError, match="have no hard negatives"):
        build_run(finetune_settings(), args)


def test_pretrain_commands_write_dirs(dataset, tmp_path):
    clip_settings = {"seed": 3, "architecture": "readclip-tiny", "train_splits": ["train"],
                     "max_train_images": None,
                     "run": {"steps": 3, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1}}
    assert cli.main(["pretrain-clip", "--settings", json.dumps(clip_settings), "--karpathy",
                     str(dataset["karpathy"]), "--out", str(tmp_path / "clip"), "--log-every", "1"]) == 0
    records = [json.loads(x) for x in (tmp_path / "clip" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert "contrastive_loss" in records[0]
    assert (tmp_path / "clip" / "model.safetensors").is_file()

    decoder_settings = {"seed": 3, "train_splits": ["train"], "max_train_images": None,
                        "run": {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1},
                        "decoder_config": {"d_model": 32, "d_ff": 64, "num_heads": 2, "d_kv": 16,
                                           "num_decoder_layers": 1},
                        "max_target_tokens": 4}
    assert cli.main(["pretrain-decoder", "--settings", json.dumps(decoder_settings),
                     "--base-model", str(tmp_path / "clip"), "--karpathy", str(dataset["karpathy"]),
                     "--targets", str(dataset["targets"]), "--tokenizer", str(dataset["tokenizer"]),
                     "--out", str(tmp_path / "decoder")]) == 0
    meta = json.loads((tmp_path / "decoder" / "decoder.json").read_text())
    assert meta["t5_config"]["num_decoder_layers"] == 1
    assert abs(meta["uniform_rec_loss"] - np.log(meta["t5_config"]["vocab_size"])) < 1e-9
    for name in ["decoder.safetensors", "bridge.safetensors", "metrics.jsonl", "config.json", "versions.json"]:
        assert (tmp_path / "decoder" / name).is_file(), name


def test_table_missing_column_named(tmp_path):
    path = tmp_path / "negatives.parquet"
    write_parquet(path, pa.table({"image_id": pa.array([1], pa.int64()), "caption_id": pa.array([2], pa.int64())}))
    with pytest.raises(TrainingDataError, match=r"negatives\.parquet: negatives table lacks columns \['negatives'\]"):
        read_negatives([path])


def test_target_without_eos_rejected(tmp_path):
    path = tmp_path / "targets.parquet"
    write_parquet(path, pa.table({"image_id": pa.array([1], pa.int64()), "caption_id": pa.array([2], pa.int64()),
                                  "input_ids": pa.array([[5, 6, 7]], pa.list_(pa.int32()))}))
    with pytest.raises(TrainingDataError, match="target of caption 2 does not end with eos id 1"):
        read_targets(path)


def test_target_truncation_keeps_eos(dataset):
    targets = read_targets(dataset["targets"], max_tokens=3)
    assert all(len(ids) <= 3 for ids in targets.values())
    assert all(ids[-1] == 1 for ids in targets.values())
    assert max(len(ids) for ids in read_targets(dataset["targets"]).values()) > 3


def test_gpu_step_tiny_smoke(capsys):
    from read_clip.perf import gpu_step

    assert gpu_step.main(["--device", "cpu", "--tiny"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("negclip: ")
    assert lines[-1].startswith("read_clip/negclip step time: ")


def test_gpu_step_tiny_sizes():
    from read_clip.perf import gpu_step

    args = gpu_step.parse_args(["--tiny", "--batch-size", "64"])
    assert (args.batch_size, args.steps, args.warmup) == (8, 2, 0)


def test_gpu_step_t5_large_config():
    from read_clip.perf import gpu_step

    config = gpu_step.t5_config(gpu_step.T5_V1_1_LARGE)
    assert (config.d_model, config.d_ff, config.num_heads, config.num_decoder_layers) == (1024, 2816, 16, 24)
    assert config.is_gated_act


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_step_refuses_without_cuda(capsys):
    from read_clip.perf import gpu_step

    assert gpu_step.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_gpu_step_refuses_full_size_on_cpu(capsys):
    from read_clip.perf import gpu_step

    assert gpu_step.main(["--device", "cpu"]) == 2
    assert "--tiny" in capsys.readouterr().err


def test_padding_reads_negclip_captions(annotations_dir):
    from read_clip.perf.padding_speed import read_captions

    captions = read_captions(annotations_dir / "negclip" / "valid_neg_clip.tsv")
    # 4,839 rows (index 0 to 4838); a few captions hold quoted line breaks.
    assert len(captions) == 4839
    assert captions[0] == "A child holding a flowered umbrella and petting a yak."


def test_padding_speed_runs(annotations_dir, capsys):
    from read_clip.perf import padding_speed

    path = annotations_dir / "sugarcrepe" / "swap_att.json"
    assert padding_speed.main(["--captions", str(path), "--architecture", "readclip-tiny",
                               "--batch-size", "8", "--batches", "1"]) == 0
    assert "speed-up" in capsys.readouterr().out


@pytest.fixture(scope="module")
def prepared_shards(dataset):
    """The fixture's images prepared as 2 shards at 64 px, as rule prepare_images writes them."""
    from read_clip.data.prepare import prepare_shard

    selection = {"seed": 7, "train_splits": ["train"], "max_train_images": None, "image_size": 64}
    root = dataset["root"] / "shards"
    paths = {"images": [root / f"shard-{i}.npy" for i in range(2)],
             "indexes": [root / f"shard-{i}.parquet" for i in range(2)]}
    for shard in range(2):
        prepare_shard(dataset["karpathy"], selection, shard, 2, 1, paths["images"][shard], paths["indexes"][shard])
    return paths


def test_shard_images_equal_decoded(dataset, prepared_shards, tmp_path):
    decoded_run = build_run(finetune_settings(), finetune_args(dataset, tmp_path / "a"))
    args = finetune_args(dataset, tmp_path / "b")
    args.image_shards, args.image_indexes = prepared_shards["images"], prepared_shards["indexes"]
    shard_run = build_run(finetune_settings(loader_workers=2), args)
    decoded, from_shards = next(run_batches(decoded_run, 0)), next(run_batches(shard_run, 0))
    assert shard_run.loader_workers == 2
    assert torch.equal(decoded.image_ids, from_shards.image_ids)
    assert torch.equal(decoded.images, from_shards.images)


def test_skipped_image_dropped(dataset, prepared_shards, tmp_path):
    index = pq.read_table(prepared_shards["indexes"][0]).to_pylist()
    index[0]["row"], index[0]["error"] = -1, "broken"
    broken = tmp_path / "broken.parquet"
    write_parquet(broken, pa.Table.from_pylist(index, schema=pq.read_schema(prepared_shards["indexes"][0])))
    args = finetune_args(dataset, tmp_path)
    args.image_shards, args.image_indexes = prepared_shards["images"], [broken, prepared_shards["indexes"][1]]
    run = build_run(finetune_settings(), args)
    assert index[0]["image_id"] not in {image.image_id for image in run.sampler.images}
    assert len(run.sampler.images) == 5


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cpu_refused_unless_allowed():
    from read_clip.train.device import DeviceError, resolve_device

    with pytest.raises(DeviceError, match="train.allow_cpu is false"):
        resolve_device("auto", allow_cpu=False)
    assert resolve_device("auto", allow_cpu=True).type == "cpu"
