"""Model-generated paraphrases: output rows, filtering, resuming a killed shard, the workflow wiring."""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from read_clip import cli
from read_clip.captions import NEGATIVES_SCHEMA, PARAPHRASES_SCHEMA
from read_clip.captions import generate
from read_clip.captions.generate import (
    CHECKPOINT_KEY,
    check_generator_settings,
    clean_paraphrase,
    normalise,
    select_paraphrases,
)
from read_clip.captions.report import caption_report
from read_clip.config import REPO_ROOT, ConfigError

PROMPT = "Rewrite the caption.\nCaption: {caption}\nParaphrase:"

# (image_id, caption_id, caption) of one negatives shard: 10 captions, so batches of 2 give 5 calls.
CAPTIONS = [
    (1, 10, "A red circle left of a blue square."),
    (1, 11, "A blue square right of a red circle."),
    (2, 20, "Two dogs play with a ball on the grass."),
    (2, 21, "A dog chases a ball."),
    (2, 22, "Dogs run across a green field."),
    (3, 30, "A man rides a bicycle down the road."),
    (3, 31, "A cyclist on a street."),
    (4, 40, "A small kitchen with a white oven."),
    (4, 41, "An oven in a kitchen."),
    (4, 42, "A kitchen with white appliances."),
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, 64-wide GPT-2 with random weights and a byte-level BPE tokenizer, saved locally."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = [text for _, _, text in CAPTIONS] + [PROMPT, "Caption:\nParaphrase:\n"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # No padding token, as GPT-2 ships: the command must fall back to end-of-sequence.
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")

    eos = fast.eos_token_id
    config = GPT2Config(vocab_size=len(fast), n_positions=128, n_embd=64, n_layer=2, n_head=2,
                        bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)

    path = tmp_path_factory.mktemp("tiny-lm")
    fast.save_pretrained(path)
    model.save_pretrained(path)
    return str(path)


def settings(model, **overrides):
    values = {"seed": 2025, "model": model, "prompt": PROMPT, "max_new_tokens": 12,
              "do_sample": True, "temperature": 1.0, "top_p": 0.95,
              "num_return_sequences": 2, "batch_size": 2}
    return {**values, **overrides}


@pytest.fixture(scope="module")
def negatives_shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("captions") / "negatives.parquet"
    table = pa.Table.from_pydict({
        "image_id": [row[0] for row in CAPTIONS],
        "caption_id": [row[1] for row in CAPTIONS],
        "caption": [row[2] for row in CAPTIONS],
        "negatives": [["a swapped caption"] for _ in CAPTIONS],
        "fallback": [False] * len(CAPTIONS),
    }, schema=NEGATIVES_SCHEMA)
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def generated_shard(tiny_model, negatives_shard):
    """The shard of an uninterrupted run with the default test settings."""
    out = negatives_shard.parent / "generated.parquet"
    assert run_command(negatives_shard, out, tiny_model) == 0
    return out


def run_command(negatives, out, model, checkpoint_every=2, **overrides):
    return cli.main(["generate-paraphrases", "--negatives", str(negatives),
                     "--settings", json.dumps(settings(model, **overrides)), "--out", str(out),
                     "--checkpoint-every", str(checkpoint_every), "--device", "cpu"])


def count_calls(monkeypatch, fail_on_call=None):
    """Record the captions of every ParaphraseModel.generate call; raise on call `fail_on_call`."""
    calls = []
    original = generate.ParaphraseModel.generate

    def counted(self, captions, seed):
        calls.append(list(captions))
        if len(calls) == fail_on_call:
            raise RuntimeError("simulated crash")
        return original(self, captions, seed)

    monkeypatch.setattr(generate.ParaphraseModel, "generate", counted)
    return calls


# Filtering.


def test_clean_drops_empty():
    assert clean_paraphrase("", "A dog runs.", PROMPT) is None
    assert clean_paraphrase("  \n A dog sleeps.", "A dog runs.", PROMPT) is None


def test_clean_drops_equal_ignoring_case_space():
    assert clean_paraphrase(" a DOG   runs.", "A dog runs.", PROMPT) is None


def test_clean_keeps_first_line():
    assert clean_paraphrase(" A puppy is running.\nCaption: x", "A dog runs.", PROMPT) == "A puppy is running."


def test_clean_strips_prompt_echo():
    echoed = generate.fill_prompt(PROMPT, "A dog runs.") + " A puppy is running."
    assert clean_paraphrase(echoed, "A dog runs.", PROMPT) == "A puppy is running."


def test_clean_strips_answer_label():
    assert clean_paraphrase(" paraphrase: A puppy runs.", "A dog runs.", PROMPT) == "A puppy runs."


def test_select_drops_repeats():
    outputs = [" A puppy runs.", " a puppy  runs.", " A dog runs.", "", " A hound runs."]
    assert select_paraphrases(outputs, "A dog runs.", PROMPT) == ["A puppy runs.", "A hound runs."]


def test_prompt_braces_stay_literal():
    prompt = 'JSON {"caption": "{caption}"}'
    assert generate.fill_prompt(prompt, "A dog.") == 'JSON {"caption": "A dog."}'


# Settings.


def test_settings_accept_recipe(tiny_model):
    assert check_generator_settings(settings(tiny_model))["batch_size"] == 2


@pytest.mark.parametrize("overrides, message", [
    ({"prompt": "Paraphrase this."}, "must contain"),
    ({"do_sample": False}, "needs do_sample"),
    ({"top_p": 1.5}, "top_p"),
    ({"temperature": 0}, "temperature"),
    ({"batch_size": 0}, "batch_size"),
    ({"do_sample": 1}, "do_sample must be true or false"),
])
def test_settings_invalid_rejected(tiny_model, overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_generator_settings(settings(tiny_model, **overrides))


# The command end to end with the tiny model.


def test_shard_rows_valid(generated_shard):
    table = pq.read_table(generated_shard)
    captions = {caption_id: (image_id, text) for image_id, caption_id, text in CAPTIONS}

    assert table.schema.equals(PARAPHRASES_SCHEMA)
    assert table.num_rows > 0
    assert set(table["source"].to_pylist()) == {"generated"}
    for image_id, caption_id, text in zip(table["image_id"].to_pylist(),
                                          table["caption_id"].to_pylist(), table["text"].to_pylist()):
        assert captions[caption_id][0] == image_id
        assert text.strip() == text
        assert text != ""
        assert "\n" not in text
        assert normalise(text) != normalise(captions[caption_id][1])
    assert not generated_shard.with_name("generated.parquet.partial").exists()


def test_prompt_too_long_named(tiny_model, negatives_shard, tmp_path):
    # The tiny model has 128 positions, and 120 new tokens leave too few for any prompt.
    with pytest.raises(ValueError, match="exceeds the 128 positions"):
        run_command(negatives_shard, tmp_path / "out.parquet", tiny_model, max_new_tokens=120)


def test_shard_deterministic_for_seed(tiny_model, negatives_shard, generated_shard, tmp_path):
    again, other = tmp_path / "again.parquet", tmp_path / "other.parquet"
    run_command(negatives_shard, again, tiny_model)
    run_command(negatives_shard, other, tiny_model, seed=7)
    assert pq.read_table(again).equals(pq.read_table(generated_shard))
    assert not pq.read_table(other).equals(pq.read_table(generated_shard))


def test_killed_shard_resumes(tiny_model, negatives_shard, generated_shard, tmp_path, monkeypatch):
    # Crash on the 4th of 5 batches. The checkpoint written after batch 2 contains 4 captions.
    out = tmp_path / "generated.parquet"
    partial = tmp_path / "generated.parquet.partial"
    count_calls(monkeypatch, fail_on_call=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_command(negatives_shard, out, tiny_model)
    assert not out.exists()
    checkpoint = pq.read_table(partial)
    assert json.loads(checkpoint.schema.metadata[CHECKPOINT_KEY])["captions_done"] == 4
    first_ids = {caption_id for _, caption_id, _ in CAPTIONS[:4]}
    reference = pq.read_table(generated_shard).to_pylist()
    assert checkpoint.to_pylist() == [row for row in reference if row["caption_id"] in first_ids]

    monkeypatch.undo()
    calls = count_calls(monkeypatch)
    assert run_command(negatives_shard, out, tiny_model) == 0
    assert len(calls) == 3
    assert calls[0] == [CAPTIONS[4][2], CAPTIONS[5][2]]
    assert pq.read_table(out).equals(pq.read_table(generated_shard))
    assert not partial.exists()


def test_checkpoint_other_settings_restarts(tiny_model, negatives_shard, tmp_path, monkeypatch):
    out = tmp_path / "generated.parquet"
    count_calls(monkeypatch, fail_on_call=4)
    with pytest.raises(RuntimeError):
        run_command(negatives_shard, out, tiny_model)

    monkeypatch.undo()
    calls = count_calls(monkeypatch)
    assert run_command(negatives_shard, out, tiny_model, seed=7) == 0
    assert len(calls) == 5


def test_checkpoint_invalid_restarts(tiny_model, negatives_shard, tmp_path, monkeypatch):
    out = tmp_path / "generated.parquet"
    (tmp_path / "generated.parquet.partial").write_text("not a Parquet file")
    calls = count_calls(monkeypatch)
    assert run_command(negatives_shard, out, tiny_model) == 0
    assert len(calls) == 5


def test_empty_shard_loads_no_model(tmp_path):
    negatives = tmp_path / "negatives.parquet"
    pq.write_table(NEGATIVES_SCHEMA.empty_table(), negatives)
    out = tmp_path / "generated.parquet"
    # The model directory does not exist: loading it would fail.
    assert run_command(negatives, out, str(tmp_path / "no-model")) == 0
    table = pq.read_table(out)
    assert table.num_rows == 0
    assert table.schema.equals(PARAPHRASES_SCHEMA)


def test_missing_model_named(negatives_shard, tmp_path):
    with pytest.raises(OSError, match="no-model.*could not be loaded"):
        run_command(negatives_shard, tmp_path / "out.parquet", str(tmp_path / "no-model"))


def test_report_counts_generated(negatives_shard, generated_shard):
    generated = pq.read_table(generated_shard)
    report = caption_report(pq.read_table(negatives_shard), generated)
    assert report["paraphrase_rows"] == {"sibling": 0, "generated": generated.num_rows}
    assert report["captions_with_generated"] == len(set(generated["caption_id"].to_pylist()))


def test_trainer_reads_generated(generated_shard):
    from read_clip.train.data import read_paraphrases

    generated = pq.read_table(generated_shard)
    candidates = read_paraphrases([generated_shard])
    assert sum(len(texts) for texts in candidates.values()) == generated.num_rows


# Workflow wiring (dry runs of the demo profile).


def dry_run_jobs(tmp_path, enabled, target):
    """Return {rule: job count} of a forced dry run of `target` with the generator on or off."""
    override = tmp_path / "generator.yaml"
    override.write_text(yaml.safe_dump({"captions": {"generator": {"enabled": enabled}}}))
    command = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--profile", "profiles/demo",
               "--configfile", "config.yaml", "workflow/presets/demo.yaml", str(override),
               "--quiet", "rules", "--", target]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = result.stdout.split("Job stats:")[1].splitlines()
    return {line.split()[0]: int(line.split()[1]) for line in stats[3:] if len(line.split()) == 2}


def demo_shards():
    preset = yaml.safe_load((REPO_ROOT / "workflow" / "presets" / "demo.yaml").read_text())
    return preset["captions"]["shards"]


def test_workflow_enabled_one_job_per_shard(tmp_path):
    jobs = dry_run_jobs(tmp_path, True, "all")
    assert jobs["generate_paraphrases"] == demo_shards()


def test_workflow_disabled_no_jobs(tmp_path):
    jobs = dry_run_jobs(tmp_path, False, "all")
    assert "generate_paraphrases" not in jobs


def test_workflow_generated_feed_finetune(tmp_path):
    jobs = dry_run_jobs(tmp_path, True, "results/models/read_clip/model.safetensors")
    assert jobs.get("generate_paraphrases") == demo_shards()
