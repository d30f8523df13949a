"""Percentile bootstrap intervals for every number of the report, from the per-item score tables.

The unit of resampling is a benchmark item, drawn with replacement within its subset (a stratum),
so every replicate keeps each subset's item count. SugarCrepe++ reports each loader subset twice
(ITT and TOT over the same items), so those two share one draw. Per replicate, the reported
subset accuracies are recomputed from the drawn items, then every benchmark number with the
functions of `aggregate` (the ones the summaries use), then the Average from the same replicate
of all six numbers.

All models scored on a benchmark are judged on the same draw, because the outcome matrix of a
stratum has one column per model. A difference between two models is therefore a paired
bootstrap, and a model compared with itself gives exactly 0.

Each (benchmark, stratum) draws from its own numpy Generator seeded from the run's seed and the
stratum's name, so a cell's interval does not change when models or benchmarks are added.

NOTE: items are resampled as independent units, although many share an image (SugarCrepe's 7,511
items use 1,560 COCO images), so the intervals can be somewhat narrower than a bootstrap over
images would give.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from read_clip.benchmarks import aggregate, scoring
from read_clip.results.table import AVERAGE, COLUMNS

PROTOCOLS = ("headline", "vl_compo")
# Rows of index draws made at once: bounds the (rows, items, models) gather to tens of megabytes.
BLOCK_ROWS = 100
# Extra row of the SugarCrepe subset table: SugarCrepe's own single number, pooled over all items.
POOLED = "pooled"

# (benchmark, stratum, items, replicates) -> blocks of item indices, each (rows, items)
Draws = Callable[[str, str, int, int], Iterator[np.ndarray]]


@dataclass(frozen=True)
class Stratum:
    """Items resampled together: one loader subset of one benchmark, aligned across models.

    item_ids: (n,) item ids in sorted order.
    outcomes: reported subset -> (n, M) bool, True where the item is correct; column j is model j.
    """

    name: str
    item_ids: np.ndarray
    outcomes: dict[str, np.ndarray]


@dataclass(frozen=True)
class BenchmarkOutcomes:
    """Per-item outcomes of one benchmark for the models that were scored on it."""

    benchmark: str
    models: tuple[str, ...]
    strata: tuple[Stratum, ...]

    def items(self) -> dict[str, int]:
        """Item count of every reported subset."""
        return {subset: len(s.item_ids) for s in self.strata for subset in s.outcomes}


@dataclass(frozen=True)
class Estimate:
    """One number of the report: its value on the scored items and on every bootstrap replicate.

    point: value in percent. replicates: (R,) values in percent, replicate r of every estimate
    comes from the same item draw.
    """

    point: float
    replicates: np.ndarray

    def interval(self, confidence: float) -> tuple[float, float]:
        """Return the percentile interval holding the central `confidence` share of the replicates."""
        return percentile_interval(self.replicates, confidence)


@dataclass(frozen=True)
class ReportEstimates:
    """Every bootstrapped number of the report.

    columns: protocol -> model -> table column (six benchmarks and Average) -> estimate.
    subsets: benchmark -> model -> reported subset (plus "pooled" for SugarCrepe) -> estimate.
    items: benchmark -> reported subset -> item count ("pooled" counts all SugarCrepe items).
    """

    columns: dict[str, dict[str, dict[str, Estimate]]]
    subsets: dict[str, dict[str, dict[str, Estimate]]]
    items: dict[str, dict[str, int]]
    replicates: int


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must lie strictly between 0 and 1 (e.g. 0.95)")
    tail = (1 - confidence) / 2
    lower, upper = np.quantile(replicates, [tail, 1 - tail])
    return float(lower), float(upper)


def read_outcomes(path: str | Path, benchmark: str, tie_policy: str) -> pd.DataFrame:
    """Judge every item of one per-item score table: columns subset, item_id, correct, tie."""
    try:
        scores = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the per-item score table ({error}); rerun score-benchmark") from error
    missing = [c for c in scoring.SCORE_SCHEMA.names if c not in scores.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} are missing; expected {scoring.SCORE_SCHEMA.names}")
    try:
        return scoring.item_outcomes(scores, benchmark, tie_policy)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def stratum_of(benchmark: str, subset: str) -> str:
    """Return the loader subset behind a reported subset ("itt/swap_att" and "tot/swap_att" share "swap_att")."""
    if benchmark == "sugarcrepe_pp":
        return subset.split("/", 1)[1]
    return subset


def align_outcomes(benchmark: str, outcomes_by_model: Mapping[str, pd.DataFrame]) -> BenchmarkOutcomes:
    """Build the per-stratum outcome matrices; raise unless every model judged the same items."""
    if not outcomes_by_model:
        raise ValueError(f"{benchmark}: no model has per-item outcomes to bootstrap")
    models = tuple(outcomes_by_model)
    long = pd.concat([frame[["subset", "item_id", "correct"]].assign(model=model)
                      for model, frame in outcomes_by_model.items()])
    wide = long.set_index(["subset", "item_id", "model"])["correct"].unstack("model").reindex(columns=list(models))
    partial = wide[wide.isna().any(axis=1)]
    if len(partial):
        subset, item_id = partial.index[0]
        absent = [m for m in models if pd.isna(partial.iloc[0][m])]
        raise ValueError(f"{benchmark}: {len(partial)} items are judged for some models only, first {subset}/{item_id} "
                         f"(absent for {absent}); rescore all models on the same benchmark files")

    by_stratum: dict[str, dict[str, pd.DataFrame]] = {}
    for subset, frame in wide.groupby(level="subset", sort=False):
        by_stratum.setdefault(stratum_of(benchmark, subset), {})[subset] = frame.droplevel("subset").sort_index()
    return BenchmarkOutcomes(benchmark, models, tuple(build_stratum(benchmark, name, frames)
                                                      for name, frames in by_stratum.items()))


def build_stratum(benchmark: str, name: str, frames: dict[str, pd.DataFrame]) -> Stratum:
    """Check that the reported subsets of one stratum hold the same items, then stack their outcomes."""
    first_subset, first = next(iter(frames.items()))
    for subset, frame in frames.items():
        if not frame.index.equals(first.index):
            raise ValueError(f"{benchmark}: subsets {first_subset} and {subset} judge different items "
                             "although they come from one loader subset; the score table is inconsistent")
    outcomes = {subset: frame.to_numpy(dtype=bool) for subset, frame in frames.items()}
    return Stratum(name, first.index.to_numpy(), outcomes)


def seeded_draws(seed: int) -> Draws:
    """Make index draws with replacement, from one Generator per (benchmark, stratum) seeded by `seed`."""
    def draw(benchmark: str, stratum: str, items: int, replicates: int) -> Iterator[np.ndarray]:
        # crc32 of the name is stable across processes, unlike hash().
        rng = np.random.default_rng([seed, zlib.crc32(f"{benchmark}/{stratum}".encode())])
        for start in range(0, replicates, BLOCK_ROWS):
            yield rng.integers(0, items, size=(min(BLOCK_ROWS, replicates - start), items))
    return draw


def resample_counts(outcomes: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Count correct items per replicate and model: outcomes (n, M) bool, indices (R, n) -> (R, M) int."""
    return outcomes[indices].sum(axis=1)


def subset_accuracies(data: BenchmarkOutcomes, replicates: int, draws: Draws) -> dict[str, np.ndarray]:
    """Compute the accuracy in percent of every reported subset on every replicate: subset -> (R, M)."""
    accuracies = {}
    for stratum in data.strata:
        n = len(stratum.item_ids)
        counts = {subset: [] for subset in stratum.outcomes}
        for indices in draws(data.benchmark, stratum.name, n, replicates):
            for subset, outcomes in stratum.outcomes.items():
                counts[subset].append(resample_counts(outcomes, indices))
        for subset, blocks in counts.items():
            accuracies[subset] = 100.0 * np.concatenate(blocks) / n
    return accuracies


def observed_accuracies(data: BenchmarkOutcomes) -> dict[str, np.ndarray]:
    """Compute the accuracy in percent of every reported subset on the scored items: subset -> (M,)."""
    return {subset: 100.0 * outcomes.mean(axis=0) for s in data.strata for subset, outcomes in s.outcomes.items()}


def protocol_columns(benchmark: str, accuracies: Mapping[str, np.ndarray], items: Mapping[str, int],
                     protocol: str) -> dict[str, np.ndarray]:
    """Compute the table columns of one benchmark under `protocol`, elementwise over accuracy arrays.

    The functions of `aggregate` only add, scale and average accuracies, so arrays of any shape
    (one value per replicate and model) pass through them and give one aggregate per element.
    """
    scores = {name: aggregate.SubsetScore(accuracy, items[name]) for name, accuracy in accuracies.items()}
    if protocol == "headline":
        return aggregate.read_clip_protocol(benchmark, scores)
    if protocol != "vl_compo":
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    if benchmark == "sugarcrepe_pp":
        # vl_compo does not report SugarCrepe++; its own scorer (plain mean of the subsets) is the
        # only definition, so both tables show the same SC++ numbers.
        return aggregate.read_clip_protocol(benchmark, scores)
    return aggregate.vl_compo_protocol(benchmark, scores)


def subset_values(data: BenchmarkOutcomes, accuracies: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the reported subsets, plus SugarCrepe's pooled number over all its items."""
    values = dict(accuracies)
    if data.benchmark == "sugarcrepe":
        items = data.items()
        scores = {name: aggregate.SubsetScore(accuracy, items[name]) for name, accuracy in accuracies.items()}
        values[POOLED] = aggregate.pooled(scores)
    return values


def per_model(models: Sequence[str], points: Mapping[str, np.ndarray],
              replicates: Mapping[str, np.ndarray]) -> dict[str, dict[str, Estimate]]:
    """Split (M,) points and (R, M) replicates by model: model -> name -> estimate."""
    return {model: {name: Estimate(float(points[name][j]), replicates[name][:, j]) for name in points}
            for j, model in enumerate(models)}


def add_averages(columns: dict[str, dict[str, Estimate]]) -> None:
    """Add the Average (plain mean of the six numbers, per replicate) to every model that has all six."""
    for cells in columns.values():
        if all(c in cells for c in COLUMNS):
            cells[AVERAGE] = Estimate(float(np.mean([cells[c].point for c in COLUMNS])),
                                      np.mean([cells[c].replicates for c in COLUMNS], axis=0))


def bootstrap_report(benchmarks: Sequence[BenchmarkOutcomes], replicates: int, draws: Draws) -> ReportEstimates:
    """Bootstrap every subset, benchmark number and Average of every model.

    Replicate r of every benchmark is one joint draw of all benchmarks (their strata are drawn
    independently), so the Average's replicate r is the mean of the six numbers' replicate r.
    """
    if replicates < 1:
        raise ValueError(f"bootstrap replicates must be at least 1, got {replicates}")
    names = [data.benchmark for data in benchmarks]
    if len(set(names)) != len(names):
        raise ValueError(f"each benchmark must be given once, got {names}")

    columns: dict[str, dict[str, dict[str, Estimate]]] = {protocol: {} for protocol in PROTOCOLS}
    subsets, items = {}, {}
    for data in benchmarks:
        observed = observed_accuracies(data)
        resampled = subset_accuracies(data, replicates, draws)
        items[data.benchmark] = data.items()
        if data.benchmark == "sugarcrepe":
            items[data.benchmark][POOLED] = sum(items[data.benchmark].values())
        subsets[data.benchmark] = per_model(data.models, subset_values(data, observed), subset_values(data, resampled))

        for protocol in PROTOCOLS:
            points = protocol_columns(data.benchmark, observed, data.items(), protocol)
            samples = protocol_columns(data.benchmark, resampled, data.items(), protocol)
            for model, cells in per_model(data.models, points, samples).items():
                columns[protocol].setdefault(model, {}).update(cells)

    for by_model in columns.values():
        add_averages(by_model)
    return ReportEstimates(columns, subsets, items, replicates)


def paired_difference(first: Estimate, second: Estimate) -> Estimate:
    """Subtract second from first, replicate by replicate.

    Both estimates must come from one `bootstrap_report` call, so that replicate r of each was
    computed on the same items.
    """
    return Estimate(first.point - second.point, first.replicates - second.replicates)
