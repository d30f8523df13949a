"""Per-item rules and tie policies against hand-computed similarities."""

import numpy as np
import pandas as pd
import pytest
import torch

from read_clip.benchmarks.items import ImageRef, Item
from read_clip.benchmarks.run import build_score_table
from read_clip.benchmarks.scoring import SCORE_SCHEMA, item_outcomes, subset_results


def score_table(rows):
    """Rows of (item_id, subset, query, candidate, score) as a score table with the stored dtypes."""
    frame = pd.DataFrame(rows, columns=["item_id", "subset", "query", "candidate", "score"])
    return frame.astype({"candidate": "int16", "score": "float32"})


def image_rows(item_id, subset, scores):
    return [(item_id, subset, "image", index, score) for index, score in enumerate(scores)]


def outcome(scores, benchmark, policy, item_id):
    outcomes = item_outcomes(scores, benchmark, policy).set_index("item_id")
    return bool(outcomes.loc[item_id, "correct"]), bool(outcomes.loc[item_id, "tie"])


def test_pair_rule_and_ties():
    # SugarCrepe and VALSE: s(I, pos) > s(I, neg).
    scores = score_table(image_rows("win", "swap_att", [0.5, 0.25]) + image_rows("lose", "swap_att", [0.25, 0.5])
                         + image_rows("tie", "swap_att", [0.375, 0.375]))
    for benchmark in ("sugarcrepe", "valse"):
        assert outcome(scores, benchmark, "argmax", "win") == (True, False)
        assert outcome(scores, benchmark, "strict", "win") == (True, False)
        assert outcome(scores, benchmark, "argmax", "lose") == (False, False)
        assert outcome(scores, benchmark, "argmax", "tie") == (True, True)
        assert outcome(scores, benchmark, "strict", "tie") == (False, True)


def test_subset_results_counts():
    scores = score_table(image_rows("0", "swap_att", [0.5, 0.25]) + image_rows("1", "swap_att", [0.25, 0.25])
                         + image_rows("2", "swap_att", [0.0, 0.25]) + image_rows("0", "add_att", [0.5, 0.0]))
    argmax = subset_results(scores, "sugarcrepe", "argmax")
    strict = subset_results(scores, "sugarcrepe", "strict")
    assert list(argmax) == ["swap_att", "add_att"]
    assert (argmax["swap_att"].items, argmax["swap_att"].correct, argmax["swap_att"].ties) == (3, 2, 1)
    assert argmax["swap_att"].accuracy == pytest.approx(200 / 3)
    assert (strict["swap_att"].correct, strict["swap_att"].ties) == (1, 1)
    assert strict["add_att"].accuracy == 100.0


def test_whatsup_four_options():
    scores = score_table(image_rows("best", "controlled_a", [0.75, 0.5, 0.25, 0.0])
                         + image_rows("second", "controlled_a", [0.5, 0.75, 0.25, 0.0])
                         + image_rows("tied", "controlled_a", [0.5, 0.25, 0.5, 0.0])
                         + image_rows("qa", "coco_one", [0.25, 0.125]))
    assert outcome(scores, "whatsup", "argmax", "best") == (True, False)
    assert outcome(scores, "whatsup", "argmax", "second") == (False, False)
    assert outcome(scores, "whatsup", "argmax", "tied") == (True, True)
    assert outcome(scores, "whatsup", "strict", "tied") == (False, True)
    assert outcome(scores, "whatsup", "strict", "qa") == (True, False)


def test_crepe_varying_negatives():
    scores = score_table(image_rows("two_negs", "atom", [0.5, 0.25, 0.375])
                         + image_rows("five_negs", "atom", [0.5, 0.25, 0.375, 0.125, 0.0, 0.625])
                         + image_rows("five_tied", "atom", [0.5, 0.25, 0.375, 0.5, 0.0, 0.125]))
    assert outcome(scores, "crepe", "argmax", "two_negs") == (True, False)
    assert outcome(scores, "crepe", "argmax", "five_negs") == (False, False)
    assert outcome(scores, "crepe", "argmax", "five_tied") == (True, True)
    assert outcome(scores, "crepe", "strict", "five_tied") == (False, True)


def test_argmax_matches_numpy():
    # Scores drawn from 4 values force many ties; argmax == 0 (first maximum wins) is the reference.
    rng = np.random.default_rng(7)
    values = rng.choice(np.array([0.0, 0.25, 0.5, 0.75], dtype=np.float32), size=(200, 4))
    rows = [row for i, v in enumerate(values) for row in image_rows(str(i), "controlled_b", v)]
    outcomes = item_outcomes(score_table(rows), "whatsup", "argmax")
    expected = np.argmax(values, axis=1) == 0
    assert outcomes["item_id"].tolist() == [str(i) for i in range(200)]
    assert (outcomes["correct"].to_numpy() == expected).all()
    assert expected.sum() not in (0, 200)


def test_scpp_itt_strict():
    # Candidates: 0 = P1, 1 = P2, 2 = N; both positives must beat N, under both policies.
    scores = score_table(image_rows("both", "swap_obj", [0.5, 0.375, 0.25])
                         + image_rows("p2_ties", "swap_obj", [0.5, 0.25, 0.25])
                         + image_rows("p2_loses", "swap_obj", [0.5, 0.125, 0.25]))
    rows = item_outcomes(scores, "sugarcrepe_pp", "argmax").set_index("item_id")
    assert rows["subset"].unique().tolist() == ["itt/swap_obj"]
    assert bool(rows.loc["both", "correct"])
    assert not rows.loc["p2_ties", "correct"]
    assert bool(rows.loc["p2_ties", "tie"])
    assert not rows.loc["p2_loses", "correct"]


def test_scpp_tot_strict():
    # Query P1: 0 = P2, 1 = N; query P2: 0 = P1, 1 = N.
    rows = image_rows("x", "swap_obj", [0.5, 0.5, 0.25])
    rows += [("x", "swap_obj", "P1", 0, 0.75), ("x", "swap_obj", "P1", 1, 0.5),
             ("x", "swap_obj", "P2", 0, 0.75), ("x", "swap_obj", "P2", 1, 0.75)]
    rows += image_rows("y", "swap_obj", [0.5, 0.5, 0.25])
    rows += [("y", "swap_obj", "P1", 0, 0.75), ("y", "swap_obj", "P1", 1, 0.5),
             ("y", "swap_obj", "P2", 0, 0.75), ("y", "swap_obj", "P2", 1, 0.625)]
    results = subset_results(score_table(rows), "sugarcrepe_pp", "argmax")
    assert list(results) == ["itt/swap_obj", "tot/swap_obj"]
    assert (results["itt/swap_obj"].correct, results["itt/swap_obj"].ties) == (2, 0)
    assert (results["tot/swap_obj"].correct, results["tot/swap_obj"].ties) == (1, 1)


def test_non_finite_scores():
    scores = score_table(image_rows("0", "swap_att", [float("nan"), 0.25]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        item_outcomes(scores, "sugarcrepe", "argmax")


def test_unknown_tie_policy():
    with pytest.raises(ValueError, match="eval.tie_policy"):
        item_outcomes(score_table(image_rows("0", "swap_att", [0.5, 0.25])), "sugarcrepe", "lenient")


def test_missing_candidates():
    with pytest.raises(ValueError, match="lack a gold or a wrong candidate"):
        item_outcomes(score_table(image_rows("0", "swap_att", [0.5])), "sugarcrepe", "argmax")


def test_table_from_unit_vectors():
    # Embeddings chosen so every cosine is exact in float32: image e0, texts e0, e1 and (0.6, 0.8).
    image = torch.tensor([[1.0, 0.0]])
    texts = {"P1": 0, "P2": 1, "N": 2}
    text_embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    item = Item("7", "replace_att", ImageRef("coco_val2017", "a.jpg"), ("P1", "P2", "N"))
    table = build_score_table([item], "sugarcrepe_pp", [0], image, text_embeddings, texts)
    frame = table.to_pandas()
    assert table.schema.equals(SCORE_SCHEMA)
    assert frame["query"].tolist() == ["image"] * 3 + ["P1"] * 2 + ["P2"] * 2
    assert frame["candidate"].tolist() == [0, 1, 2, 0, 1, 0, 1]
    expected = np.array([1.0, 0.0, 0.6, 0.0, 0.6, 0.0, 0.8], dtype=np.float32)
    assert (frame["score"].to_numpy() == expected).all()
    results = subset_results(frame, "sugarcrepe_pp", "argmax")
    assert results["itt/replace_att"].correct == 0  # s(I, P2) = 0 < s(I, N) = 0.6
    assert results["tot/replace_att"].correct == 0  # s(P1, P2) = 0 < s(P1, N) = 0.6
