"""COCO retrieval recall against a hand-computed case, and score-retrieval end to end."""

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from read_clip import cli
from read_clip.benchmarks import retrieval
from read_clip.benchmarks.retrieval import (
    image_to_text_ranks, retrieval_recalls, retrieval_set, text_to_image_ranks,
)
from read_clip.models.clip import create_clip, load_model_dir, save_model_dir

# Three images (the unit axes) with 1, 2 and 3 captions. All vectors have unit length.
IMAGES = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
TEXTS = torch.tensor([
    [-0.6, 0.8, 0.0],  # caption of image 0
    [0.0, 1.0, 0.0],   # captions of image 1
    [0.0, 0.0, 1.0],
    [1.0, 0.0, 0.0],   # captions of image 2
    [0.6, 0.0, 0.8],
    [0.0, 0.6, 0.8],
])
TEXT_IMAGE = [0, 1, 1, 2, 2, 2]
# image -> text: image 0's only caption scores -0.6 and 5 texts score higher (rank 5); image 1's
# best caption scores 1.0 (rank 0); image 2's best captions score 0.8 and text 2 scores 1.0 (rank 1).
I2T_RANKS = [5, 0, 1]
# text -> image: text 0 scores (-0.6, 0.8, 0) so 2 images beat its own; text 2 scores (0, 0, 1) and
# text 3 (1, 0, 0) so 1 image beats their own; texts 1, 4 and 5 rank their own image first.
T2I_RANKS = [2, 0, 1, 1, 0, 0]


def test_hand_ranks_image_to_text():
    ranks = image_to_text_ranks(IMAGES, TEXTS, torch.tensor(TEXT_IMAGE))
    assert ranks.tolist() == I2T_RANKS


def test_hand_ranks_text_to_image():
    ranks = text_to_image_ranks(IMAGES, TEXTS, torch.tensor(TEXT_IMAGE))
    assert ranks.tolist() == T2I_RANKS


def test_hand_recalls():
    recalls = retrieval_recalls(IMAGES, TEXTS, TEXT_IMAGE, ks=(1, 2, 5, 6))
    assert recalls["image_to_text"] == pytest.approx({"R@1": 100 / 3, "R@2": 200 / 3, "R@5": 200 / 3, "R@6": 100.0})
    assert recalls["text_to_image"] == pytest.approx({"R@1": 50.0, "R@2": 500 / 6, "R@5": 100.0, "R@6": 100.0})


def test_chunked_ranks_equal(monkeypatch):
    monkeypatch.setattr(retrieval, "QUERY_CHUNK", 2)
    index = torch.tensor(TEXT_IMAGE)
    assert image_to_text_ranks(IMAGES, TEXTS, index).tolist() == I2T_RANKS
    assert text_to_image_ranks(IMAGES, TEXTS, index).tolist() == T2I_RANKS


def test_tie_counts_as_hit():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    half = 0.5 ** 0.5
    # Text 0 belongs to image 0; texts 1 and 2 belong to image 1. Image 1 scores texts 0 and 1 both
    # 0.0, and text 2 scores both images 0.707: each tie leaves the correct candidate first.
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [half, half]])
    index = torch.tensor([0, 1, 1])
    assert image_to_text_ranks(images, texts[:2], index[:2]).tolist() == [0, 0]
    assert text_to_image_ranks(images, texts, index).tolist() == [0, 1, 0]


def test_nan_embeddings_rejected():
    broken = TEXTS.clone()
    broken[0, 0] = float("nan")
    with pytest.raises(ValueError, match="text embeddings contain NaN"):
        retrieval_recalls(IMAGES, broken, TEXT_IMAGE)


def draw(path, colour):
    image = Image.new("RGB", (80, 60), "white")
    ImageDraw.Draw(image).ellipse((10, 10, 50, 50), fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture
def karpathy(tmp_path):
    """A Karpathy file with 3 test images (1, 2 and 3 captions) and one train image."""
    records = []
    for cocoid, (split, colour, captions) in enumerate([
        ("test", "red", ["a red circle"]),
        ("test", "blue", ["a blue circle", "blue ball on white"]),
        ("train", "black", ["a black circle"]),
        ("test", "green", ["a green circle", "green disc", "a round green shape"]),
    ]):
        filename = f"COCO_val2014_{cocoid:012d}.jpg"
        draw(tmp_path / "val2014" / filename, colour)
        records.append({"filepath": "val2014", "filename": filename, "cocoid": cocoid, "split": split,
                        "sentences": [{"raw": text, "sentid": 10 * cocoid + i} for i, text in enumerate(captions)]})
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": records}), encoding="utf-8")
    return path


def test_retrieval_set_groups_captions(karpathy):
    data = retrieval_set(karpathy, "test")
    assert len(data.image_paths) == 3
    assert data.text_image == [0, 1, 1, 2, 2, 2]
    assert data.texts[1] == "a blue circle"


def test_score_retrieval_command(karpathy, tmp_path):
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    save_model_dir(create_clip("readclip-tiny").model, "readclip-tiny", model_dir)
    out = tmp_path / "retrieval.json"
    assert cli.main(["score-retrieval", "--model-dir", str(model_dir), "--karpathy", str(karpathy),
                     "--batch-size", "2", "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))

    # The same recalls from embeddings computed here, one image and one text at a time.
    data = retrieval_set(karpathy, "test")
    loaded = load_model_dir(model_dir)
    with torch.no_grad():
        images = torch.cat([loaded.model.encode_image(loaded.preprocess(Image.open(karpathy.parent / p))[None])
                            for p in data.image_paths])
        texts = torch.cat([loaded.model.encode_text(loaded.tokenizer([t])) for t in data.texts])
    expected = retrieval_recalls(F.normalize(images, dim=-1), F.normalize(texts, dim=-1), data.text_image)
    assert result["images"] == 3
    assert result["texts"] == 6
    assert result["image_to_text"] == pytest.approx(expected["image_to_text"])
    assert result["text_to_image"] == pytest.approx(expected["text_to_image"])
