"""The results table: rows per model, six benchmark columns and their plain mean."""

import json
import math

import pandas as pd
import pytest

from read_clip.cli import main
from read_clip.results.table import COLUMNS, collect, to_markdown

PUBLISHED_READ_CLIP = {"WhatsUp": 43.9, "VALSE": 76.2, "CREPE": 41.5, "SugarCrepe": 87.0,
                       "SC++ ITT": 69.8, "SC++ TOT": 66.2}


def write_summaries(folder, model, headline_by_benchmark):
    paths = []
    for benchmark, headline in headline_by_benchmark.items():
        path = folder / f"{model}-{benchmark}.json"
        path.write_text(json.dumps({"model": model, "benchmark": benchmark, "headline": headline}))
        paths.append(path)
    return paths


def published_split():
    numbers = PUBLISHED_READ_CLIP
    return {
        "whatsup": {"WhatsUp": numbers["WhatsUp"]},
        "valse": {"VALSE": numbers["VALSE"]},
        "crepe": {"CREPE": numbers["CREPE"]},
        "sugarcrepe": {"SugarCrepe": numbers["SugarCrepe"]},
        "sugarcrepe_pp": {"SC++ ITT": numbers["SC++ ITT"], "SC++ TOT": numbers["SC++ TOT"]},
    }


def test_average_matches_published(tmp_path):
    paths = write_summaries(tmp_path, "read_clip", published_split())
    table = collect(paths, ["read_clip"])
    # READ-CLIP (NeurIPS 2025) reports an average of 64.1 over these six numbers.
    assert round(table.loc["read_clip", "Average"], 1) == 64.1


def test_missing_benchmark_gives_no_average(tmp_path):
    parts = published_split()
    del parts["crepe"]
    table = collect(write_summaries(tmp_path, "clip", parts), ["clip"])
    assert math.isnan(table.loc["clip", "CREPE"])
    assert math.isnan(table.loc["clip", "Average"])
    assert "n/a" in to_markdown(table)


def test_unknown_model_rejected(tmp_path):
    paths = write_summaries(tmp_path, "mystery", published_split())
    with pytest.raises(ValueError, match="mystery"):
        collect(paths, ["clip"])


def test_render_command_writes_all(tmp_path):
    paths = write_summaries(tmp_path, "clip", published_split())
    paths += write_summaries(tmp_path, "read_clip", published_split())
    out = tmp_path / "out"
    code = main(["render-table", "--summaries", *map(str, paths), "--models", "clip", "read_clip",
                 "--out-markdown", str(out / "t.md"), "--out-csv", str(out / "t.csv"),
                 "--out-chart", str(out / "t.png")])
    assert code == 0
    csv = pd.read_csv(out / "t.csv", index_col="model")
    assert list(csv.index) == ["clip", "read_clip"]
    assert list(csv.columns) == [*COLUMNS, "Average"]
    assert csv.loc["read_clip", "VALSE"] == pytest.approx(76.2)
    assert (out / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| read_clip | 43.9 | 76.2 |" in (out / "t.md").read_text()


def test_retrieval_table(tmp_path):
    from read_clip.results.table import collect_retrieval

    result = {"image_to_text": {"R@1": 50.0, "R@5": 80.0, "R@10": 90.0},
              "text_to_image": {"R@1": 40.0, "R@5": 70.0, "R@10": 85.0}, "mean_recall": 69.1667}
    path = tmp_path / "read_clip.json"
    path.write_text(json.dumps(result))
    table = collect_retrieval([path], ["clip", "read_clip"])
    assert list(table.index) == ["read_clip"]
    assert table.loc["read_clip", "i2t R@5"] == 80.0
    assert table.loc["read_clip", "t2i R@10"] == 85.0


def test_retrieval_unknown_model(tmp_path):
    from read_clip.results.table import collect_retrieval

    path = tmp_path / "mystery.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match="mystery"):
        collect_retrieval([path], ["clip"])
