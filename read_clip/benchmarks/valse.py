"""Loader of VALSE (Heidelberg-NLP/VALSE `data/<piece>.json`): caption vs foil, valid items only.

Each file is an object keyed by sample id; each value has `dataset`, `image_file`, `caption`,
`foil` and `mturk` = {caption, foil, other} (annotator votes), plus keys that vary by piece.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from read_clip.benchmarks.items import (
    BenchmarkData,
    BenchmarkFormatError,
    ImageRef,
    Item,
    no_files_error,
    read_subset_files,
    require_field,
)

VALSE_PIECES = (
    "existence", "plurals", "counting-hard", "counting-small-quant", "counting-adversarial",
    "relations", "action-replacement", "actant-swap", "coreference-standard", "coreference-hard",
    "foil-it",
)
# An item is valid when at least 2 of 3 annotators judged the caption a correct description.
MIN_CAPTION_VOTES = 2
# Spellings of `dataset` in the upstream files -> image set; the workflow passes the same mapping
# from config `eval.valse_datasets`, and `check-data` uses this one unless given another.
UPSTREAM_DATASETS = {
    "visual7w": "visual7w", "SWiG": "swig", "coco2017": "coco_val2017", "coco_2017": "coco_val2017",
    "coco2014": "coco_val2014", "coco_2014": "coco_val2014", "visdial": "visdial", "VisDial": "visdial",
    "VisDial_v1.0": "visdial", "FOIL dataset": "coco_val2014",
}
# A COCO 2014 file name says its folder, whatever the record's `dataset` value: upstream
# coreference-standard files COCO_val2014_* images under "VisDial_v1.0". NOTE: which pieces use
# train2014 has not been checked on the pieces that are not available here.
COCO2014_PREFIXES = {"COCO_train2014_": "coco_train2014", "COCO_val2014_": "coco_val2014"}


def load_valse(folder: str | Path, datasets: Mapping[str, str]) -> BenchmarkData:
    """Load the valid items of every piece present; `datasets` maps `dataset` values to image sets.

    Item ids are the sample ids (JSON keys); texts are (caption, foil).
    """
    folder = Path(folder)
    data = BenchmarkData("valse", [])
    for piece, path, records in read_subset_files(data, folder, VALSE_PIECES, dict, "an object keyed by sample id"):
        for key, record in records.items():
            item = parse_record(path, piece, key, record, datasets)
            if item is not None:
                data.items.append(item)
    if not data.files:
        raise no_files_error("VALSE", folder, [f"{p}.json" for p in VALSE_PIECES])
    return data


def parse_record(path: Path, piece: str, key: str, record: object,
                 datasets: Mapping[str, str]) -> Item | None:
    """Check one sample and return it as an Item, or None when annotators judged it invalid."""
    where = repr(key)
    dataset = require_field(path, where, record, "dataset", str)
    image_file = require_field(path, where, record, "image_file", str)
    caption = require_field(path, where, record, "caption", str)
    foil = require_field(path, where, record, "foil", str)
    mturk = require_field(path, where, record, "mturk", dict)
    votes = require_field(path, f"{where} (mturk)", mturk, "caption", int)
    if votes < MIN_CAPTION_VOTES:
        return None

    prefix_set = next((name for prefix, name in COCO2014_PREFIXES.items() if image_file.startswith(prefix)), None)
    if prefix_set is not None:
        image_set = prefix_set
    elif dataset in datasets:
        image_set = datasets[dataset]
    else:
        raise BenchmarkFormatError(
            f"{path}: record {where}: dataset {dataset!r} has no image set; add it to config "
            f"eval.valse_datasets (known values: {sorted(datasets)})."
        )
    return Item(key, piece, ImageRef(image_set, image_file), (caption, foil))


def image_sets(datasets: Mapping[str, str]) -> list[str]:
    """Image sets the VALSE loader can produce under this mapping, sorted."""
    return sorted({*datasets.values(), *COCO2014_PREFIXES.values()})
