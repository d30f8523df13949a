"""Every demo text fits the tiny CLIP's context, so no item is decided by truncation.

A caption cut at the context length can lose exactly the words that tell it from its negative.
Both texts then embed identically, and the item becomes a tie.
"""

import ast
import csv
import json

import pytest
from open_clip.tokenizer import SimpleTokenizer

from read_clip.cli import main
from read_clip.models.clip import CONFIG_DIR

# Start-of-text and end-of-text tokens that open_clip adds to every caption.
SPECIAL_TOKENS = 2


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "world"
    settings = {"seed": 3, "train_images": 30, "items_per_subset": 40, "image_size": 64}
    assert main(["make-demo-world", "--settings", json.dumps(settings), "--out", str(out)]) == 0
    return out


def benchmark_texts(root):
    """Yield (file, text) for every caption and negative of every demo benchmark file."""
    for path in sorted((root / "sugarcrepe").glob("*.json")):
        for record in json.loads(path.read_text()).values():
            yield path.name, record["caption"]
            yield path.name, record["negative_caption"]
    for path in sorted((root / "sugarcrepe_pp").glob("*.json")):
        for record in json.loads(path.read_text()):
            for key in ("caption", "caption2", "negative_caption"):
                yield path.name, record[key]
    for path in sorted((root / "valse").glob("*.json")):
        for record in json.loads(path.read_text()).values():
            yield path.name, record["caption"]
            yield path.name, record["foil"]
    for path in sorted((root / "whatsup").glob("*.json")):
        for record in json.loads(path.read_text()):
            options = record["caption_options"] if isinstance(record, dict) else record[1:]
            for text in options:
                yield path.name, text
    for path in sorted((root / "crepe").rglob("*.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                for text in [row["caption"], *ast.literal_eval(row["hard_negs"])]:
                    yield path.name, text


def test_demo_texts_fit_context(world):
    context = json.loads((CONFIG_DIR / "readclip-tiny.json").read_text())["text_cfg"]["context_length"]
    tokenizer = SimpleTokenizer()
    too_long = [(name, text) for name, text in benchmark_texts(world)
                if len(tokenizer.encode(text)) + SPECIAL_TOKENS > context]
    assert too_long == []
