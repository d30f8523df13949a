"""Image embedding and score-benchmark end to end with a tiny saved model and drawn images."""

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from read_clip import cli
from read_clip.benchmarks.crepe import crepe_file
from read_clip.benchmarks.embed import read_embeddings
from read_clip.models.clip import create_clip, load_model_dir, save_model_dir

COCO_NAMES = ["000000000001.jpg", "000000000002.jpg", "000000000003.jpg"]
SETTINGS = {
    "benchmarks": ["sugarcrepe", "sugarcrepe_pp"],
    "tie_policy": "argmax",
    "batch_size": 2,
    "image_roots": {"coco_val2017": "coco/val2017", "visual_genome": "visual_genome"},
    "valse_datasets": {},
}


def draw_image(path, colour, size, mode="RGB"):
    """A non-square image with one filled rectangle, saved as JPEG."""
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    save_model_dir(create_clip("readclip-tiny").model, "readclip-tiny", path)
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    images = root / "coco" / "val2017"
    draw_image(images / COCO_NAMES[0], "red", (80, 60))
    draw_image(images / COCO_NAMES[1], "blue", (50, 90))
    draw_image(images / COCO_NAMES[2], "green", (64, 64), mode="L")  # greyscale, converted to RGB
    sugarcrepe = {
        "0": {"filename": COCO_NAMES[0], "caption": "a red square", "negative_caption": "a blue square"},
        "1": {"filename": COCO_NAMES[1], "caption": "a blue square", "negative_caption": "a red square"},
        "2": {"filename": COCO_NAMES[2], "caption": "a grey square", "negative_caption": "a green circle"},
    }
    (root / "sugarcrepe").mkdir()
    (root / "sugarcrepe" / "swap_att.json").write_text(json.dumps(sugarcrepe), encoding="utf-8")
    scpp = [
        {"id": "5", "filename": COCO_NAMES[0], "caption": "a red square", "caption2": "a square that is red",
         "negative_caption": "a blue square"},
        {"id": "5", "filename": COCO_NAMES[0], "caption": "a red square", "caption2": "a red square",
         "negative_caption": "a blue square"},
    ]
    (root / "sugarcrepe_pp").mkdir()
    (root / "sugarcrepe_pp" / "replace_att.json").write_text(json.dumps(scpp), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def coco_embeddings(model_dir, data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("embeddings")
    image_list, embeddings = out / "coco_val2017.txt", out / "coco_val2017.safetensors"
    assert cli.main(["list-images", "--image-set", "coco_val2017", "--data-root", str(data_root),
                     "--settings", json.dumps(SETTINGS), "--out", str(image_list)]) == 0
    assert cli.main(["embed-images", "--model-dir", str(model_dir), "--image-list", str(image_list),
                     "--image-root", str(data_root / "coco" / "val2017"), "--batch-size", "2",
                     "--workers", "0", "--device", "cpu", "--out", str(embeddings)]) == 0
    return embeddings


def score(benchmark, model_dir, data_root, out, embeddings=()):
    status = cli.main(["score-benchmark", "--benchmark", benchmark, "--model-dir", str(model_dir),
                       "--data-root", str(data_root), "--settings", json.dumps(SETTINGS),
                       "--embeddings", *embeddings, "--model-name", "tiny", "--device", "cpu",
                       "--out-scores", str(out / f"{benchmark}.parquet"),
                       "--out-summary", str(out / f"{benchmark}.json")])
    assert status == 0
    summary = json.loads((out / f"{benchmark}.json").read_text(encoding="utf-8"))
    return pd.read_parquet(out / f"{benchmark}.parquet"), summary


def test_embeddings_match_model(model_dir, data_root, coco_embeddings):
    embeddings, paths = read_embeddings(coco_embeddings)
    loaded = load_model_dir(model_dir)
    with torch.no_grad():
        batch = torch.stack([loaded.preprocess(Image.open(data_root / "coco" / "val2017" / p).convert("RGB"))
                             for p in paths])
        expected = F.normalize(loaded.model.encode_image(batch), dim=-1)
    assert paths == COCO_NAMES
    assert embeddings.dtype == torch.float32
    assert embeddings.shape == (3, 128)
    assert torch.allclose(embeddings, expected, atol=1e-5)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_embed_missing_images(model_dir, data_root, tmp_path):
    image_list = tmp_path / "list.txt"
    image_list.write_text(f"{COCO_NAMES[0]}\nmissing_1.jpg\n", encoding="utf-8")
    root = data_root / "coco" / "val2017"
    with pytest.raises(FileNotFoundError) as error:
        cli.main(["embed-images", "--model-dir", str(model_dir), "--image-list", str(image_list),
                  "--image-root", str(root), "--batch-size", "2", "--out", str(tmp_path / "e.safetensors")])
    assert f"1 of 2 images listed in {image_list} are missing under {root}" in str(error.value)
    assert "missing_1.jpg" in str(error.value)
    assert not (tmp_path / "e.safetensors").exists()


def test_score_sugarcrepe(model_dir, data_root, coco_embeddings, tmp_path):
    scores, summary = score("sugarcrepe", model_dir, data_root, tmp_path, [f"coco_val2017={coco_embeddings}"])
    schema = pq.read_schema(tmp_path / "sugarcrepe.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("item_id", "string"), ("subset", "string"), ("query", "string"), ("candidate", "int16"), ("score", "float")]
    assert len(scores) == 6

    # Recompute the accuracy from the table: an item is right when its gold scores >= its negative.
    wide = scores.pivot(index="item_id", columns="candidate", values="score")
    accuracy = 100.0 * (wide[0] >= wide[1]).mean()
    assert summary["subsets"]["swap_att"]["items"] == 3
    assert summary["subsets"]["swap_att"]["accuracy"] == pytest.approx(accuracy)
    assert summary["headline"]["SugarCrepe"] == pytest.approx(accuracy)
    assert summary["pooled"] == pytest.approx(accuracy)
    assert summary["tie_policy"] == "argmax"
    assert "add_att" in summary["missing_subsets"]


def test_score_is_cosine(model_dir, data_root, coco_embeddings, tmp_path):
    scores, _ = score("sugarcrepe", model_dir, data_root, tmp_path, [f"coco_val2017={coco_embeddings}"])
    embeddings, paths = read_embeddings(coco_embeddings)
    loaded = load_model_dir(model_dir)
    with torch.no_grad():
        text = F.normalize(loaded.model.encode_text(loaded.tokenizer(["a blue square"])), dim=-1)[0]
    expected = float(embeddings[paths.index(COCO_NAMES[0])] @ text)
    row = scores[(scores["item_id"] == "0") & (scores["candidate"] == 1)]
    assert row["score"].item() == pytest.approx(expected, abs=1e-5)


def test_score_scpp(model_dir, data_root, coco_embeddings, tmp_path):
    scores, summary = score("sugarcrepe_pp", model_dir, data_root, tmp_path, [f"coco_val2017={coco_embeddings}"])
    assert len(scores) == 2 * (3 + 2 + 2)
    assert set(summary["subsets"]) == {"itt/replace_att", "tot/replace_att"}
    assert set(summary["headline"]) == {"SC++ ITT", "SC++ TOT"}
    assert summary["vl_compo"] == {}

    # TOT recomputed: s(P1, P2) > s(P1, N) and s(P2, P1) > s(P2, N), strictly.
    text = scores[scores["query"] != "image"].pivot(index=["item_id", "query"], columns="candidate", values="score")
    per_item = (text[0] > text[1]).groupby(level="item_id").all()
    assert summary["subsets"]["tot/replace_att"]["accuracy"] == pytest.approx(100.0 * per_item.mean())
    # Item 1 has P1 == P2, so s(P1, P2) = 1 beats every other text.
    assert bool(per_item["1"])


def test_score_missing_embedding(model_dir, data_root, tmp_path):
    with pytest.raises(ValueError, match=r"no --embeddings file given for image sets \['coco_val2017'\]"):
        score("sugarcrepe", model_dir, data_root, tmp_path)


def test_score_crepe_crops(model_dir, tmp_path):
    root = tmp_path / "data"
    draw_image(root / "visual_genome" / "VG_100K_2" / "42.jpg", "red", (120, 80))
    csv_path = root / "crepe" / crepe_file("atom", 4)
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text("image_id,caption,hard_negs,x,y,width,height\n"
                        "42,a red square,\"['a blue square', 'a red circle', 'a green square']\",10,5,60,50\n"
                        "42,a white wall,\"['a black wall']\",0,0,120,80\n", encoding="utf-8")
    scores, summary = score("crepe", model_dir, root, tmp_path / "out")
    assert scores.groupby("item_id").size().to_dict() == {"complexity_4/0": 4, "complexity_4/1": 2}
    assert summary["subsets"]["atom"]["items"] == 2

    loaded = load_model_dir(model_dir)
    with torch.no_grad():
        crop = Image.open(root / "visual_genome" / "VG_100K_2" / "42.jpg").convert("RGB").crop((10, 5, 70, 55))
        image = F.normalize(loaded.model.encode_image(loaded.preprocess(crop)[None]), dim=-1)[0]
        text = F.normalize(loaded.model.encode_text(loaded.tokenizer(["a red circle"])), dim=-1)[0]
    row = scores[(scores["item_id"] == "complexity_4/0") & (scores["candidate"] == 2)]
    assert row["score"].item() == pytest.approx(float(image @ text), abs=1e-5)
