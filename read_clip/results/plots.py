"""The report's figures, each saved as PNG (for the HTML report) and PDF (for papers).

`plot_bars` draws the six benchmark numbers and the Average per model with their bootstrap
intervals. `plot_training` draws every quantity of the training metrics files against the step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
# Figures are built without pyplot, so no GUI backend or global figure state is involved.
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from read_clip.io import atomic_path
from read_clip.results.tables import TABLE_COLUMNS

FIGURE_FORMATS = ("png", "pdf")
PNG_DPI = 150
# Quantities of a metrics record that are not loss terms, plotted after the losses.
SCHEDULE_KEYS = ("lr", "logit_scale")
AXIS_LABELS = {
    "loss": "weighted total loss (nats)",
    "lr": "learning rate (AdamW step size)",
    "logit_scale": "logit scale exp(t) (unitless)",
}
TITLES = {
    "neg_loss": "L_neg: hard-negative contrastive",
    "rec_loss": "L_rec: caption reconstruction",
    "align_loss": "L_align: paraphrase alignment",
    "contrastive_loss": "CLIP contrastive (pretraining)",
    "loss": "total loss (weighted sum)",
    "lr": "learning rate",
    "logit_scale": "logit scale",
}


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write `fig` to <stem>.png and <stem>.pdf, each atomically; return the paths."""
    paths = []
    for fmt in FIGURE_FORMATS:
        path = Path(f"{stem}.{fmt}")
        with atomic_path(path) as tmp:
            # No creation date in the PDF, so a rerun on the same inputs writes the same bytes.
            metadata = {"CreationDate": None} if fmt == "pdf" else None
            fig.savefig(tmp, format=fmt, dpi=PNG_DPI, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths


def plot_bars(cells: pd.DataFrame, models: Sequence[str], title: str, stem: str | Path) -> list[Path]:
    """Grouped bars, one group per table column and one bar per model, with interval error bars.

    `cells` is a tidy frame of `tables.column_frame` (model, column, estimate, lower, upper in
    percent); a missing value draws no bar.
    """
    width = 0.8 / max(len(models), 1)
    positions = np.arange(len(TABLE_COLUMNS))
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax = fig.subplots()
    indexed = cells.set_index(["model", "column"])
    for index, model in enumerate(models):
        rows = indexed.loc[model].reindex(TABLE_COLUMNS) if model in indexed.index.get_level_values(0) else None
        if rows is None:
            continue
        estimate = rows["estimate"].to_numpy(dtype=float)
        errors = np.vstack([estimate - rows["lower"].to_numpy(dtype=float),
                            rows["upper"].to_numpy(dtype=float) - estimate])
        ax.bar(positions + (index - (len(models) - 1) / 2) * width, estimate, width=width, label=model,
               yerr=errors, capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks(positions, TABLE_COLUMNS)
    ax.set_xlabel("benchmark (Average = plain mean of the six)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(title="model", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, stem)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a training metrics.jsonl: one JSON object per line with at least `step`."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: invalid JSON ({error}); "
                                 "rerun the training rule") from error
            if not isinstance(record, dict) or "step" not in record:
                raise ValueError(f"{path}, line {line_number}: expected an object with a 'step' field, "
                                 f"got {line[:80]!r}")
            records.append(record)
    if not records:
        raise ValueError(f"{path}: no metrics records; the training run wrote nothing")
    return records


def training_quantities(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """List the quantities to plot: loss terms (the recipe's first, in loss order), the weighted
    total, then lr and logit scale."""
    keys = {key for records in runs.values() for record in records for key in record}
    known = [k for k in TITLES if k.endswith("_loss") and k in keys]
    others = sorted(k for k in keys if k.endswith("_loss") and k not in TITLES)
    return [*known, *others, *(k for k in ("loss", *SCHEDULE_KEYS) if k in keys)]


def plot_training(runs: Mapping[str, Sequence[Mapping[str, Any]]], stem: str | Path) -> list[Path]:
    """Draw one subplot per quantity against the optimiser step, one line per model.

    Without any run (no model was trained, e.g. only pretrained checkpoints are scored) the figure
    shows a line of text stating that, and the report still writes the same files.
    """
    if not runs:
        fig = Figure(figsize=(6, 2), layout="constrained")
        fig.text(0.5, 0.5, "No training metrics were given to the report.", ha="center", va="center")
        fig.suptitle("Training curves per model")
        return save_figure(fig, stem)
    quantities = training_quantities(runs)
    columns = min(3, len(quantities))
    rows = math.ceil(len(quantities) / columns)
    fig = Figure(figsize=(4.6 * columns, 3.4 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    colors = {model: f"C{i % 10}" for i, model in enumerate(runs)}

    for ax, quantity in zip(axes.flat, quantities):
        for model, records in runs.items():
            points = [(r["step"], r[quantity]) for r in records if r.get(quantity) is not None]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, color=colors[model], label=model, marker="." if len(points) < 30 else None)
        ax.set_title(TITLES.get(quantity, quantity))
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(AXIS_LABELS.get(quantity, "cross-entropy (nats)"))
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(quantities):]:
        ax.set_visible(False)

    handles = [Line2D([], [], color=colors[m], label=m) for m in runs]
    fig.legend(handles=handles, title="model", loc="outside lower center", ncols=min(len(runs), 6))
    fig.suptitle("Training curves per model (means over each logging window)")
    return save_figure(fig, stem)
