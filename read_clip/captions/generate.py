"""`read-clip generate-paraphrases`: model-written paraphrases of one caption shard.

A causal language model loaded through transformers completes `prompt` (its "{caption}" replaced
by a training caption). The paraphrase is the generated text before the first line break, with an
echoed prompt or answer label removed. Outputs that are empty, equal to the caption or repeated
for the same caption (ignoring case and whitespace) are dropped. Rows follow PARAPHRASES_SCHEMA
with source "generated" and `caption_id` naming the caption they paraphrase.

A shard resumes after a crash: every `--checkpoint-every` batches the rows so far are written to
`<out>.partial` with the number of captions done and a fingerprint of the settings and caption ids.
A rerun with the same fingerprint continues after the last checkpoint. The output file appears only
when the shard is complete, and the partial file is then removed.

Before each batch, torch is seeded from (seed, caption id of the batch's first caption), so a
resumed run writes the same rows as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from read_clip.captions import NEGATIVES_SCHEMA, PARAPHRASES_SCHEMA, check_settings
from read_clip.captions.negatives import ShardCaption
from read_clip.captions.report import read_shards
from read_clip.config import ConfigError, parse_settings
from read_clip.io import write_parquet

logger = logging.getLogger(__name__)

SOURCE = "generated"
CAPTION_FIELD = "{caption}"
# Parquet schema metadata key of a partial shard; its value is JSON {fingerprint, captions_done}.
CHECKPOINT_KEY = b"read_clip.checkpoint"

SETTINGS_TYPES: dict[str, tuple[type, ...]] = {
    "seed": (int,),
    "model": (str,),
    "prompt": (str,),
    "max_new_tokens": (int,),
    "temperature": (int, float),
    "top_p": (int, float),
    "num_return_sequences": (int,),
    "batch_size": (int,),
}
POSITIVE_KEYS = ("max_new_tokens", "num_return_sequences", "batch_size")
FLAG_KEYS = ("do_sample",)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--negatives", required=True,
                        help="Negatives Parquet shard whose captions are paraphrased.")
    parser.add_argument("--settings", required=True, help=(
        "JSON object with the keys " + ", ".join([*SETTINGS_TYPES, *FLAG_KEYS]) + "."))
    parser.add_argument("--out", required=True, help=(
        "Paraphrases Parquet file to write; progress is kept in OUT.partial until it is complete."))
    parser.add_argument("--checkpoint-every", type=int, default=20, help=(
        "Write OUT.partial after this many batches (default 20)."))
    parser.add_argument("--device", default="auto", help=(
        "Torch device: 'auto' (cuda when available, else cpu), 'cpu', 'cuda' or 'cuda:N'."))


def check_generator_settings(settings: dict) -> dict:
    """Raise ConfigError unless `settings` are complete, typed and consistent."""
    # check_settings rejects every bool because it guards counts and seeds, so flags are checked here.
    check_settings({key: value for key, value in settings.items() if key not in FLAG_KEYS},
                   SETTINGS_TYPES, POSITIVE_KEYS, "generate-paraphrases")
    for key in FLAG_KEYS:
        if not isinstance(settings.get(key), bool):
            raise ConfigError(f"generate-paraphrases --settings: {key} must be true or false, "
                              f"got {settings.get(key, 'no value')!r}")
    if CAPTION_FIELD not in settings["prompt"]:
        raise ConfigError(f"generate-paraphrases --settings: prompt must contain {CAPTION_FIELD}, "
                          f"got {settings['prompt']!r}")
    if settings["temperature"] <= 0:
        raise ConfigError(f"generate-paraphrases --settings: temperature must be above 0, "
                          f"got {settings['temperature']}")
    if not 0 < settings["top_p"] <= 1:
        raise ConfigError(f"generate-paraphrases --settings: top_p must be in (0, 1], "
                          f"got {settings['top_p']}")
    if not settings["do_sample"] and settings["num_return_sequences"] > 1:
        raise ConfigError(
            "generate-paraphrases --settings: num_return_sequences > 1 needs do_sample: true, "
            "because greedy decoding returns the same text every time")
    return settings


def fill_prompt(prompt: str, caption: str) -> str:
    # str.replace, not str.format, so other braces in a template stay literal.
    return prompt.replace(CAPTION_FIELD, caption)


def normalise(text: str) -> str:
    """Return `text` case-folded with runs of whitespace collapsed, for equality tests."""
    return " ".join(text.casefold().split())


def clean_paraphrase(generated: str, caption: str, prompt: str) -> str | None:
    """Return the paraphrase in one generated text, or None when it is empty or equals `caption`.

    Removes a leading echo of the filled prompt and keeps the text before the first line break, so
    an output that starts with a line break is empty. Then removes a leading answer label, which is
    the template's text after "{caption}" (for example "Paraphrase:").
    """
    text = generated
    echo = fill_prompt(prompt, caption).strip()
    if echo and text.lstrip().startswith(echo):
        text = text.lstrip()[len(echo):]
    # Generation stops at the first line break, so text after it is never part of the paraphrase.
    text = text.split("\n", 1)[0].strip()

    label = prompt.rsplit(CAPTION_FIELD, 1)[1].strip()
    if label and text.casefold().startswith(label.casefold()):
        text = text[len(label):].strip()

    if not text or normalise(text) == normalise(caption):
        return None
    return text


def select_paraphrases(generated: Sequence[str], caption: str, prompt: str) -> list[str]:
    """Return the cleaned paraphrases of one caption, without drops or repeats, in output order."""
    paraphrases, seen = [], set()
    for output in generated:
        text = clean_paraphrase(output, caption, prompt)
        if text is not None and normalise(text) not in seen:
            seen.add(normalise(text))
            paraphrases.append(text)
    return paraphrases


def batch_seed(seed: int, caption_id: int) -> int:
    """Return the torch seed of the batch that starts with `caption_id` (63 bits, stable across runs)."""
    # NOTE: seeds are per batch, not per caption, because transformers samples a whole batch from
    # one random stream. A caption's paraphrase therefore changes with batch_size, with the number
    # of caption shards (which regroups captions) and with the device's floating-point kernels.
    digest = hashlib.sha256(f"{seed}:{caption_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def choose_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available; use --device cpu or auto")
    return name


class ParaphraseModel:
    """A causal language model and its tokenizer that paraphrase batches of captions."""

    def __init__(self, settings: dict, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        name = settings["model"]
        self.settings = settings
        self.device = device
        try:
            # Left padding keeps every prompt's last token at the end of the row, where a
            # decoder-only model continues it.
            self.tokenizer = AutoTokenizer.from_pretrained(name, padding_side="left")
            # NOTE: only the CPU path (float32) has been run; the CUDA path in bfloat16 is untested.
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            self.model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype).to(device).eval()
        except (OSError, ValueError) as error:
            raise OSError(
                f"causal language model {name!r} could not be loaded ({error}). Pass a local "
                f"directory, or download it into the Hugging Face cache first (offline runs "
                f"cannot reach the hub).") from error
        if self.tokenizer.pad_token_id is None:
            if self.tokenizer.eos_token_id is None:
                raise ValueError(f"tokenizer of {name!r} has neither a padding nor an "
                                 f"end-of-sequence token, so batches cannot be padded")
            # GPT-2 and Llama tokenizers ship without a padding token. The attention mask
            # hides the padding, so reusing end-of-sequence is safe.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        logger.info("loaded %s on %s (%d parameters)", name, device,
                    sum(p.numel() for p in self.model.parameters()))

    def generation_options(self) -> dict:
        """Return the keyword arguments of `model.generate`, all taken from the settings."""
        settings = self.settings
        options = {
            "max_new_tokens": settings["max_new_tokens"],
            "do_sample": settings["do_sample"],
            "num_return_sequences": settings["num_return_sequences"],
            "pad_token_id": self.tokenizer.pad_token_id,
            # Generation stops once every row has produced a line break, the paraphrase's end.
            "stop_strings": ["\n"],
            "tokenizer": self.tokenizer,
        }
        if settings["do_sample"]:
            # top_k 0 turns off transformers' default top-k of 50, so top_p alone truncates.
            options.update(temperature=float(settings["temperature"]),
                           top_p=float(settings["top_p"]), top_k=0)
        return options

    def check_length(self, prompt_tokens: int, captions: Sequence[str]) -> None:
        """Raise ValueError when prompt plus new tokens exceed the model's position embeddings."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        needed = prompt_tokens + self.settings["max_new_tokens"]
        if limit is not None and needed > limit:
            longest = max(captions, key=len)
            raise ValueError(
                f"prompt of {prompt_tokens} tokens plus max_new_tokens {self.settings['max_new_tokens']} "
                f"exceeds the {limit} positions of {self.settings['model']!r} (longest caption of the "
                f"batch: {longest!r}); shorten the prompt or lower max_new_tokens")

    def generate(self, captions: Sequence[str], seed: int) -> list[list[str]]:
        """Return `num_return_sequences` decoded continuations per caption, in caption order."""
        import torch

        prompts = [fill_prompt(self.settings["prompt"], caption) for caption in captions]
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        self.check_length(inputs["input_ids"].shape[1], captions)
        torch.manual_seed(seed)
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **self.generation_options())

        # sequences: (len(captions) * num_return_sequences, prompt length + new tokens), with
        # the sequences of one caption adjacent. Only the new tokens are decoded.
        new_tokens = sequences[:, inputs["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        count = self.settings["num_return_sequences"]
        return [texts[i * count:(i + 1) * count] for i in range(len(captions))]


def read_captions(path: str | Path) -> list[ShardCaption]:
    """Return the captions of one negatives shard in file order."""
    table = read_shards([path], NEGATIVES_SCHEMA, "negatives")
    return [ShardCaption(image_id, caption_id, text) for image_id, caption_id, text in zip(
        table["image_id"].to_pylist(), table["caption_id"].to_pylist(), table["caption"].to_pylist())]


def shard_fingerprint(settings: dict, captions: Sequence[ShardCaption]) -> str:
    """Return a digest of what decides a shard's rows: the settings and the caption ids in order."""
    data = {"settings": settings, "caption_ids": [caption.caption_id for caption in captions]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def rows_table(rows: Sequence[tuple[int, int, str]]) -> pa.Table:
    """Return (image_id, caption_id, text) rows as a PARAPHRASES_SCHEMA table of source "generated"."""
    return pa.Table.from_pydict({
        "image_id": [row[0] for row in rows],
        "caption_id": [row[1] for row in rows],
        "text": [row[2] for row in rows],
        "source": [SOURCE] * len(rows),
    }, schema=PARAPHRASES_SCHEMA)


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def write_checkpoint(path: Path, rows: Sequence[tuple[int, int, str]], fingerprint: str,
                     captions_done: int) -> None:
    state = json.dumps({"fingerprint": fingerprint, "captions_done": captions_done})
    write_parquet(path, rows_table(rows).replace_schema_metadata({CHECKPOINT_KEY: state}))


def read_checkpoint(path: Path, fingerprint: str) -> tuple[list[tuple[int, int, str]], int]:
    """Return the rows and the number of captions done of a partial shard, or ([], 0).

    A missing file, an unreadable one, or one written for other settings or captions starts the
    shard over.
    """
    if not path.exists():
        return [], 0
    try:
        table = pq.read_table(path)
        state = json.loads((table.schema.metadata or {})[CHECKPOINT_KEY])
        written_for, captions_done = state["fingerprint"], int(state["captions_done"])
    except (pa.ArrowInvalid, OSError, KeyError, TypeError, ValueError) as error:
        logger.warning("%s: invalid checkpoint (%s), so the shard starts over", path, error)
        return [], 0
    if written_for != fingerprint:
        logger.warning("%s: checkpoint of other settings or captions, so the shard starts over", path)
        return [], 0
    rows = list(zip(table["image_id"].to_pylist(), table["caption_id"].to_pylist(),
                    table["text"].to_pylist()))
    return rows, captions_done


def generate_shard(captions: Sequence[ShardCaption], paraphraser: ParaphraseModel | None,
                   settings: dict, partial: Path, checkpoint_every: int) -> pa.Table:
    """Paraphrase `captions` batch by batch from the last checkpoint in `partial`; return all rows.

    `paraphraser` may be None only when no caption is left to paraphrase.
    """
    if checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be at least 1, got {checkpoint_every}")
    fingerprint = shard_fingerprint(settings, captions)
    rows, done = read_checkpoint(partial, fingerprint)
    if done:
        logger.info("resuming from %s: %d of %d captions done", partial, done, len(captions))

    batch_size, prompt = settings["batch_size"], settings["prompt"]
    outputs = dropped = batches = 0
    starts = range(done, len(captions), batch_size)
    for start in tqdm(starts, desc="paraphrase batches", unit="batch"):
        batch = captions[start:start + batch_size]
        generated = paraphraser.generate([caption.text for caption in batch],
                                         batch_seed(settings["seed"], batch[0].caption_id))
        for caption, texts in zip(batch, generated):
            paraphrases = select_paraphrases(texts, caption.text, prompt)
            rows.extend((caption.image_id, caption.caption_id, text) for text in paraphrases)
            outputs += len(texts)
            dropped += len(texts) - len(paraphrases)

        done = start + len(batch)
        batches += 1
        if batches % checkpoint_every == 0 and done < len(captions):
            write_checkpoint(partial, rows, fingerprint, done)

    logger.info("%d batches run: %d outputs, %d dropped (empty, equal to the caption or repeated); "
                "%d rows for %d captions", batches, outputs, dropped, len(rows), len(captions))
    return rows_table(rows)


def main(args: argparse.Namespace) -> int:
    settings = check_generator_settings(parse_settings(args.settings))
    captions = read_captions(args.negatives)
    partial = partial_path(args.out)
    logger.info("%s: %d captions to paraphrase", args.negatives, len(captions))

    # An empty shard needs no model.
    paraphraser = ParaphraseModel(settings, choose_device(args.device)) if captions else None
    table = generate_shard(captions, paraphraser, settings, partial, args.checkpoint_every)
    write_parquet(args.out, table)
    partial.unlink(missing_ok=True)
    return 0
