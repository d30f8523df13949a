"""One entry point for every benchmark loader, and which image sets each benchmark reads.

Each benchmark's annotation files live in `<data root>/<benchmark name>/` in their upstream layout.
This module imports no torch, so the workflow can import it when it parses the Snakefile.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from read_clip.benchmarks import crepe, sugarcrepe, valse, whatsup
from read_clip.benchmarks.items import BenchmarkData

BENCHMARKS = ("whatsup", "valse", "crepe", "sugarcrepe", "sugarcrepe_pp")


def check_benchmark(name: str) -> None:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {list(BENCHMARKS)}")


def load_benchmark(name: str, folder: str | Path,
                   valse_datasets: Mapping[str, str] | None = None) -> BenchmarkData:
    """Load one benchmark from the folder holding its annotation files.

    `valse_datasets` (config `eval.valse_datasets`) is used by VALSE only; when None, the
    upstream spellings in `valse.UPSTREAM_DATASETS` apply.
    """
    check_benchmark(name)
    if name == "sugarcrepe":
        return sugarcrepe.load_sugarcrepe(folder)
    if name == "sugarcrepe_pp":
        return sugarcrepe.load_sugarcrepe_pp(folder)
    if name == "whatsup":
        return whatsup.load_whatsup(folder)
    if name == "valse":
        return valse.load_valse(folder, valse.UPSTREAM_DATASETS if valse_datasets is None else valse_datasets)
    return crepe.load_crepe(folder)


def benchmark_folder(data_root: str | Path, name: str) -> Path:
    """Return the folder of one benchmark's annotation files under the data root."""
    check_benchmark(name)
    return Path(data_root) / name


def image_sets_for(benchmark: str, eval_settings: Mapping) -> list[str]:
    """Image sets whose shared embeddings `benchmark` needs, known without reading any data.

    `eval_settings` is the config's `eval` section. CREPE needs none: it embeds its own crops.
    Raises ValueError when a set is missing from `eval_settings["image_roots"]`.
    """
    check_benchmark(benchmark)
    if benchmark in ("sugarcrepe", "sugarcrepe_pp"):
        sets = [sugarcrepe.IMAGE_SET]
    elif benchmark == "whatsup":
        sets = [whatsup.CONTROLLED_SET, whatsup.COCO_SET, whatsup.VG_SET]
    elif benchmark == "valse":
        sets = valse.image_sets(eval_settings["valse_datasets"])
    else:
        sets = []
    unknown = [s for s in sets if s not in eval_settings["image_roots"]]
    if unknown:
        raise ValueError(
            f"image sets {unknown} used by {benchmark} have no folder in config eval.image_roots "
            f"(known sets: {sorted(eval_settings['image_roots'])}); add them there."
        )
    return sets
