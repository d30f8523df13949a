"""Bootstrap intervals: known accuracies, shrinking intervals, paired differences, protocol recomputation."""

import math

import numpy as np
import pandas as pd
import pytest

from read_clip.benchmarks import aggregate
from read_clip.results import bootstrap
from read_clip.results.table import AVERAGE, COLUMNS

SEED = 2025


def outcome_frame(correct_by_subset):
    """Item outcomes as `scoring.item_outcomes` returns them: subset, item_id, correct, tie."""
    frames = []
    for subset, correct in correct_by_subset.items():
        frames.append(pd.DataFrame({"subset": subset, "item_id": [f"{i:05d}" for i in range(len(correct))],
                                    "correct": np.asarray(correct, dtype=bool), "tie": False}))
    return pd.concat(frames, ignore_index=True)


def first_share_correct(items, share):
    """`items` outcomes with the first round(share * items) correct."""
    return np.arange(items) < round(share * items)


def bootstrap_valse(items, share, replicates=1000, seed=SEED):
    """VALSE with one piece: its headline number is that piece's accuracy (pooled over one subset)."""
    data = bootstrap.align_outcomes("valse", {"m": outcome_frame({"existence": first_share_correct(items, share)})})
    estimates = bootstrap.bootstrap_report([data], replicates, bootstrap.seeded_draws(seed))
    return estimates.columns["headline"]["m"]["VALSE"]


def fixed_draws(indices_by_stratum):
    """Draws that yield one given (1, n) index row per stratum."""
    def draw(benchmark, stratum, items, replicates):
        assert replicates == 1
        indices = np.asarray(indices_by_stratum[stratum])
        assert indices.shape == (items,)
        yield indices[None, :]
    return draw


def test_known_accuracy_recovered():
    estimate = bootstrap_valse(10_000, 0.7)
    lower, upper = estimate.interval(0.95)
    # Normal approximation of a binomial proportion, in percentage points.
    expected_width = 100 * 2 * 1.96 * math.sqrt(0.7 * 0.3 / 10_000)
    assert estimate.point == pytest.approx(70.0)
    assert lower < 70.0 < upper
    assert upper - lower == pytest.approx(expected_width, rel=0.1)


def test_interval_shrinks_with_items():
    small = bootstrap_valse(100, 0.7).interval(0.95)
    large = bootstrap_valse(10_000, 0.7).interval(0.95)
    assert large[1] - large[0] < (small[1] - small[0]) / 5


def test_same_seed_same_interval():
    assert bootstrap_valse(500, 0.6).interval(0.95) == bootstrap_valse(500, 0.6).interval(0.95)


def test_other_seed_other_draws():
    first = bootstrap_valse(500, 0.6, seed=1).replicates
    second = bootstrap_valse(500, 0.6, seed=2).replicates
    assert not np.array_equal(first, second)


def test_self_difference_is_zero():
    estimate = bootstrap_valse(1_000, 0.7)
    difference = bootstrap.paired_difference(estimate, estimate)
    assert difference.point == 0.0
    assert difference.interval(0.95) == (0.0, 0.0)


def test_paired_difference_tighter_than_each():
    rng = np.random.default_rng(0)
    first = rng.random(5_000) < 0.7
    second = first.copy()
    second[:100] = ~second[:100]  # the models disagree on 2% of the items
    data = bootstrap.align_outcomes("valse", {"a": outcome_frame({"existence": first}),
                                              "b": outcome_frame({"existence": second})})
    cells = bootstrap.bootstrap_report([data], 1000, bootstrap.seeded_draws(SEED)).columns["headline"]
    difference = bootstrap.paired_difference(cells["a"]["VALSE"], cells["b"]["VALSE"])
    width = np.subtract(*difference.interval(0.95)[::-1])
    own_width = np.subtract(*cells["a"]["VALSE"].interval(0.95)[::-1])
    assert difference.point == pytest.approx(100 * (first.mean() - second.mean()))
    assert width < own_width / 2


def test_whatsup_replicate_by_hand():
    correct = {
        "controlled_a": [1, 0, 0, 1], "controlled_b": [0, 0, 1],
        "coco_one": [1, 1, 0], "coco_two": [0, 1],
        "vg_one": [1, 0], "vg_two": [0, 0, 1, 1, 1],
    }
    indices = {
        "controlled_a": [0, 0, 3, 1], "controlled_b": [2, 2, 2],
        "coco_one": [2, 2, 1], "coco_two": [1, 1],
        "vg_one": [1, 1], "vg_two": [0, 1, 2, 2, 4],
    }
    data = bootstrap.align_outcomes("whatsup", {"m": outcome_frame(correct)})
    estimates = bootstrap.bootstrap_report([data], 1, fixed_draws(indices))
    # Drawn correct items: A 3 of 4, B 3 of 3, COCO one 1 of 3, two 2 of 2, VG one 0 of 2, two 3 of 5.
    controlled, coco, vg = 6 / 7, 3 / 5, 3 / 7
    headline = estimates.columns["headline"]["m"]["WhatsUp"].replicates[0]
    vl_compo = estimates.columns["vl_compo"]["m"]["WhatsUp"].replicates[0]
    assert headline == pytest.approx(100 * (controlled + coco + vg) / 3)
    assert vl_compo == pytest.approx(100 * (3 / 4 + 1 + 1 / 3 + 1 + 0 + 3 / 5) / 6)


def test_whatsup_point_pools_groups():
    data = bootstrap.align_outcomes("whatsup", {"m": outcome_frame({
        "controlled_a": [1, 1, 0, 0], "controlled_b": [1, 1], "coco_one": [1], "vg_one": [0, 1]})})
    cells = bootstrap.bootstrap_report([data], 10, bootstrap.seeded_draws(SEED)).columns["headline"]["m"]
    assert cells["WhatsUp"].point == pytest.approx(100 * (4 / 6 + 1 + 1 / 2) / 3)


def test_sugarcrepe_pp_itt_tot_share_draw():
    outcomes = np.random.default_rng(1).random(300) < 0.6
    subsets = {f"{task}/{s}": outcomes for task in ("itt", "tot") for s in ("replace_att", "swap_obj")}
    data = bootstrap.align_outcomes("sugarcrepe_pp", {"m": outcome_frame(subsets)})
    cells = bootstrap.bootstrap_report([data], 200, bootstrap.seeded_draws(SEED)).columns["headline"]["m"]
    assert [s.name for s in data.strata] == ["replace_att", "swap_obj"]
    assert np.array_equal(cells["SC++ ITT"].replicates, cells["SC++ TOT"].replicates)


def test_vectorised_protocol_matches_scalar():
    rng = np.random.default_rng(3)
    pieces = [p for members in aggregate.VALSE_INSTRUMENTS.values() for p in members]
    items = {piece: int(n) for piece, n in zip(pieces, rng.integers(50, 900, len(pieces)))}
    accuracies = {piece: rng.uniform(40, 90, size=(4, 2)) for piece in pieces}
    vectorised = bootstrap.protocol_columns("valse", accuracies, items, "vl_compo")["VALSE"]
    scalar = aggregate.vl_compo_protocol("valse", {p: aggregate.SubsetScore(float(accuracies[p][2, 1]), items[p])
                                                   for p in pieces})["VALSE"]
    assert vectorised.shape == (4, 2)
    assert vectorised[2, 1] == pytest.approx(scalar)


def test_sugarcrepe_pooled_row():
    data = bootstrap.align_outcomes("sugarcrepe", {"m": outcome_frame({"add_att": [1, 1, 1], "swap_obj": [0]})})
    estimates = bootstrap.bootstrap_report([data], 5, bootstrap.seeded_draws(SEED))
    assert estimates.subsets["sugarcrepe"]["m"][bootstrap.POOLED].point == pytest.approx(75.0)
    assert estimates.columns["headline"]["m"]["SugarCrepe"].point == pytest.approx(50.0)
    assert estimates.items["sugarcrepe"][bootstrap.POOLED] == 4


def test_average_from_same_replicates():
    rng = np.random.default_rng(5)
    frames = {
        "whatsup": {"controlled_a": rng.random(40) < 0.3},
        "valse": {"existence": rng.random(40) < 0.7},
        "crepe": {"atom": rng.random(40) < 0.2},
        "sugarcrepe": {"add_att": rng.random(40) < 0.8},
        "sugarcrepe_pp": {"itt/swap_att": rng.random(40) < 0.6, "tot/swap_att": rng.random(40) < 0.5},
    }
    benchmarks = [bootstrap.align_outcomes(b, {"m": outcome_frame(f)}) for b, f in frames.items()]
    cells = bootstrap.bootstrap_report(benchmarks, 50, bootstrap.seeded_draws(SEED)).columns["headline"]["m"]
    expected = np.mean([cells[c].replicates for c in COLUMNS], axis=0)
    assert np.allclose(cells[AVERAGE].replicates, expected)
    assert cells[AVERAGE].point == pytest.approx(np.mean([cells[c].point for c in COLUMNS]))


def test_no_average_without_all_six():
    data = bootstrap.align_outcomes("valse", {"m": outcome_frame({"existence": [1, 0]})})
    cells = bootstrap.bootstrap_report([data], 5, bootstrap.seeded_draws(SEED)).columns["headline"]["m"]
    assert AVERAGE not in cells


def test_unaligned_items_rejected():
    full = outcome_frame({"existence": [1, 0, 1]})
    with pytest.raises(ValueError, match="existence/00002"):
        bootstrap.align_outcomes("valse", {"a": full, "b": full.iloc[:2]})


def test_invalid_confidence_rejected():
    with pytest.raises(ValueError, match="confidence"):
        bootstrap.percentile_interval(np.zeros(10), 95)


def test_read_outcomes_applies_tie_policy(tmp_path):
    # One item whose gold ties the negative: right under "argmax", wrong under "strict".
    scores = pd.DataFrame({"item_id": ["0", "0"], "subset": ["existence"] * 2, "query": ["image"] * 2,
                           "candidate": np.array([0, 1], dtype=np.int16),
                           "score": np.array([0.25, 0.25], dtype=np.float32)})
    path = tmp_path / "valse.parquet"
    scores.to_parquet(path)
    assert bool(bootstrap.read_outcomes(path, "valse", "argmax")["correct"].iloc[0])
    assert not bool(bootstrap.read_outcomes(path, "valse", "strict")["correct"].iloc[0])
