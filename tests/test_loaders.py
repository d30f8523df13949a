"""Benchmark loaders on the real upstream files and on small files in the upstream formats."""

import json

import pytest

from read_clip import cli
from read_clip.benchmarks import BenchmarkFormatError, image_sets_for, load_benchmark
from read_clip.benchmarks.crepe import crepe_file
from read_clip.benchmarks.images import list_images

SUGARCREPE_COUNTS = {"add_att": 692, "add_obj": 2062, "replace_att": 788, "replace_obj": 1652,
                     "replace_rel": 1406, "swap_att": 666, "swap_obj": 245}
VALSE_VALID = {"existence": 505, "plurals": 851, "counting-hard": 868, "counting-small-quant": 900,
               "relations": 535, "actant-swap": 949}
EVAL_SETTINGS = {
    "benchmarks": ["whatsup", "valse", "crepe", "sugarcrepe", "sugarcrepe_pp"],
    "tie_policy": "argmax",
    "batch_size": 4,
    "image_roots": {"coco_val2014": "coco/val2014", "coco_val2017": "coco/val2017",
                    "coco_train2014": "coco/train2014", "visual_genome": "visual_genome",
                    "whatsup_controlled": "whatsup", "whatsup_vg": "whatsup/vg_images",
                    "visual7w": "visual7w/images", "swig": "swig/images_512",
                    "visdial": "visdial/VisualDialog_val2018"},
    "valse_datasets": {"visual7w": "visual7w", "SWiG": "swig", "coco2017": "coco_val2017",
                       "coco_2017": "coco_val2017", "coco2014": "coco_val2014", "coco_2014": "coco_val2014",
                       "visdial": "visdial", "VisDial": "visdial"},
}


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_crepe(folder, type_name, complexity, rows, header="image_id,caption,hard_negs,x,y,width,height"):
    path = folder / crepe_file(type_name, complexity)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def valse_record(dataset="visual7w", image_file="v7w_1.jpg", votes=3):
    return {"dataset": dataset, "image_file": image_file, "caption": "There are 2 dogs.",
            "foil": "There are 3 dogs.", "mturk": {"caption": votes, "foil": 0, "other": 0}}


def scpp_record(identifier="1", caption2="Two cats on a sofa."):
    return {"id": identifier, "filename": "000000000139.jpg", "caption": "A pair of cats on a sofa.",
            "caption2": caption2, "negative_caption": "A pair of dogs on a sofa."}


# Real upstream files.

def test_sugarcrepe_real_counts(annotations_dir):
    data = load_benchmark("sugarcrepe", annotations_dir / "sugarcrepe")
    assert len(data.items) == 7511
    assert data.subset_counts() == SUGARCREPE_COUNTS
    assert data.absent == []


def test_sugarcrepe_real_first_item(annotations_dir):
    item = load_benchmark("sugarcrepe", annotations_dir / "sugarcrepe").items[0]
    assert (item.item_id, item.subset) == ("0", "add_att")
    assert item.image.image_set == "coco_val2017"
    assert item.image.path == "000000085329.jpg"
    assert item.texts[0] == "A drawing of a young woman with many facial piercings."
    assert item.texts[1] == "A drawing of a tattooed young woman with many facial piercings."


def test_valse_real_valid_counts(annotations_dir):
    data = load_benchmark("valse", annotations_dir / "valse", EVAL_SETTINGS["valse_datasets"])
    assert data.subset_counts() == VALSE_VALID
    assert len(data.absent) == 5


def test_valse_real_image_sets(annotations_dir):
    data = load_benchmark("valse", annotations_dir / "valse", EVAL_SETTINGS["valse_datasets"])
    sets = {item.subset: item.image.image_set for item in data.items}
    assert sets["existence"] == "visual7w"
    assert sets["plurals"] == "coco_val2017"
    assert sets["relations"] == "coco_val2017"
    assert sets["actant-swap"] == "swig"


def test_check_data_real_sugarcrepe(annotations_dir, capsys):
    status = cli.main(["check-data", "sugarcrepe", "--root", str(annotations_dir / "sugarcrepe")])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["items"] == 7511
    assert report["subsets"] == SUGARCREPE_COUNTS
    assert report["missing_images"] is None


def test_check_data_real_valse(annotations_dir, capsys):
    status = cli.main(["check-data", "valse", "--root", str(annotations_dir / "valse")])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["subsets"] == VALSE_VALID
    assert "foil-it.json" in report["absent"]


def test_check_data_missing_images(annotations_dir, tmp_path, capsys):
    status = cli.main(["check-data", "sugarcrepe", "--root", str(annotations_dir / "sugarcrepe"),
                       "--image-root", f"coco_val2017={tmp_path}"])
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["missing_images"] == 1560
    assert report["missing_examples"][0].startswith("coco_val2017/")


def test_check_data_no_files(tmp_path):
    assert cli.main(["check-data", "whatsup", "--root", str(tmp_path)]) == 1


def test_check_data_invalid_file(tmp_path):
    write_json(tmp_path / "swap_obj.json", {"0": {"filename": "a.jpg", "caption": "x"}})
    assert cli.main(["check-data", "sugarcrepe", "--root", str(tmp_path)]) == 1


# Malformed records: the error names the file and the record.

def test_sugarcrepe_missing_field(tmp_path):
    path = write_json(tmp_path / "add_att.json", {"0": {"filename": "a.jpg", "caption": "x", "negative_caption": "y"},
                                                  "1": {"filename": "b.jpg", "caption": "x"}})
    with pytest.raises(BenchmarkFormatError) as error:
        load_benchmark("sugarcrepe", tmp_path)
    assert str(path) in str(error.value)
    assert "record '1'" in str(error.value)
    assert "'negative_caption' is missing" in str(error.value)


def test_sugarcrepe_wrong_type(tmp_path):
    write_json(tmp_path / "add_att.json", {"0": {"filename": 7, "caption": "x", "negative_caption": "y"}})
    with pytest.raises(BenchmarkFormatError, match=r"add_att.json: record '0': field 'filename' is int"):
        load_benchmark("sugarcrepe", tmp_path)


def test_sugarcrepe_invalid_json(tmp_path):
    (tmp_path / "add_att.json").write_text('{"0": {', encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match="add_att.json: not valid JSON"):
        load_benchmark("sugarcrepe", tmp_path)


def test_scpp_keeps_duplicates(tmp_path):
    record = scpp_record()
    equal_positives = scpp_record("2", caption2=record["caption"])
    write_json(tmp_path / "swap_att.json", [record, record, equal_positives])
    data = load_benchmark("sugarcrepe_pp", tmp_path)
    assert [item.item_id for item in data.items] == ["0", "1", "2"]
    assert data.items[0].texts == ("A pair of cats on a sofa.", "Two cats on a sofa.", "A pair of dogs on a sofa.")
    assert data.items[2].texts[0] == data.items[2].texts[1]
    assert len(data.absent) == 4


def test_scpp_missing_field(tmp_path):
    bad = scpp_record()
    del bad["caption2"]
    path = write_json(tmp_path / "replace_rel.json", [scpp_record(), bad])
    with pytest.raises(BenchmarkFormatError) as error:
        load_benchmark("sugarcrepe_pp", tmp_path)
    assert str(path) in str(error.value)
    assert "record 1: field 'caption2' is missing" in str(error.value)


def test_scpp_not_a_list(tmp_path):
    write_json(tmp_path / "replace_rel.json", {"0": scpp_record()})
    with pytest.raises(BenchmarkFormatError, match="expected a list"):
        load_benchmark("sugarcrepe_pp", tmp_path)


def test_whatsup_formats(tmp_path):
    options = ["A mug on a table", "A mug under a table", "A mug to the left of a table", "A mug to the right of a table"]
    write_json(tmp_path / "controlled_images_dataset.json",
               [{"image_path": "data/controlled_images/mug_on_table.jpeg", "caption_options": options}])
    write_json(tmp_path / "coco_qa_one_obj.json", [[139, "A dog on the left", "A dog on the right"]])
    write_json(tmp_path / "vg_qa_two_obj_v2.json", [["2345", "A cup above a plate", "A cup below a plate"]])
    data = load_benchmark("whatsup", tmp_path)
    controlled, coco, vg = data.items
    assert (controlled.subset, controlled.image.image_set, controlled.image.path) == (
        "controlled_a", "whatsup_controlled", "controlled_images/mug_on_table.jpeg")
    assert controlled.texts == tuple(options)
    assert (coco.subset, coco.image.image_set, coco.image.path) == ("coco_one", "coco_val2017", "000000000139.jpg")
    assert (vg.subset, vg.image.image_set, vg.image.path) == ("vg_two", "whatsup_vg", "2345.jpg")
    assert vg.texts == ("A cup above a plate", "A cup below a plate")
    assert data.files == ["controlled_images_dataset.json", "coco_qa_one_obj.json", "vg_qa_two_obj_v2.json"]


def test_whatsup_controlled_options(tmp_path):
    path = write_json(tmp_path / "controlled_clevr_dataset.json",
                      [{"image_path": "data/controlled_clevr/a.jpeg", "caption_options": ["x", "y", "z"]}])
    with pytest.raises(BenchmarkFormatError) as error:
        load_benchmark("whatsup", tmp_path)
    assert str(path) in str(error.value)
    assert "record 0: field 'caption_options' has 3 entries, expected 4" in str(error.value)


def test_whatsup_controlled_missing_field(tmp_path):
    write_json(tmp_path / "controlled_images_dataset.json", [{"caption_options": ["a", "b", "c", "d"]}])
    with pytest.raises(BenchmarkFormatError, match="record 0: field 'image_path' is missing"):
        load_benchmark("whatsup", tmp_path)


def test_whatsup_qa_shape(tmp_path):
    path = write_json(tmp_path / "vg_qa_one_obj.json", [[1, "a", "b"], {"image_id": 2}])
    with pytest.raises(BenchmarkFormatError) as error:
        load_benchmark("whatsup", tmp_path)
    assert str(path) in str(error.value)
    assert "record 1: is" in str(error.value)
    assert "expected [image_id, correct caption, wrong caption]" in str(error.value)


def test_whatsup_qa_caption_type(tmp_path):
    write_json(tmp_path / "coco_qa_two_obj.json", [[1, "a", None]])
    with pytest.raises(BenchmarkFormatError, match=r"coco_qa_two_obj.json: record 0: field 'captions\[1\]' is NoneType"):
        load_benchmark("whatsup", tmp_path)


def test_valse_drops_invalid(tmp_path):
    write_json(tmp_path / "existence.json", {"a": valse_record(votes=3), "b": valse_record(votes=1),
                                             "c": valse_record(votes=2)})
    data = load_benchmark("valse", tmp_path, EVAL_SETTINGS["valse_datasets"])
    assert [item.item_id for item in data.items] == ["a", "c"]
    assert data.items[0].texts == ("There are 2 dogs.", "There are 3 dogs.")


def test_valse_train2014_rule(tmp_path):
    write_json(tmp_path / "coreference-standard.json",
               {"a": valse_record("visdial", "COCO_train2014_000000000009.jpg"),
                "b": valse_record("coco_2014", "COCO_val2014_000000000042.jpg")})
    data = load_benchmark("valse", tmp_path, EVAL_SETTINGS["valse_datasets"])
    assert data.items[0].image.image_set == "coco_train2014"
    assert data.items[1].image.image_set == "coco_val2014"


def test_valse_unknown_dataset(tmp_path):
    path = write_json(tmp_path / "foil-it.json", {"s1": valse_record("flickr30k")})
    with pytest.raises(BenchmarkFormatError) as error:
        load_benchmark("valse", tmp_path, EVAL_SETTINGS["valse_datasets"])
    assert str(path) in str(error.value)
    assert "record 's1': dataset 'flickr30k'" in str(error.value)
    assert "eval.valse_datasets" in str(error.value)


def test_valse_votes_wrong_type(tmp_path):
    write_json(tmp_path / "plurals.json", {"s1": valse_record(votes="3")})
    with pytest.raises(BenchmarkFormatError, match=r"plurals.json: record 's1' \(mturk\): field 'caption' is str"):
        load_benchmark("valse", tmp_path, EVAL_SETTINGS["valse_datasets"])


def test_valse_missing_field(tmp_path):
    record = valse_record()
    del record["foil"]
    write_json(tmp_path / "relations.json", {"s1": record})
    with pytest.raises(BenchmarkFormatError, match="relations.json: record 's1': field 'foil' is missing"):
        load_benchmark("valse", tmp_path, EVAL_SETTINGS["valse_datasets"])


def test_crepe_rows(tmp_path):
    write_crepe(tmp_path, "atom", 4, ['1,a red car,"[\'a blue car\', \'a red bus\']",10,20,30,40'])
    write_crepe(tmp_path, "negate", 12, ['2,a man,"[\'no man\', \'a woman\', \'a boy\', \'a girl\', \'a dog\']",0,0,5,5'])
    write_crepe(tmp_path, "swap", 3, ['3,x,"[\'y\']",0,0,1,1'])  # complexity 3 is not in the productivity split
    data = load_benchmark("crepe", tmp_path)
    atom, negate = data.items
    assert (atom.item_id, atom.subset, atom.complexity) == ("complexity_4/0", "atom", 4)
    assert atom.texts == ("a red car", "a blue car", "a red bus")
    assert atom.image.box == (10.0, 20.0, 40.0, 60.0)
    assert atom.image.path == "VG_100K/1.jpg"
    assert atom.image.alternatives == ("VG_100K_2/1.jpg",)
    assert (negate.subset, negate.complexity, len(negate.texts)) == ("negate", 12, 6)
    assert len(data.files) == 2
    assert len(data.absent) == 25


def test_crepe_bad_literal(tmp_path):
    path = write_crepe(tmp_path, "swap", 5, ['1,a,"[\'b\']",0,0,1,1', '2,a,"[\'b\', __import__(\'os\')]",0,0,1,1'])
    with pytest.raises(BenchmarkFormatError) as error:
        load_benchmark("crepe", tmp_path)
    assert str(path) in str(error.value)
    assert "record 1 (ending on line 3): hard_negs" in str(error.value)
    assert "is not a Python literal" in str(error.value)


def test_crepe_negatives_not_strings(tmp_path):
    write_crepe(tmp_path, "swap", 5, ['1,a,"[1, 2]",0,0,1,1'])
    with pytest.raises(BenchmarkFormatError, match=r"field 'hard_negs\[0\]' is int"):
        load_benchmark("crepe", tmp_path)


def test_crepe_missing_column(tmp_path):
    write_crepe(tmp_path, "atom", 7, ['1,a,"[\'b\']",0,0,1'], header="image_id,caption,hard_negs,x,y,width")
    with pytest.raises(BenchmarkFormatError, match=r"complexity_7.csv: record \(header\): columns \['height'\] are missing"):
        load_benchmark("crepe", tmp_path)


def test_crepe_bad_box(tmp_path):
    write_crepe(tmp_path, "atom", 8, ['1,a,"[\'b\']",0,0,abc,1'])
    with pytest.raises(BenchmarkFormatError, match="record 0 .*: width is 'abc', expected a number"):
        load_benchmark("crepe", tmp_path)


# Image sets.

def test_image_sets_static():
    assert image_sets_for("sugarcrepe", EVAL_SETTINGS) == ["coco_val2017"]
    assert image_sets_for("sugarcrepe_pp", EVAL_SETTINGS) == ["coco_val2017"]
    assert image_sets_for("whatsup", EVAL_SETTINGS) == ["whatsup_controlled", "coco_val2017", "whatsup_vg"]
    assert image_sets_for("crepe", EVAL_SETTINGS) == []
    assert image_sets_for("valse", EVAL_SETTINGS) == [
        "coco_train2014", "coco_val2014", "coco_val2017", "swig", "visdial", "visual7w"]


def test_image_sets_unknown_root():
    settings = {**EVAL_SETTINGS, "image_roots": {"coco_val2017": "coco/val2017"}}
    with pytest.raises(ValueError, match="eval.image_roots"):
        image_sets_for("whatsup", settings)


def test_list_images_union(tmp_path):
    write_json(tmp_path / "sugarcrepe" / "swap_obj.json", {
        "0": {"filename": "000000000002.jpg", "caption": "a", "negative_caption": "b"},
        "1": {"filename": "000000000001.jpg", "caption": "c", "negative_caption": "d"}})
    write_json(tmp_path / "sugarcrepe_pp" / "swap_obj.json", [scpp_record()])
    write_json(tmp_path / "whatsup" / "coco_qa_one_obj.json", [[2, "a", "b"]])
    settings = {**EVAL_SETTINGS, "benchmarks": ["sugarcrepe", "sugarcrepe_pp", "whatsup"]}
    assert list_images("coco_val2017", tmp_path, settings) == [
        "000000000001.jpg", "000000000002.jpg", "000000000139.jpg"]
    assert list_images("whatsup_vg", tmp_path, settings) == []


def test_list_images_command(tmp_path):
    write_json(tmp_path / "valse" / "existence.json", {"a": valse_record(image_file="v7w_9.jpg"),
                                                       "b": valse_record(image_file="v7w_3.jpg", votes=0)})
    out = tmp_path / "out" / "visual7w.txt"
    settings = {**EVAL_SETTINGS, "benchmarks": ["valse"]}
    status = cli.main(["list-images", "--image-set", "visual7w", "--data-root", str(tmp_path),
                       "--settings", json.dumps(settings), "--out", str(out)])
    assert status == 0
    assert out.read_text(encoding="utf-8") == "v7w_9.jpg\n"
