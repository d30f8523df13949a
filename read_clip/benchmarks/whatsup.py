"""Loader of WhatsUp (amitakamath/whatsup_vlms): two controlled subsets and four QA subsets.

NOTE: the files are hosted only on Google Drive and have not been seen by this project. The
formats follow the authors' loader code:
- controlled: a list of {"image_path": "data/controlled_images/x.jpeg", "caption_options": [4 texts]};
- QA: a list of [image_id, correct caption, wrong caption], images from COCO val2017 (coco_*) or
  the authors' vg_images folder (vg_*).
"""

from __future__ import annotations

from pathlib import Path

from read_clip.benchmarks.items import (
    BenchmarkData,
    ImageRef,
    Item,
    find_present,
    format_error,
    no_files_error,
    read_json,
    require_field,
    require_texts,
    require_type,
)

CONTROLLED_SET = "whatsup_controlled"
COCO_SET = "coco_val2017"
VG_SET = "whatsup_vg"

# subset -> (file names accepted, newest first; older releases carry a `_v2` suffix)
WHATSUP_FILES: dict[str, tuple[str, ...]] = {
    "controlled_a": ("controlled_images_dataset.json", "controlled_images_dataset_v2.json"),
    "controlled_b": ("controlled_clevr_dataset.json", "controlled_clevr_dataset_v2.json"),
    "coco_one": ("coco_qa_one_obj.json", "coco_qa_one_obj_v2.json"),
    "coco_two": ("coco_qa_two_obj.json", "coco_qa_two_obj_v2.json"),
    "vg_one": ("vg_qa_one_obj.json", "vg_qa_one_obj_v2.json"),
    "vg_two": ("vg_qa_two_obj.json", "vg_qa_two_obj_v2.json"),
}
CONTROLLED_OPTIONS = 4
# The authors' repository keeps its images under data/; the image set folder replaces that prefix.
REPO_PREFIX = "data/"


def load_whatsup(folder: str | Path) -> BenchmarkData:
    """Load every WhatsUp subset present in `folder`; item ids are list positions."""
    folder = Path(folder)
    data = BenchmarkData("whatsup", [])
    for subset, names in WHATSUP_FILES.items():
        path = find_present(folder, names)
        if path is None:
            data.absent.append(names[0])
            continue
        records = read_json(path)
        if not isinstance(records, list):
            raise format_error(path, "(top level)", f"is a JSON {type(records).__name__}, expected a list")
        parse = parse_controlled if subset.startswith("controlled") else parse_qa
        for index, record in enumerate(records):
            data.items.append(parse(path, subset, index, record))
        data.files.append(path.name)
    if not data.files:
        raise no_files_error("WhatsUp", folder, [names[0] for names in WHATSUP_FILES.values()])
    return data


def parse_controlled(path: Path, subset: str, index: int, record: object) -> Item:
    image_path = require_field(path, index, record, "image_path", str)
    options = require_field(path, index, record, "caption_options", list)
    texts = require_texts(path, index, "caption_options", options, CONTROLLED_OPTIONS)
    relative = image_path.removeprefix(REPO_PREFIX)
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise format_error(path, index, f"field 'image_path' is {image_path!r}, expected a path inside the repository")
    return Item(str(index), subset, ImageRef(CONTROLLED_SET, relative), texts)


def parse_qa(path: Path, subset: str, index: int, record: object) -> Item:
    if not isinstance(record, list) or len(record) != 3:
        raise format_error(path, index, f"is {record!r:.120}, expected [image_id, correct caption, wrong caption]")
    image_id = require_type(path, index, "image_id", record[0], (int, str))
    if not str(image_id).isdigit():
        raise format_error(path, index, f"image_id is {image_id!r}, expected a number")
    texts = require_texts(path, index, "captions", record[1:], 2)
    if subset.startswith("coco"):
        # COCO val2017 file names are the id zero-padded to 12 digits.
        ref = ImageRef(COCO_SET, f"{str(image_id).zfill(12)}.jpg")
    else:
        ref = ImageRef(VG_SET, f"{image_id}.jpg")
    return Item(str(index), subset, ref, texts)
