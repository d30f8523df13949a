"""The results table: one row per model, the six benchmark numbers and their average.

Every cell comes from a summary JSON written by `score-benchmark` (its "headline" numbers, the
READ-CLIP protocol). The table, its CSV and its chart are rebuilt whole on every run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import pandas as pd

from read_clip.io import atomic_path, write_text

log = logging.getLogger(__name__)

# Column order of the READ-CLIP results table (NeurIPS 2025). The average is the plain mean of these six.
COLUMNS = ["WhatsUp", "VALSE", "CREPE", "SugarCrepe", "SC++ ITT", "SC++ TOT"]
AVERAGE = "Average"


def collect(summary_paths: list[str | Path], models: list[str]) -> pd.DataFrame:
    """Gather headline numbers into a models x columns frame (percent; NaN where not scored)."""
    table = pd.DataFrame(math.nan, index=pd.Index(models, name="model"), columns=COLUMNS, dtype=float)
    for path in summary_paths:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
        model = summary["model"]
        if model not in table.index:
            raise ValueError(f"{path}: model {model!r} is not one of the table's rows {models}")
        for column, value in summary["headline"].items():
            if column not in COLUMNS:
                raise ValueError(f"{path}: unknown headline column {column!r}; expected one of {COLUMNS}")
            table.loc[model, column] = value
    # The mean is only defined when all six numbers exist (skipna=False keeps NaN otherwise).
    table[AVERAGE] = table[COLUMNS].mean(axis=1, skipna=False)
    return table


def collect_retrieval(paths: list[str | Path], models: list[str]) -> pd.DataFrame:
    """COCO Karpathy test Recall@K per model (percent), from score-retrieval's JSON files.

    Files are matched to models by name (`results/retrieval/<model>.json`), in `models` order.
    """
    by_model = {Path(path).stem: path for path in paths}
    unknown = sorted(set(by_model) - set(models))
    if unknown:
        raise ValueError(f"retrieval files for models {unknown} that are not table rows {models}")
    rows = {}
    for model in models:
        if model not in by_model:
            continue
        result = json.loads(Path(by_model[model]).read_text(encoding="utf-8"))
        row = {}
        for direction, label in (("image_to_text", "i2t"), ("text_to_image", "t2i")):
            for key, value in result[direction].items():
                row[f"{label} {key}"] = value
        row["mean recall"] = result["mean_recall"]
        rows[model] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def to_markdown(table: pd.DataFrame) -> str:
    shown = table.map(lambda value: "n/a" if math.isnan(value) else f"{value:.1f}")
    header = "| model | " + " | ".join(shown.columns) + " |"
    rule = "|---|" + "---|" * len(shown.columns)
    rows = [f"| {model} | " + " | ".join(row) + " |" for model, row in shown.iterrows()]
    note = ("\nAccuracy in percent (READ-CLIP protocol); Average is the plain mean of the six "
            "benchmark columns.\n")
    return "\n".join([header, rule, *rows]) + "\n" + note


def plot(table: pd.DataFrame, path: str | Path) -> None:
    """Grouped bars: one group per benchmark column, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [*COLUMNS, AVERAGE]
    width = 0.8 / max(len(table), 1)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for index, (model, row) in enumerate(table[columns].iterrows()):
        positions = [column + index * width for column in range(len(columns))]
        ax.bar(positions, row.fillna(0).to_numpy(), width=width, label=model)
    ax.set_xticks([column + 0.4 - width / 2 for column in range(len(columns))], columns)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Compositional benchmarks (READ-CLIP protocol)")
    ax.legend(title="model", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summaries", nargs="+", required=True, help="Summary JSON files of score-benchmark.")
    parser.add_argument("--models", nargs="+", required=True, help="Row order of the table.")
    parser.add_argument("--out-markdown", required=True)
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-chart", required=True)
    parser.add_argument("--retrieval", nargs="*", default=[],
                        help="score-retrieval JSON files, named <model>.json (the forgetting check).")
    parser.add_argument("--out-retrieval-markdown", help="Retrieval table (Markdown); needs --retrieval.")
    parser.add_argument("--out-retrieval-csv", help="Retrieval table (CSV); needs --retrieval.")


def main(args: argparse.Namespace) -> int:
    table = collect(args.summaries, args.models)
    write_text(args.out_markdown, to_markdown(table))
    write_text(args.out_csv, table.to_csv(float_format="%.4f"))
    plot(table, args.out_chart)
    if args.retrieval:
        if not (args.out_retrieval_markdown and args.out_retrieval_csv):
            raise ValueError("--retrieval needs --out-retrieval-markdown and --out-retrieval-csv")
        retrieval = collect_retrieval(args.retrieval, args.models)
        shown = retrieval.map(lambda value: f"{value:.1f}")
        header = "| model | " + " | ".join(shown.columns) + " |"
        rule = "|---|" + "---|" * len(shown.columns)
        rows = [f"| {model} | " + " | ".join(row) + " |" for model, row in shown.iterrows()]
        note = "\nCOCO Karpathy test retrieval, Recall@K in percent (what fine-tuning kept).\n"
        write_text(args.out_retrieval_markdown, "\n".join([header, rule, *rows]) + "\n" + note)
        write_text(args.out_retrieval_csv, retrieval.to_csv(float_format="%.4f"))
    log.info("results table for %d models written to %s", len(table), args.out_markdown)
    return 0
