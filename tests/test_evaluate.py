"""evaluate: any model spec scores a benchmark exactly as the workflow's score-benchmark does."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from PIL import Image, ImageDraw

from read_clip import cli
from read_clip.benchmarks.evaluate import embed_item_images, format_summary
from read_clip.benchmarks.items import ImageRef, Item
from read_clip.models.clip import create_clip, load_model_dir, save_model_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
NAMES = ["000000000001.jpg", "000000000002.jpg", "000000000003.jpg"]
EVAL = {"benchmarks": ["sugarcrepe", "sugarcrepe_pp"], "batch_size": 2,
        "image_roots": {"coco_val2017": "coco/val2017"}}


def draw(path, colour):
    image = Image.new("RGB", (90, 70), "white")
    ImageDraw.Draw(image).rectangle((20, 15, 60, 50), fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name, colour in zip(NAMES, ["red", "blue", "green"]):
        draw(root / "coco" / "val2017" / name, colour)
    sugarcrepe = {
        "0": {"filename": NAMES[0], "caption": "a red square", "negative_caption": "a blue square"},
        "1": {"filename": NAMES[1], "caption": "a blue square", "negative_caption": "a red square"},
        "2": {"filename": NAMES[2], "caption": "a green square", "negative_caption": "a green circle"},
    }
    (root / "sugarcrepe").mkdir()
    (root / "sugarcrepe" / "replace_att.json").write_text(json.dumps(sugarcrepe), encoding="utf-8")
    scpp = [{"id": "7", "filename": NAMES[1], "caption": "a blue square", "caption2": "a square in blue",
             "negative_caption": "a red square"}]
    (root / "sugarcrepe_pp").mkdir()
    (root / "sugarcrepe_pp" / "replace_att.json").write_text(json.dumps(scpp), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("model")
    save_model_dir(create_clip("readclip-tiny").model, "readclip-tiny", path)
    return path


@pytest.fixture(scope="module")
def config_files(data_root, tmp_path_factory):
    override = tmp_path_factory.mktemp("config") / "override.yaml"
    override.write_text(yaml.safe_dump({"data": {"root": str(data_root)}, "eval": EVAL}), encoding="utf-8")
    return [str(REPO_ROOT / "config.yaml"), str(override)]


@pytest.fixture(scope="module")
def evaluated(model_dir, config_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    status = cli.main(["evaluate", "--model", f"dir:{model_dir}", "--model-name", "tiny",
                       "--benchmark", "sugarcrepe", "sugarcrepe_pp", "--config", *config_files,
                       "--device", "cpu", "--out", str(out)])
    assert status == 0
    return out


def workflow_scores(model_dir, data_root, config_files, out):
    """Score SugarCrepe the workflow's way: list-images, embed-images, then score-benchmark."""
    config = yaml.safe_load(Path(config_files[0]).read_text(encoding="utf-8"))
    settings = {**config["eval"], **EVAL}
    images, embeddings = out / "images.txt", out / "coco.safetensors"
    assert cli.main(["list-images", "--image-set", "coco_val2017", "--data-root", str(data_root),
                     "--settings", json.dumps(settings), "--out", str(images)]) == 0
    assert cli.main(["embed-images", "--model-dir", str(model_dir), "--image-list", str(images),
                     "--image-root", str(data_root / "coco" / "val2017"), "--batch-size", "2",
                     "--device", "cpu", "--out", str(embeddings)]) == 0
    assert cli.main(["score-benchmark", "--benchmark", "sugarcrepe", "--model-dir", str(model_dir),
                     "--data-root", str(data_root), "--settings", json.dumps(settings),
                     "--embeddings", f"coco_val2017={embeddings}", "--model-name", "tiny", "--device", "cpu",
                     "--out-scores", str(out / "scores.parquet"), "--out-summary", str(out / "summary.json")]) == 0
    return pd.read_parquet(out / "scores.parquet"), json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_evaluate_matches_workflow(evaluated, model_dir, data_root, config_files, tmp_path):
    expected, expected_summary = workflow_scores(model_dir, data_root, config_files, tmp_path)
    actual = pd.read_parquet(evaluated / "sugarcrepe.parquet")
    summary = json.loads((evaluated / "sugarcrepe.json").read_text(encoding="utf-8"))
    pd.testing.assert_frame_equal(actual.drop(columns="score"), expected.drop(columns="score"))
    assert actual["score"].to_numpy() == pytest.approx(expected["score"].to_numpy(), abs=1e-6)
    assert summary["subsets"] == expected_summary["subsets"]
    assert summary["headline"] == expected_summary["headline"]


def test_evaluate_summary_fields(evaluated):
    summary = json.loads((evaluated / "sugarcrepe_pp.json").read_text(encoding="utf-8"))
    assert summary["model"] == "tiny"
    assert summary["architecture"] == "readclip-tiny"
    assert summary["model_spec"]["kind"] == "model_dir"
    assert summary["subsets"]["itt/replace_att"]["items"] == 1
    assert set(summary["headline"]) == {"SC++ ITT", "SC++ TOT"}


def test_evaluate_prints_table(model_dir, config_files, tmp_path, capsys):
    assert cli.main(["evaluate", "--model", f"dir:{model_dir}", "--benchmark", "sugarcrepe",
                     "--config", *config_files, "--tie-policy", "strict", "--device", "cpu",
                     "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "sugarcrepe.json").read_text(encoding="utf-8"))
    assert printed.startswith(f"sugarcrepe: {model_dir} (tie policy strict)")
    assert f"SugarCrepe {summary['headline']['SugarCrepe']:.2f}" in printed
    assert "replace_att" in printed


def test_shared_images_embedded_once(model_dir, data_root):
    loaded = load_model_dir(model_dir)
    roots = {"coco_val2017": data_root / "coco" / "val2017"}
    items = [Item(str(i), "s", ImageRef("coco_val2017", name), ("a", "b")) for i, name in enumerate(NAMES[:2])]
    known = {}
    first, rows = embed_item_images(items, loaded, roots, 2, 0, "cpu", known)
    assert rows == [0, 1]
    # A second benchmark reading one known and one new image embeds only the new one.
    more = [Item("9", "s", ImageRef("coco_val2017", NAMES[2]), ("a", "b")), items[0]]
    second, rows = embed_item_images(more, loaded, roots, 2, 0, "cpu", known)
    assert len(known) == 3
    assert rows == [0, 1]
    assert torch.equal(second[1], first[0])


def test_missing_image_named(model_dir, data_root):
    loaded = load_model_dir(model_dir)
    items = [Item("0", "s", ImageRef("coco_val2017", "absent.jpg"), ("a", "b"))]
    with pytest.raises(FileNotFoundError, match="1 of 1 images are missing, first: \\['coco_val2017/absent.jpg'\\]"):
        embed_item_images(items, loaded, {"coco_val2017": data_root / "coco" / "val2017"}, 2, 0, "cpu", {})


def test_format_summary_lists_protocols():
    summary = {"benchmark": "sugarcrepe", "model": "m", "tie_policy": "argmax",
               "subsets": {"swap_att": {"items": 4, "correct": 3, "accuracy": 75.0, "ties": 1}},
               "headline": {"SugarCrepe": 75.0}, "vl_compo": {"SugarCrepe": 75.0}, "pooled": 75.0,
               "missing_subsets": ["add_att"]}
    text = format_summary(summary)
    assert "READ-CLIP protocol      SugarCrepe 75.00" in text
    assert "vl_compo protocol       SugarCrepe 75.00" in text
    assert "subsets not scored      add_att" in text
