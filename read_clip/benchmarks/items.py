"""Records shared by every benchmark loader, and the checks that build them from upstream files.

Every loader turns its upstream format into a list of `Item`s: one image (or none) and the
candidate texts with the gold text first. Scoring, image listing and `check-data` only ever see
these records, so a new benchmark needs only a loader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BenchmarkFormatError(ValueError):
    """An annotation file that does not have the structure of its upstream release."""


@dataclass(frozen=True)
class ImageRef:
    """An image as (image set, path relative to the set's folder), optionally cropped.

    `box` is (left, upper, right, lower) in pixels, applied before preprocessing. `alternatives`
    are further relative paths tried in order when `path` does not exist, because Visual Genome
    spreads its images over two folders.
    """

    image_set: str
    path: str
    box: tuple[float, float, float, float] | None = None
    alternatives: tuple[str, ...] = ()

    def candidates(self) -> tuple[str, ...]:
        return (self.path, *self.alternatives)


@dataclass(frozen=True)
class Item:
    """One benchmark item: an image (or none) and its candidate texts, gold first.

    SugarCrepe++ items carry three texts (P1, P2, N) of which the first two are gold.
    `complexity` is set for CREPE only (4..12).
    """

    item_id: str
    subset: str
    image: ImageRef | None
    texts: tuple[str, ...]
    complexity: int | None = None


@dataclass
class BenchmarkData:
    """The items of one benchmark, with the annotation files read and the expected ones absent."""

    benchmark: str
    items: list[Item]
    files: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def subset_counts(self) -> dict[str, int]:
        """Items per subset, in the order the subsets were loaded."""
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.subset] = counts.get(item.subset, 0) + 1
        return counts


def read_json(path: Path) -> Any:
    """Parse a JSON annotation file, naming the file and position when it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(
            f"{path}: not valid JSON ({error}). Download the file again; it may be truncated."
        ) from error


def format_error(path: Path, record: object, problem: str) -> BenchmarkFormatError:
    """Build the error for one record that does not fit the expected structure."""
    return BenchmarkFormatError(
        f"{path}: record {record}: {problem}. The file does not match the upstream format; "
        "download it again or fix that record."
    )


def require_type(path: Path, record: object, name: str, value: Any, expected: type | tuple) -> Any:
    """Return `value` if it has the expected type, else raise naming the file, record and field."""
    # bool is a subclass of int, but a JSON true/false is never a valid count or id here.
    if isinstance(value, expected) and not isinstance(value, bool):
        return value
    names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
    raise format_error(path, record, f"field {name!r} is {type(value).__name__} {value!r:.80}, expected {names}")


def require_field(path: Path, record: object, data: Any, name: str, expected: type | tuple) -> Any:
    """Return `data[name]`, checking that `data` is an object that has the field with that type."""
    if not isinstance(data, dict):
        raise format_error(path, record, f"is {type(data).__name__}, expected a JSON object")
    if name not in data:
        raise format_error(path, record, f"field {name!r} is missing (fields present: {sorted(data)})")
    return require_type(path, record, name, data[name], expected)


def require_texts(path: Path, record: object, name: str, value: Any, count: int | None) -> tuple[str, ...]:
    """Check a list of strings (of exactly `count` entries unless None) and return it as a tuple."""
    require_type(path, record, name, value, (list, tuple))
    if count is not None and len(value) != count:
        raise format_error(path, record, f"field {name!r} has {len(value)} entries, expected {count}")
    for index, text in enumerate(value):
        require_type(path, record, f"{name}[{index}]", text, str)
    return tuple(value)


def read_subset_files(data: BenchmarkData, folder: Path, subsets: tuple[str, ...] | list[str],
                      top_type: type, expected: str) -> Iterator[tuple[str, Path, Any]]:
    """Yield (subset, path, records) for each `<subset>.json` present in `folder`.

    Absent files are listed in `data.absent`; a file is listed in `data.files` once the caller has
    parsed its records. A top level that is not `top_type` raises, naming the file.
    """
    for subset in subsets:
        path = folder / f"{subset}.json"
        if not path.is_file():
            data.absent.append(path.name)
            continue
        records = read_json(path)
        if not isinstance(records, top_type):
            raise format_error(path, "(top level)", f"is a JSON {type(records).__name__}, expected {expected}")
        yield subset, path, records
        data.files.append(path.name)


def find_present(folder: Path, names: tuple[str, ...]) -> Path | None:
    """Return the first of `names` that exists in `folder` (upstream renamed some files)."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def no_files_error(benchmark: str, folder: Path, expected: list[str]) -> FileNotFoundError:
    return FileNotFoundError(
        f"no {benchmark} annotation file found in {folder}; expected at least one of: "
        + ", ".join(expected) + ". Check data.root and that the benchmark was downloaded."
    )
