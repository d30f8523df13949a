"""The report: tables beside published numbers, seed statistics, figures and the render-report command."""

import hashlib
import json
import math
import re
import struct

import numpy as np
import pandas as pd
import pytest

from read_clip.benchmarks.aggregate import EXPECTED_SUBSETS
from read_clip.benchmarks.run import summarise
from read_clip.cli import main
from read_clip.config import ConfigError
from read_clip.io import write_parquet
from read_clip.results import plots, report, tables
from read_clip.results.table import AVERAGE, COLUMNS

MODELS = ["clip", "negclip", "read_clip"]
# Share of correct items in every subset, per model; each benchmark number equals it.
SHARES = {"clip": 0.5, "negclip": 0.6, "read_clip": 0.7}
ITEMS_PER_SUBSET = 20
SETTINGS = {"seed": 7, "bootstrap_samples": 200, "confidence": 0.95}


def image_rows(subset, item_id, correct, golds=1, others=1):
    """Score rows of one image query: golds score 0.5 when the item is correct, else 0.1; others 0.3."""
    gold = 0.5 if correct else 0.1
    return [(item_id, subset, "image", c, gold if c < golds else 0.3) for c in range(golds + others)]


def score_table(benchmark, share):
    """Per-item scores in the scoring layout with the first `share` of every subset's items correct."""
    rows = []
    subsets = dict.fromkeys(s.split("/")[-1] for s in EXPECTED_SUBSETS[benchmark])
    for subset in subsets:
        for i in range(ITEMS_PER_SUBSET):
            ok, item_id = i < round(share * ITEMS_PER_SUBSET), f"{i:03d}"
            if benchmark == "sugarcrepe_pp":
                rows += image_rows(subset, item_id, ok, golds=2)
                for query in ("P1", "P2"):
                    rows += [(item_id, subset, query, 0, 0.5 if ok else 0.1), (item_id, subset, query, 1, 0.3)]
            else:
                rows += image_rows(subset, item_id, ok, others=3 if subset.startswith("controlled") else 1)
    frame = pd.DataFrame(rows, columns=["item_id", "subset", "query", "candidate", "score"])
    return frame.astype({"candidate": np.int16, "score": np.float32})


def write_run(root):
    """Scores, summaries, metrics, model directories and caption report of three models."""
    summaries, scores, metrics, model_dirs = [], [], [], []
    for model in MODELS:
        for benchmark in EXPECTED_SUBSETS:
            table = score_table(benchmark, SHARES[model])
            path = root / "scores" / model / f"{benchmark}.parquet"
            write_parquet(path, table)
            summary = {"benchmark": benchmark, "model": model, "tie_policy": "argmax",
                       **summarise(table, benchmark, "argmax"), "absent_files": [],
                       "settings": {"tie_policy": "argmax", "batch_size": 8}, "package_versions": {"numpy": "2"}}
            path.with_suffix(".json").write_text(json.dumps(summary))
            summaries.append(path.with_suffix(".json"))
            scores.append(path)
        model_dir = root / "models" / model
        model_dir.mkdir(parents=True)
        (model_dir / "model.safetensors").write_bytes(model.encode() * 100)
        (model_dir / "model.json").write_text(json.dumps({"architecture": "readclip-tiny", "pretrained": "demo"}))
        if model != "clip":
            (model_dir / "config.json").write_text(json.dumps({
                "seed": 7, "train": {"batch_size": 64, "epochs": 1, "lr": 1e-4},
                "weights": {"neg": 1.0, "rec": 0.1 if model == "read_clip" else 0.0, "align": 0.0}}))
            (model_dir / "versions.json").write_text(json.dumps({"torch": "2.14.1"}))
            records = [{"step": s, "epoch": s / 20, "samples_per_s": 100.0, "lr": 1e-4 * s / 20,
                        "logit_scale": 14.0 + s / 10, "neg_loss": 3.0 - s / 10, "loss": 3.0 - s / 10}
                       for s in (1, 5, 10, 15, 20)]
            if model == "read_clip":
                for record in records:
                    record["rec_loss"] = 5.0 - record["step"] / 10
            (model_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            metrics.append(model_dir / "metrics.jsonl")
        model_dirs.append(model_dir)
    caption_report = root / "captions.json"
    caption_report.write_text(json.dumps({"captions": 100, "images": 20, "pool_size": {"mean": 4.5},
                                          "fallback": {"count": 2, "share": 0.02},
                                          "paraphrase_rows": {"sibling": 400}}))
    return summaries, scores, metrics, model_dirs, caption_report


def render(root, summaries, scores, metrics, model_dirs, caption_report, settings=SETTINGS):
    return main(["render-report", "--summaries", *map(str, summaries), "--scores", *map(str, scores),
                 "--models", *MODELS, "--metrics", *map(str, metrics), "--model-dirs", *map(str, model_dirs),
                 "--caption-report", str(caption_report), "--settings", json.dumps(settings),
                 "--out-dir", str(root / "report")])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    inputs = write_run(root)
    settings = {**SETTINGS, "pairs": [["read_clip", "negclip"], ["read_clip", "read_clip"]]}
    assert render(root, *inputs, settings=settings) == 0
    return root / "report", inputs


def png_size(path):
    """(width, height) in pixels from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_headline_cells_recovered(rendered):
    out, _ = rendered
    headline = pd.read_csv(out / "headline.csv").set_index(["model", "column"])
    for model, share in SHARES.items():
        for column in [*COLUMNS, AVERAGE]:
            assert headline.loc[(model, column), "estimate"] == pytest.approx(100 * share), (model, column)


def test_intervals_bracket_estimates(rendered):
    out, _ = rendered
    headline = pd.read_csv(out / "headline.csv")
    assert (headline["lower"] <= headline["estimate"]).all()
    assert (headline["estimate"] <= headline["upper"]).all()
    assert (headline["upper"] - headline["lower"] > 0).all()


def test_published_difference_in_csv(rendered):
    out, _ = rendered
    published = pd.read_csv(out / "published.csv").set_index(["published_model", "column"])
    # Ours is 70.0 everywhere; READ-CLIP published 43.9 on WhatsUp and 64.1 on average.
    assert published.loc[("READ-CLIP", "WhatsUp"), "difference"] == pytest.approx(70.0 - 43.9)
    assert published.loc[("READ-CLIP", AVERAGE), "difference"] == pytest.approx(70.0 - 64.1)
    assert published.loc[("NegCLIP", "CREPE"), "difference"] == pytest.approx(60.0 - 30.5)
    assert math.isnan(published.loc[("FSC-CLIP", "VALSE"), "difference"])


def test_paired_differences_in_csv(rendered):
    out, _ = rendered
    differences = pd.read_csv(out / "differences.csv").set_index(["pair", "column"])
    assert differences.loc[("read_clip - negclip", "VALSE"), "estimate"] == pytest.approx(10.0)
    itself = differences.loc[("read_clip - read_clip", AVERAGE)]
    assert (itself["estimate"], itself["lower"], itself["upper"]) == (0.0, 0.0, 0.0)


def test_subset_table_counts_items(rendered):
    out, _ = rendered
    subsets = pd.read_csv(out / "subsets.csv")
    sugarcrepe = subsets[(subsets["benchmark"] == "sugarcrepe") & (subsets["model"] == "clip")]
    assert len(sugarcrepe) == 8  # 7 subsets and the pooled row
    assert sugarcrepe.set_index("subset").loc["pooled", "items"] == 7 * ITEMS_PER_SUBSET
    scpp = subsets[(subsets["benchmark"] == "sugarcrepe_pp") & (subsets["model"] == "clip")]
    assert set(scpp["subset"]) == set(EXPECTED_SUBSETS["sugarcrepe_pp"])


def test_documents_contain_tables(rendered):
    out, _ = rendered
    markdown = (out / "tables.md").read_text()
    latex = (out / "tables.tex").read_text()
    html = (out / "tables.html").read_text()
    assert re.search(r"\| read_clip \(ours\) +\| 70\.0 \[", markdown)
    assert re.search(r"\| READ-CLIP \(published\) +\| 43\.9 ", markdown)
    assert "## WhatsUp per subset" in markdown
    assert latex.count(r"\begin{table}") == 4 + 5
    assert r"read\_clip - READ-CLIP" in latex
    assert "<table>" in html


def test_figures_written(rendered):
    out, _ = rendered
    for stem in ("bars", "training"):
        width, height = png_size(out / f"{stem}.png")
        assert width >= 800, stem
        assert height >= 300, stem
        pdf = (out / f"{stem}.pdf").read_bytes()
        assert pdf[:5] == b"%PDF-", stem
        assert len(pdf) > 5_000, stem


def test_summary_records_inputs(rendered):
    out, (_, _, _, model_dirs, caption_report) = rendered
    text = (out / "summary.md").read_text()
    weights = (model_dirs[2] / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() in text
    assert hashlib.sha256(caption_report.read_bytes()).hexdigest() in text
    assert "fine-tuned: L = 1 L_neg + 0.1 L_rec" in text
    assert re.search(r"\| torch +\| 2\.14\.1 ", text)
    assert "200 bootstrap replicates" in text
    # SugarCrepe++ has 5 loader subsets, each reported twice (ITT and TOT) over the same items.
    assert re.search(rf"\| SugarCrepe\+\+ +\| 10 +\| {5 * ITEMS_PER_SUBSET} ", text)


def test_stale_summary_rejected(tmp_path):
    summaries, *rest = write_run(tmp_path)
    valse = next(path for path in summaries if path.stem == "valse")
    stale = json.loads(valse.read_text())
    stale["headline"]["VALSE"] += 1.0
    valse.write_text(json.dumps(stale))
    with pytest.raises(ValueError, match="different runs"):
        render(tmp_path, summaries, *rest)


def test_summary_without_scores_rejected(tmp_path):
    summaries, scores, *rest = write_run(tmp_path)
    with pytest.raises(ValueError, match="not among --scores"):
        render(tmp_path, summaries, scores[1:], *rest)


def test_missing_setting_rejected():
    with pytest.raises(ConfigError, match="confidence"):
        report.check_settings({"seed": 1, "bootstrap_samples": 10}, MODELS)


def test_unknown_pair_model_rejected():
    with pytest.raises(ConfigError, match="mystery"):
        report.check_settings({**SETTINGS, "pairs": [["mystery", "clip"]]}, MODELS)


def test_default_pairs_against_first():
    assert report.check_settings(SETTINGS, MODELS)["pairs"] == [("negclip", "clip"), ("read_clip", "clip")]


def test_published_frame_hand_values():
    headline = pd.DataFrame([{"model": "read_clip", "column": c, "estimate": 45.0, "lower": 44.0, "upper": 46.5}
                             for c in tables.TABLE_COLUMNS])
    row = tables.published_frame(headline).set_index(["published_model", "column"]).loc[("READ-CLIP", "VALSE")]
    assert row["difference"] == pytest.approx(45.0 - 76.2)
    assert row["difference_lower"] == pytest.approx(44.0 - 76.2)
    assert row["difference_upper"] == pytest.approx(46.5 - 76.2)


def test_published_latex_rows():
    headline = pd.DataFrame([{"model": "negclip", "column": c, "estimate": 60.0, "lower": 59.0, "upper": 61.0}
                             for c in tables.TABLE_COLUMNS])
    latex = tables.to_latex(tables.published_text(tables.published_frame(headline)), "Published", "tab:p")
    assert r"negclip (ours) & 60.0 [59.0, 61.0]" in latex
    assert r"negclip - NegCLIP & +17.6 [+16.6, +18.6]" in latex
    assert "FSC-CLIP (published) & 39.8" in latex


def test_seed_statistics_hand_values(tmp_path):
    files = []
    for run, whatsup in (("read_clip", 40.0), ("read_clip@seed2026", 42.0), ("read_clip@seed2027", 44.0)):
        path = tmp_path / f"{run}.json"
        headline = {c: 50.0 for c in COLUMNS} | {"WhatsUp": whatsup}
        path.write_text(json.dumps({"model": run, "benchmark": "all", "headline": headline}))
        files.append(path)
    statistics = tables.seed_statistics(tables.collect_seed_runs({"read_clip": files}))
    whatsup = statistics.set_index("column").loc["WhatsUp"]
    average = statistics.set_index("column").loc[AVERAGE]
    assert whatsup["mean"] == pytest.approx(42.0)
    assert whatsup["std"] == pytest.approx(2.0)
    assert whatsup["seeds"] == 3
    assert average["mean"] == pytest.approx(50.0 + (42.0 - 50.0) / 6)
    assert tables.seed_text(statistics).loc["read_clip", "WhatsUp"] == "42.0 ± 2.0 (3)"


def test_seed_table_in_report(tmp_path):
    inputs = write_run(tmp_path)
    settings = {**SETTINGS, "seed_groups": {"fine-tuned": ["negclip", "read_clip"]}}
    assert render(tmp_path, *inputs, settings=settings) == 0
    seeds = pd.read_csv(tmp_path / "report" / "seeds.csv").set_index("column")
    assert seeds.loc["VALSE", "mean"] == pytest.approx(65.0)
    assert seeds.loc["VALSE", "std"] == pytest.approx(np.std([60.0, 70.0], ddof=1))


def test_training_quantities_order():
    runs = {"a": [{"step": 1, "neg_loss": 1.0, "loss": 1.0, "lr": 0.1, "logit_scale": 10.0}],
            "b": [{"step": 1, "rec_loss": 2.0, "align_loss": 1.0, "extra_loss": 0.5, "loss": 3.0, "lr": 0.1}]}
    assert plots.training_quantities(runs) == ["neg_loss", "rec_loss", "align_loss", "extra_loss",
                                               "loss", "lr", "logit_scale"]


def test_invalid_metrics_line_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss"\n')
    with pytest.raises(ValueError, match="line 2"):
        plots.read_metrics(path)


def test_single_model_minimal_inputs(tmp_path):
    table = score_table("valse", 0.6)
    scores = tmp_path / "clip" / "valse.parquet"
    write_parquet(scores, table)
    summary = {"benchmark": "valse", "model": "clip", "tie_policy": "argmax", **summarise(table, "valse", "argmax")}
    scores.with_suffix(".json").write_text(json.dumps(summary))
    code = main(["render-report", "--summaries", str(scores.with_suffix(".json")), "--scores", str(scores),
                 "--models", "clip", "--settings", json.dumps(SETTINGS), "--out-dir", str(tmp_path / "out")])
    markdown = (tmp_path / "out" / "tables.md").read_text()
    assert code == 0
    assert "(ours)" not in markdown
    assert "Paired differences" not in markdown
    assert (tmp_path / "out" / "training.png").stat().st_size > 0
    assert pd.read_csv(tmp_path / "out" / "headline.csv").set_index("column").loc["VALSE", "estimate"] == 60.0
