"""The two aggregation protocols, from per-subset (accuracy in percent, item count).

READ-CLIP protocol (the headline table):
    SugarCrepe      plain mean of the 7 subsets
    SugarCrepe++    plain mean of the 5 subsets, ITT and TOT separately
    WhatsUp         mean of 3 groups, items pooled in each: controlled (A+B), COCO-QA, VG-QA
    VALSE           pooled over all valid items
    CREPE           mean over the types atom, swap, negate (each pooled over complexities 4..12)
vl_compo protocol (ytaek-oh/vl_compo, as FSC-CLIP reports):
    SugarCrepe      mean of 3 categories (replace, swap, add), items pooled in each
    WhatsUp         plain mean of the 6 subsets
    VALSE           mean of 7 instruments: existence, plurals, counting (mean of 3 pieces),
                    relations, actions (mean of 2), coreference (mean of 2), foil-it
    CREPE           as above
SugarCrepe's own single number pools all items; `pooled` computes it.

NOTE: READ-CLIP's own CREPE grouping is unknown (its data copy groups by file name); both protocols
use the type mean. A group none of whose subsets were scored is left out of its mean, so a
benchmark with absent files aggregates over what is present (see `missing_subsets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from read_clip.benchmarks.crepe import CREPE_TYPES
from read_clip.benchmarks.sugarcrepe import SUGARCREPE_PP_SUBSETS, SUGARCREPE_SUBSETS
from read_clip.benchmarks.valse import VALSE_PIECES
from read_clip.benchmarks.whatsup import WHATSUP_FILES


@dataclass(frozen=True)
class SubsetScore:
    """Accuracy in percent over `items` items."""

    accuracy: float
    items: int


Scores = Mapping[str, SubsetScore]

SUGARCREPE_CATEGORIES = {
    "replace": ("replace_obj", "replace_att", "replace_rel"),
    "swap": ("swap_obj", "swap_att"),
    "add": ("add_obj", "add_att"),
}
WHATSUP_GROUPS = {
    "controlled": ("controlled_a", "controlled_b"),
    "coco_qa": ("coco_one", "coco_two"),
    "vg_qa": ("vg_one", "vg_two"),
}
VALSE_INSTRUMENTS = {
    "existence": ("existence",),
    "plurals": ("plurals",),
    "counting": ("counting-hard", "counting-small-quant", "counting-adversarial"),
    "relations": ("relations",),
    "actions": ("action-replacement", "actant-swap"),
    "coreference": ("coreference-standard", "coreference-hard"),
    "foil-it": ("foil-it",),
}
EXPECTED_SUBSETS = {
    "sugarcrepe": SUGARCREPE_SUBSETS,
    "sugarcrepe_pp": tuple(f"{task}/{s}" for task in ("itt", "tot") for s in SUGARCREPE_PP_SUBSETS),
    "whatsup": tuple(WHATSUP_FILES),
    "valse": VALSE_PIECES,
    "crepe": CREPE_TYPES,
}


def pooled(scores: Scores) -> float:
    """Accuracy over all items of the given subsets (micro average)."""
    total = sum(s.items for s in scores.values())
    if total == 0:
        raise ValueError(f"cannot pool subsets {sorted(scores)}: they hold no items")
    return sum(s.accuracy * s.items for s in scores.values()) / total


def plain_mean(values: list[float]) -> float:
    if not values:
        raise ValueError("no subset to average: the benchmark produced no scores")
    return sum(values) / len(values)


def group_values(scores: Scores, groups: Mapping[str, tuple[str, ...]], pool: bool) -> list[float]:
    """Compute one value per group that has scored subsets: pooled over items, or the plain subset mean."""
    values = []
    for members in groups.values():
        present = {name: scores[name] for name in members if name in scores}
        if present:
            values.append(pooled(present) if pool else plain_mean([s.accuracy for s in present.values()]))
    return values


def check_subsets(benchmark: str, scores: Scores) -> None:
    unknown = sorted(set(scores) - set(EXPECTED_SUBSETS[benchmark]))
    if unknown:
        raise ValueError(f"unknown {benchmark} subsets {unknown}; expected names from {list(EXPECTED_SUBSETS[benchmark])}")


def missing_subsets(benchmark: str, scores: Scores) -> list[str]:
    """Expected subsets of `benchmark` that have no score."""
    return [name for name in EXPECTED_SUBSETS[benchmark] if name not in scores]


def read_clip_protocol(benchmark: str, scores: Scores) -> dict[str, float]:
    """Headline numbers of one benchmark, keyed by results-table column."""
    check_subsets(benchmark, scores)
    if benchmark == "sugarcrepe":
        return {"SugarCrepe": plain_mean([s.accuracy for s in scores.values()])}
    if benchmark == "sugarcrepe_pp":
        return {f"SC++ {task.upper()}": plain_mean([s.accuracy for name, s in scores.items()
                                                    if name.startswith(f"{task}/")])
                for task in ("itt", "tot")}
    if benchmark == "whatsup":
        return {"WhatsUp": plain_mean(group_values(scores, WHATSUP_GROUPS, pool=True))}
    if benchmark == "valse":
        return {"VALSE": pooled(scores)}
    return {"CREPE": plain_mean([scores[t].accuracy for t in CREPE_TYPES if t in scores])}


def vl_compo_protocol(benchmark: str, scores: Scores) -> dict[str, float]:
    """vl_compo numbers of one benchmark, keyed by results-table column; SugarCrepe++ has none."""
    check_subsets(benchmark, scores)
    if benchmark == "sugarcrepe":
        return {"SugarCrepe": plain_mean(group_values(scores, SUGARCREPE_CATEGORIES, pool=True))}
    if benchmark == "sugarcrepe_pp":
        return {}
    if benchmark == "whatsup":
        return {"WhatsUp": plain_mean([s.accuracy for s in scores.values()])}
    if benchmark == "valse":
        return {"VALSE": plain_mean(group_values(scores, VALSE_INSTRUMENTS, pool=False))}
    return {"CREPE": plain_mean([scores[t].accuracy for t in CREPE_TYPES if t in scores])}
