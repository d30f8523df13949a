"""The report's tables: tidy frames of numbers with intervals, and their Markdown, LaTeX and HTML forms.

Every builder returns a tidy frame (one row per cell, full precision, for the CSV files). The
`*_text` functions pivot a tidy frame into the display table of strings that the documents show,
with one decimal as the published tables have. All numbers are accuracies or differences in percentage points.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from read_clip.results.bootstrap import ReportEstimates, paired_difference
from read_clip.results.table import AVERAGE, COLUMNS

TABLE_COLUMNS = [*COLUMNS, AVERAGE]

# ViT-B/32 accuracies (percent) as published by Kwon, Min and Sohn, "Enhancing Compositional
# Reasoning in CLIP via Reconstruction and Alignment of Text Descriptions" (NeurIPS 2025,
# arXiv 2510.16540), READ-CLIP protocol. Average is the published plain mean of the six.
PUBLISHED = {
    "READ-CLIP": {"WhatsUp": 43.9, "VALSE": 76.2, "CREPE": 41.5, "SugarCrepe": 87.0,
                  "SC++ ITT": 69.8, "SC++ TOT": 66.2, AVERAGE: 64.1},
    "NegCLIP": {"WhatsUp": 42.4, "VALSE": 73.7, "CREPE": 30.5, "SugarCrepe": 83.6,
                "SC++ ITT": 65.0, "SC++ TOT": 62.5, AVERAGE: 59.6},
    "FSC-CLIP": {"WhatsUp": 39.8, "VALSE": 74.4, "CREPE": 42.5, "SugarCrepe": 85.2,
                 "SC++ ITT": 67.9, "SC++ TOT": 64.4, AVERAGE: 62.4},
}
# Our model trained with the same recipe as a published row (FSC-CLIP has no counterpart here).
PUBLISHED_MATCH = {"read_clip": "READ-CLIP", "negclip": "NegCLIP"}
BENCHMARK_NAMES = {"whatsup": "WhatsUp", "valse": "VALSE", "crepe": "CREPE",
                   "sugarcrepe": "SugarCrepe", "sugarcrepe_pp": "SugarCrepe++"}
NOT_AVAILABLE = "n/a"


def format_interval(value: float, lower: float, upper: float, signed: bool = False) -> str:
    """Format a value and its interval as "43.9 [42.1, 45.7]", or "n/a" when the value is missing."""
    if value is None or math.isnan(value):
        return NOT_AVAILABLE
    spec = "+.1f" if signed else ".1f"
    return f"{value:{spec}} [{lower:{spec}}, {upper:{spec}}]"


def format_mean_std(mean: float, std: float, seeds: int, plus_minus: str = "±") -> str:
    """Format mean and sample standard deviation over `seeds` runs as "64.1 ± 0.3 (3)"."""
    if math.isnan(mean):
        return NOT_AVAILABLE
    spread = "n/a" if math.isnan(std) else f"{std:.1f}"
    return f"{mean:.1f} {plus_minus} {spread} ({seeds})"


def column_frame(estimates: ReportEstimates, protocol: str, models: Sequence[str], confidence: float) -> pd.DataFrame:
    """Build the tidy cells of one protocol's table: model, column, estimate, lower, upper (NaN where not scored)."""
    rows = []
    for model in models:
        cells = estimates.columns[protocol].get(model, {})
        for column in TABLE_COLUMNS:
            row = {"model": model, "column": column, "estimate": math.nan, "lower": math.nan, "upper": math.nan}
            if column in cells:
                lower, upper = cells[column].interval(confidence)
                row.update(estimate=cells[column].point, lower=lower, upper=upper)
            rows.append(row)
    return pd.DataFrame(rows)


def columns_text(tidy: pd.DataFrame, index: str = "model", signed: bool = False) -> pd.DataFrame:
    """Pivot a tidy frame with estimate, lower and upper into a display table: `index` rows x table columns."""
    text = tidy.assign(cell=[format_interval(v, lo, hi, signed) for v, lo, hi
                             in zip(tidy["estimate"], tidy["lower"], tidy["upper"])])
    table = text.pivot(index=index, columns="column", values="cell")
    return table.reindex(index=list(dict.fromkeys(tidy[index])), columns=TABLE_COLUMNS).fillna(NOT_AVAILABLE)


def published_frame(headline: pd.DataFrame) -> pd.DataFrame:
    """Put the published numbers beside ours: one row per (published model, column).

    `headline` is the tidy READ-CLIP-protocol frame of `column_frame`. `difference` is ours minus
    published; its interval is our interval shifted by the published number, which carries no
    uncertainty of its own here.
    """
    ours = headline.set_index(["model", "column"])
    # A published row gets our numbers only when its counterpart is one of the report's models.
    present = set(headline["model"])
    match = {published: model for model, published in PUBLISHED_MATCH.items() if model in present}
    rows = []
    for name, numbers in PUBLISHED.items():
        model = match.get(name)
        for column in TABLE_COLUMNS:
            published = numbers[column]
            cell = ours.loc[(model, column)] if (model, column) in ours.index else None
            estimate, lower, upper = ((cell["estimate"], cell["lower"], cell["upper"]) if cell is not None
                                      else (math.nan, math.nan, math.nan))
            rows.append({"published_model": name, "model": model, "column": column, "published": published,
                         "estimate": estimate, "lower": lower, "upper": upper,
                         "difference": estimate - published, "difference_lower": lower - published,
                         "difference_upper": upper - published})
    return pd.DataFrame(rows)


def published_text(comparison: pd.DataFrame) -> pd.DataFrame:
    """Pivot `published_frame` into a display table.

    Each published model gets a "published" row, followed by "ours" and difference rows when matched.
    """
    rows = {}
    for name, group in comparison.groupby("published_model", sort=False):
        group = group.set_index("column").reindex(TABLE_COLUMNS)
        rows[f"{name} (published)"] = [f"{v:.1f}" for v in group["published"]]
        model = group["model"].iloc[0]
        if isinstance(model, str):
            rows[f"{model} (ours)"] = [format_interval(v, lo, hi) for v, lo, hi
                                       in zip(group["estimate"], group["lower"], group["upper"])]
            rows[f"{model} - {name}"] = [format_interval(v, lo, hi, signed=True) for v, lo, hi
                                          in zip(group["difference"], group["difference_lower"],
                                                 group["difference_upper"])]
    return pd.DataFrame.from_dict(rows, orient="index", columns=TABLE_COLUMNS).rename_axis("row")


def difference_frame(estimates: ReportEstimates, pairs: Sequence[tuple[str, str]], protocol: str,
                     confidence: float) -> pd.DataFrame:
    """Build paired bootstrap differences first - second: pair, column, estimate, lower, upper."""
    rows = []
    cells = estimates.columns[protocol]
    for first, second in pairs:
        for column in TABLE_COLUMNS:
            row = {"pair": f"{first} - {second}", "first": first, "second": second, "column": column,
                   "estimate": math.nan, "lower": math.nan, "upper": math.nan}
            if column in cells.get(first, {}) and column in cells.get(second, {}):
                difference = paired_difference(cells[first][column], cells[second][column])
                lower, upper = difference.interval(confidence)
                row.update(estimate=difference.point, lower=lower, upper=upper)
            rows.append(row)
    return pd.DataFrame(rows, columns=["pair", "first", "second", "column", "estimate", "lower", "upper"])


def subset_frame(estimates: ReportEstimates, models: Sequence[str], confidence: float) -> pd.DataFrame:
    """Build tidy per-subset accuracies: benchmark, subset, items, model, estimate, lower, upper."""
    rows = []
    for benchmark, by_model in estimates.subsets.items():
        for model in models:
            for subset, estimate in by_model.get(model, {}).items():
                lower, upper = estimate.interval(confidence)
                rows.append({"benchmark": benchmark, "subset": subset, "items": estimates.items[benchmark][subset],
                             "model": model, "estimate": estimate.point, "lower": lower, "upper": upper})
    return pd.DataFrame(rows, columns=["benchmark", "subset", "items", "model", "estimate", "lower", "upper"])


def subset_text(subsets: pd.DataFrame, benchmark: str, models: Sequence[str]) -> pd.DataFrame:
    """Pivot one benchmark's subsets into a display table: subsets x (items, one column per model)."""
    part = subsets[subsets["benchmark"] == benchmark]
    cells = part.assign(cell=[format_interval(v, lo, hi) for v, lo, hi
                              in zip(part["estimate"], part["lower"], part["upper"])])
    table = cells.pivot(index="subset", columns="model", values="cell")
    order = list(dict.fromkeys(part["subset"]))
    table = table.reindex(index=order, columns=[m for m in models if m in set(part["model"])])
    items = part.drop_duplicates("subset").set_index("subset")["items"].reindex(order)
    return pd.concat([items.astype(str).rename("items"), table.fillna(NOT_AVAILABLE)], axis=1)


def collect_seed_runs(files_by_variant: Mapping[str, Sequence[str | Path]]) -> pd.DataFrame:
    """Collect the headline numbers of every training run: (variant, model) rows x the six columns and Average.

    Each variant maps to the summary JSONs of its runs (one per run and benchmark); a run is the
    summary's `model`, e.g. "read_clip" and "read_clip@seed2026".
    """
    frames = []
    for variant, paths in files_by_variant.items():
        values: dict[str, dict[str, float]] = {}
        for path in paths:
            summary = json.loads(Path(path).read_text(encoding="utf-8"))
            values.setdefault(summary["model"], {}).update(summary["headline"])
        frame = pd.DataFrame.from_dict(values, orient="index").reindex(columns=COLUMNS).astype(float)
        frame[AVERAGE] = frame[COLUMNS].mean(axis=1, skipna=False)
        frame.index = pd.MultiIndex.from_product([[variant], frame.index], names=["variant", "model"])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=TABLE_COLUMNS, index=pd.MultiIndex.from_tuples([], names=["variant", "model"]))
    return pd.concat(frames)


def seed_statistics(runs: pd.DataFrame) -> pd.DataFrame:
    """Compute mean and sample standard deviation (ddof 1) over the runs of each variant.

    `runs` has (variant, model) rows and table columns, as `collect_seed_runs` returns. The
    result is tidy: variant, column, mean, std, seeds; std is NaN for a single run.
    """
    rows = []
    for variant, group in runs.groupby(level="variant", sort=False):
        for column in TABLE_COLUMNS:
            values = group[column].to_numpy(dtype=float)
            std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
            rows.append({"variant": variant, "column": column, "mean": float(np.mean(values)),
                         "std": std, "seeds": len(values)})
    return pd.DataFrame(rows, columns=["variant", "column", "mean", "std", "seeds"])


def seed_text(statistics: pd.DataFrame, plus_minus: str = "±") -> pd.DataFrame:
    cells = statistics.assign(cell=[format_mean_std(m, s, n, plus_minus) for m, s, n
                                    in zip(statistics["mean"], statistics["std"], statistics["seeds"])])
    table = cells.pivot(index="variant", columns="column", values="cell")
    return table.reindex(index=list(dict.fromkeys(statistics["variant"])), columns=TABLE_COLUMNS)


def to_markdown(table: pd.DataFrame) -> str:
    """Render a display table as GitHub Markdown, writing cells as they are (never re-parsed as numbers)."""
    return table.to_markdown(disable_numparse=True) + "\n"


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape_latex(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """Render a display table as a LaTeX table environment with booktabs rules, everything escaped.

    The row labels become the first column, under the index's name, so the header is one line.
    """
    flat = table.reset_index()
    flat.columns = [str(c) for c in flat.columns]
    styler = flat.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    return styler.to_latex(caption=escape_latex(caption), label=label, hrules=True, position="htbp",
                           position_float="centering") + "\n"
