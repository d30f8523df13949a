"""Loader of CREPE's productivity split (RAIVNLab/CREPE `data/prod_hard_negatives.zip`).

27 CSV files `prod_hard_negatives/<type>/prod_vg_hard_negs_<type>_complexity_<k>.csv` (type atom,
swap or negate; k = 4..12) with columns image_id, caption, hard_negs (a Python-literal list of
strings, its length varying per row) and the crop box x, y, width, height in pixels.
NOTE: the files have not been seen by this project. The columns follow the authors' evaluation code.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path

from read_clip.benchmarks.items import (
    BenchmarkData,
    ImageRef,
    Item,
    format_error,
    no_files_error,
    require_texts,
)

IMAGE_SET = "visual_genome"
# Visual Genome spreads its images over two folders. The first folder that contains the file is used.
VG_FOLDERS = ("VG_100K", "VG_100K_2")
CREPE_TYPES = ("atom", "swap", "negate")
COMPLEXITIES = range(4, 13)
COLUMNS = ("image_id", "caption", "hard_negs", "x", "y", "width", "height")


def crepe_file(type_name: str, complexity: int) -> str:
    """Path of one CSV relative to the CREPE folder."""
    return f"prod_hard_negatives/{type_name}/prod_vg_hard_negs_{type_name}_complexity_{complexity}.csv"


def load_crepe(folder: str | Path) -> BenchmarkData:
    """Load every productivity CSV present; subsets are the types, complexity kept per item.

    Item ids are "complexity_<k>/<row>" with row counted from 0 after the header.
    """
    folder = Path(folder)
    data = BenchmarkData("crepe", [])
    for type_name in CREPE_TYPES:
        for complexity in COMPLEXITIES:
            relative = crepe_file(type_name, complexity)
            path = folder / relative
            if not path.is_file():
                data.absent.append(relative)
                continue
            data.items.extend(read_csv(path, type_name, complexity))
            data.files.append(relative)
    if not data.files:
        raise no_files_error("CREPE", folder, ["prod_hard_negatives/<type>/prod_vg_hard_negs_<type>_complexity_<k>.csv"])
    return data


def read_csv(path: Path, type_name: str, complexity: int) -> list[Item]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise format_error(path, "(header)", f"columns {missing} are missing (header: {reader.fieldnames})")
        items = []
        for row_index, row in enumerate(reader):
            # line_num is the file line where this row ends; quoted fields may span lines.
            where = f"{row_index} (ending on line {reader.line_num})"
            items.append(parse_row(path, where, type_name, complexity, row_index, row))
        return items


def parse_row(path: Path, where: str, type_name: str, complexity: int, row_index: int, row: dict) -> Item:
    short = [name for name in COLUMNS if row[name] is None]
    if short:
        raise format_error(path, where, f"has no value for {short}, expected one per header column")
    image_id = row["image_id"].strip()
    if not image_id.isdigit():
        raise format_error(path, where, f"image_id is {image_id!r}, expected a number")

    try:
        negatives = ast.literal_eval(row["hard_negs"])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise format_error(path, where, f"hard_negs {row['hard_negs']!r:.120} is not a Python literal ({error})") from error
    negatives = require_texts(path, where, "hard_negs", negatives, None)
    if not negatives:
        raise format_error(path, where, "hard_negs is empty, expected at least one negative")

    box = parse_box(path, where, row)
    ref = ImageRef(IMAGE_SET, f"{VG_FOLDERS[0]}/{image_id}.jpg", box,
                   alternatives=tuple(f"{name}/{image_id}.jpg" for name in VG_FOLDERS[1:]))
    return Item(f"complexity_{complexity}/{row_index}", type_name, ref, (row["caption"], *negatives), complexity)


def parse_box(path: Path, where: str, row: dict) -> tuple[float, float, float, float]:
    """Return the crop as (left, upper, right, lower) = (x, y, x + width, y + height)."""
    values = {}
    for name in ("x", "y", "width", "height"):
        try:
            values[name] = float(row[name])
        except ValueError:
            raise format_error(path, where, f"{name} is {row[name]!r}, expected a number of pixels") from None
    if values["width"] <= 0 or values["height"] <= 0:
        raise format_error(path, where, f"crop box {values} has no area, expected width and height > 0")
    x, y = values["x"], values["y"]
    return (x, y, x + values["width"], y + values["height"])
