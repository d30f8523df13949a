"""Per-item rules and the tie policy, computed from the table of per-item similarities.

The score table (one Parquet file per model and benchmark) has one row per (item, query, candidate):

    item_id   string   the loader's item id, unique within its subset
    subset    string   the loader's subset name
    query     string   "image" for image-text scores; "P1" or "P2" for SugarCrepe++ text-only scores
    candidate int16    for query "image": index into the item's texts (gold = 0; SugarCrepe++ P1 = 0,
                       P2 = 1, N = 2); for a text query: index into the item's texts with the query
                       text removed, so "P1" has 0 = P2, 1 = N and "P2" has 0 = P1, 1 = N (gold = 0)
    score     float32  cosine similarity of the L2-normalised embeddings

Every accuracy is a pure function of that table, the benchmark name and the tie policy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

IMAGE_QUERY = "image"
TEXT_QUERIES = ("P1", "P2")
TIE_POLICIES = ("argmax", "strict")
# SugarCrepe++ reports image-to-text (ITT) and text-only (TOT) accuracies per subset.
SCPP_TASKS = {IMAGE_QUERY: "itt", "P1": "tot", "P2": "tot"}

SCORE_SCHEMA = pa.schema([
    ("item_id", pa.string()),
    ("subset", pa.string()),
    ("query", pa.string()),
    ("candidate", pa.int16()),
    ("score", pa.float32()),
])


@dataclass(frozen=True)
class SubsetResult:
    """Accuracy of one reported subset; `accuracy` is in percent."""

    items: int
    correct: int
    accuracy: float
    ties: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_tie_policy(tie_policy: str) -> None:
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"unknown tie policy {tie_policy!r}; expected one of {list(TIE_POLICIES)} (config eval.tie_policy)")


def is_strict(benchmark: str, tie_policy: str) -> bool:
    """Return whether a tie counts as wrong. SugarCrepe++ is strict under both policies, as in its scorer."""
    check_tie_policy(tie_policy)
    return tie_policy == "strict" or benchmark == "sugarcrepe_pp"


def report_subset(benchmark: str, subset: str, query: str) -> str:
    """Name under which an item's accuracy is reported: SugarCrepe++ splits into "itt/<subset>" and "tot/<subset>"."""
    if benchmark == "sugarcrepe_pp":
        return f"{SCPP_TASKS[query]}/{subset}"
    return subset


def gold_counts(benchmark: str, queries: pd.Series) -> np.ndarray:
    """Gold candidates (indices 0..count-1) per row: both positives for SugarCrepe++ image queries, else 1."""
    two_golds = (benchmark == "sugarcrepe_pp") & (queries.to_numpy() == IMAGE_QUERY)
    return np.where(two_golds, 2, 1)


def query_margins(scores: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """Find the lowest gold score and the highest other score of every (subset, item_id, query)."""
    values = scores["score"].to_numpy()
    if not np.isfinite(values).all():
        raise ValueError(f"{int((~np.isfinite(values)).sum())} scores are NaN or infinite; the embeddings are invalid")
    keys = ["subset", "item_id", "query"]
    is_gold = scores["candidate"].to_numpy() < gold_counts(benchmark, scores["query"])
    gold = scores[is_gold].groupby(keys, sort=False)["score"].min()
    other = scores[~is_gold].groupby(keys, sort=False)["score"].max()
    margins = pd.concat({"gold": gold, "other": other}, axis=1)
    incomplete = margins[margins.isna().any(axis=1)]
    if len(incomplete):
        raise ValueError(f"{len(incomplete)} (subset, item, query) groups lack a gold or a wrong candidate, "
                         f"first {incomplete.index[0]}; the score table is incomplete")
    return margins.reset_index()


def item_outcomes(scores: pd.DataFrame, benchmark: str, tie_policy: str) -> pd.DataFrame:
    """Judge every item: one row per reported (subset, item_id) with `correct` and `tie`.

    An item is correct when, in every query, each gold scores above every other candidate. Under
    the "argmax" policy a gold equal to the best other counts too, which is what argmax == 0 gives
    when the first maximum wins. `tie` marks an item where a gold equals the best other candidate.
    """
    strict = is_strict(benchmark, tie_policy)
    margins = query_margins(scores, benchmark)
    margins["tie"] = margins["gold"] == margins["other"]
    margins["ok"] = margins["gold"] > margins["other"]
    if not strict:
        margins["ok"] |= margins["tie"]
    margins["subset"] = [report_subset(benchmark, s, q) for s, q in zip(margins["subset"], margins["query"])]
    outcomes = margins.groupby(["subset", "item_id"], sort=False).agg(correct=("ok", "all"), tie=("tie", "any"))
    return outcomes.reset_index()


def subset_results(scores: pd.DataFrame, benchmark: str, tie_policy: str) -> dict[str, SubsetResult]:
    """Accuracy, item count and tie count of every reported subset, in order of first appearance."""
    outcomes = item_outcomes(scores, benchmark, tie_policy)
    results = {}
    for subset, group in outcomes.groupby("subset", sort=False):
        items, correct = len(group), int(group["correct"].sum())
        results[subset] = SubsetResult(items, correct, 100.0 * correct / items, int(group["tie"].sum()))
    return results
