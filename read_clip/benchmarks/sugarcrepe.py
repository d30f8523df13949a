"""Loaders of SugarCrepe (RAIVNLab/sugar-crepe `data/`) and SugarCrepe++ (Sri-Harsha/scpp `data/`).

Both use COCO val2017 images, named by file name in the `filename` field.
"""

from __future__ import annotations

from pathlib import Path

from read_clip.benchmarks.items import (
    BenchmarkData,
    ImageRef,
    Item,
    no_files_error,
    read_subset_files,
    require_field,
)

IMAGE_SET = "coco_val2017"
SUGARCREPE_SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
# SugarCrepe++ has no add_* subsets.
SUGARCREPE_PP_SUBSETS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def load_sugarcrepe(folder: str | Path) -> BenchmarkData:
    """Load `<subset>.json` files: an object keyed "0", "1", ... of {filename, caption, negative_caption}.

    Item ids are the JSON keys; texts are (caption, negative_caption).
    """
    folder = Path(folder)
    data = BenchmarkData("sugarcrepe", [])
    files = read_subset_files(data, folder, SUGARCREPE_SUBSETS, dict, "an object keyed by item id")
    for subset, path, records in files:
        for key, record in records.items():
            filename = require_field(path, repr(key), record, "filename", str)
            caption = require_field(path, repr(key), record, "caption", str)
            negative = require_field(path, repr(key), record, "negative_caption", str)
            data.items.append(Item(key, subset, ImageRef(IMAGE_SET, filename), (caption, negative)))
    if not data.files:
        raise no_files_error("SugarCrepe", folder, [f"{s}.json" for s in SUGARCREPE_SUBSETS])
    return data


def load_sugarcrepe_pp(folder: str | Path) -> BenchmarkData:
    """Load `<subset>.json` files: a list of {id, filename, caption, caption2, negative_caption}.

    Item ids are list positions, because upstream `id` values need not be unique (the data
    contains an exact duplicate item, which is kept, as is an item whose two positives are equal).
    Texts are (caption, caption2, negative_caption) = (P1, P2, N).
    """
    folder = Path(folder)
    data = BenchmarkData("sugarcrepe_pp", [])
    files = read_subset_files(data, folder, SUGARCREPE_PP_SUBSETS, list, "a list of items")
    for subset, path, records in files:
        for index, record in enumerate(records):
            where = f"{index}"
            require_field(path, where, record, "id", (str, int))
            filename = require_field(path, where, record, "filename", str)
            texts = tuple(require_field(path, where, record, name, str)
                          for name in ("caption", "caption2", "negative_caption"))
            data.items.append(Item(str(index), subset, ImageRef(IMAGE_SET, filename), texts))
    if not data.files:
        raise no_files_error("SugarCrepe++", folder, [f"{s}.json" for s in SUGARCREPE_PP_SUBSETS])
    return data
