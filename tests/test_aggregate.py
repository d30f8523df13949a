"""Both aggregation protocols: published vl_compo aggregates and hand-computed examples."""

import pandas as pd
import pytest

from read_clip.benchmarks import load_benchmark
from read_clip.benchmarks.aggregate import (
    SubsetScore,
    missing_subsets,
    pooled,
    read_clip_protocol,
    vl_compo_protocol,
)

# Item counts of WhatsUp and of VALSE's valid items as the benchmarks publish them; SugarCrepe's
# are counted in the real files.
VALSE_COUNTS = {"existence": 505, "plurals": 851, "counting-hard": 868, "counting-small-quant": 900,
                "counting-adversarial": 691, "relations": 535, "action-replacement": 648, "actant-swap": 949,
                "coreference-standard": 708, "coreference-hard": 104, "foil-it": 943}
WHATSUP_COLUMNS = {"controlled_a": ("WhatsUp_A", 412), "controlled_b": ("WhatsUp_B", 408),
                   "coco_one": ("COCO_QA_ONE", 2247), "coco_two": ("COCO_QA_TWO", 440),
                   "vg_one": ("VG_QA_ONE", 1160), "vg_two": ("VG_QA_TWO", 291)}


def per_subset(row, benchmark, sugarcrepe_counts):
    """Per-subset scores of one model from a row of the vl_compo individual results."""
    if benchmark == "sugarcrepe":
        return {s: SubsetScore(row[f"sugarcrepe::{s}"], n) for s, n in sugarcrepe_counts.items()}
    if benchmark == "valse":
        return {s: SubsetScore(row[f"valse::{s}"], n) for s, n in VALSE_COUNTS.items()}
    if benchmark == "whatsup":
        return {s: SubsetScore(row[f"whatsup::{column}"], n) for s, (column, n) in WHATSUP_COLUMNS.items()}
    # CREPE's per-type item counts are not published there; neither protocol weighs types by them.
    return {t: SubsetScore(row[f"crepe::{t}"], 1) for t in ("atom", "swap", "negate")}


def joined_results(folder):
    """Individual results joined to the aggregates on (arch, pretrained), then family where ambiguous."""
    individual = pd.read_csv(folder / "vl_compo_individual_results.csv")
    aggregates = pd.read_csv(folder / "vl_compo_results.csv")
    rows = []
    for _, row in individual.iterrows():
        match = aggregates[(aggregates["arch"] == row["arch"]) & (aggregates["pretrained"] == row["pretrained"])]
        if len(match) > 1:
            match = match[match["family"] == row["family"]]
        assert len(match) == 1, f"{row['arch']} {row['pretrained']} {row['family']}: {len(match)} aggregate rows"
        rows.append((row, match.iloc[0]))
    return rows


def test_vl_compo_reproduces_published(annotations_dir):
    rows = joined_results(annotations_dir / "reference_results")
    counts = load_benchmark("sugarcrepe", annotations_dir / "sugarcrepe").subset_counts()
    assert len(rows) == 202
    columns = {"sugarcrepe": "SugarCrepe", "valse": "VALSE", "whatsup": "WhatsUp", "crepe": "CREPE"}
    worst = {benchmark: 0.0 for benchmark in columns}
    for row, published in rows:
        for benchmark, column in columns.items():
            value = vl_compo_protocol(benchmark, per_subset(row, benchmark, counts))[column]
            worst[benchmark] = max(worst[benchmark], abs(value - published[benchmark]))
    for benchmark in columns:
        assert worst[benchmark] < 1e-4, f"{benchmark}: largest difference {worst[benchmark]}"


def test_read_clip_sugarcrepe():
    scores = {"replace_obj": SubsetScore(90.0, 100), "swap_obj": SubsetScore(60.0, 300), "add_att": SubsetScore(75.0, 100)}
    assert read_clip_protocol("sugarcrepe", scores) == {"SugarCrepe": pytest.approx(75.0)}
    # Pooled: (90 * 100 + 60 * 300 + 75 * 100) / 500.
    assert pooled(scores) == pytest.approx(69.0)
    # vl_compo: each category pooled, then the mean of the categories present.
    assert vl_compo_protocol("sugarcrepe", scores) == {"SugarCrepe": pytest.approx(75.0)}


def test_vl_compo_sugarcrepe_pools_categories():
    scores = {"replace_obj": SubsetScore(90.0, 100), "replace_att": SubsetScore(60.0, 300),
              "swap_obj": SubsetScore(50.0, 10), "add_att": SubsetScore(80.0, 10)}
    # replace pooled = (9000 + 18000) / 400 = 67.5; mean of (67.5, 50, 80).
    assert vl_compo_protocol("sugarcrepe", scores)["SugarCrepe"] == pytest.approx(197.5 / 3)


def test_read_clip_whatsup_groups():
    scores = {"controlled_a": SubsetScore(40.0, 100), "controlled_b": SubsetScore(20.0, 300),
              "coco_one": SubsetScore(50.0, 100), "coco_two": SubsetScore(60.0, 100),
              "vg_one": SubsetScore(30.0, 10), "vg_two": SubsetScore(90.0, 30)}
    # Groups: (4000 + 6000) / 400 = 25; (5000 + 6000) / 200 = 55; (300 + 2700) / 40 = 75.
    assert read_clip_protocol("whatsup", scores)["WhatsUp"] == pytest.approx(155 / 3)
    assert vl_compo_protocol("whatsup", scores)["WhatsUp"] == pytest.approx(290 / 6)


def test_read_clip_valse_pooled():
    scores = {"existence": SubsetScore(80.0, 100), "counting-hard": SubsetScore(50.0, 300)}
    assert read_clip_protocol("valse", scores)["VALSE"] == pytest.approx(57.5)
    assert vl_compo_protocol("valse", scores)["VALSE"] == pytest.approx(65.0)
    assert "foil-it" in missing_subsets("valse", scores)


def test_read_clip_scpp_tasks():
    scores = {"itt/swap_obj": SubsetScore(60.0, 10), "itt/replace_att": SubsetScore(80.0, 1000),
              "tot/swap_obj": SubsetScore(40.0, 10), "tot/replace_att": SubsetScore(50.0, 1000)}
    assert read_clip_protocol("sugarcrepe_pp", scores) == {"SC++ ITT": pytest.approx(70.0), "SC++ TOT": pytest.approx(45.0)}
    assert vl_compo_protocol("sugarcrepe_pp", scores) == {}


def test_crepe_type_mean():
    scores = {"atom": SubsetScore(20.0, 1000), "swap": SubsetScore(10.0, 10), "negate": SubsetScore(30.0, 100)}
    assert read_clip_protocol("crepe", scores) == {"CREPE": pytest.approx(20.0)}
    assert vl_compo_protocol("crepe", scores) == {"CREPE": pytest.approx(20.0)}


def test_unknown_subset():
    with pytest.raises(ValueError, match="unknown valse subsets"):
        read_clip_protocol("valse", {"existance": SubsetScore(50.0, 10)})
