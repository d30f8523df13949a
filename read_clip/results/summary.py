"""The one-page run summary: which data, weights, settings and packages produced the tables.

It is built only from files the pipeline wrote: each model directory's model.json, config.json
and versions.json, the score summaries' settings and package versions, and the caption report,
plus the SHA-256 of the caption report and of every model.safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from read_clip.data.checksums import file_digests
from read_clip.results.bootstrap import stratum_of
from read_clip.results.tables import BENCHMARK_NAMES, to_markdown

NOT_RECORDED = "not recorded"
WEIGHTS_FILE = "model.safetensors"
# Training settings shown per model, from the run's config.json ("train" section for fine-tuning).
TRAIN_FIELDS = ("batch_size", "epochs", "lr", "warmup_steps", "steps")


@dataclass(frozen=True)
class ModelRecord:
    """Files of one model directory that describe how its model was made."""

    name: str
    path: Path
    model: dict[str, Any]
    config: dict[str, Any]
    versions: dict[str, str]
    sha256: str | None


def read_json(path: Path) -> dict[str, Any]:
    """Parse a JSON object; an absent file gives {} (e.g. a fetched base model has no config.json)."""
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error}); rerun the rule that wrote it") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def sha256_of(path: Path) -> str | None:
    return file_digests(path)[0] if path.exists() else None


def read_model_dir(path: str | Path) -> ModelRecord:
    """Read a model directory; its name is the folder name (results/models/<name>/)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {path} not found; pass the directories under results/models/")
    return ModelRecord(path.name, path, read_json(path / "model.json"), read_json(path / "config.json"),
                       read_json(path / "versions.json"), sha256_of(path / WEIGHTS_FILE))


def training_cell(record: ModelRecord) -> str:
    """Describe in one line how the model was trained, from model.json and config.json."""
    if "weights" in record.config:
        weights = record.config["weights"]
        train = record.config.get("train", {})
        fields = ", ".join(f"{k} {train[k]}" for k in TRAIN_FIELDS if k in train)
        loss = " + ".join(f"{w:g} L_{term}" for term, w in weights.items() if w)
        return f"fine-tuned: L = {loss}; {fields}"
    pretrained = record.model.get("pretrained")
    if pretrained is not None:
        return f"pretrained weights '{pretrained}'"
    return NOT_RECORDED


def models_table(records: Sequence[ModelRecord]) -> pd.DataFrame:
    rows = {}
    for record in records:
        rows[record.name] = {
            "architecture": record.model.get("architecture", NOT_RECORDED),
            "seed": str(record.config.get("seed", record.model.get("seed", NOT_RECORDED))),
            "training": training_cell(record),
            "base model": str(record.model.get("base_model", "-")),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def benchmarks_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Tabulate subsets, items, missing subsets and absent files per benchmark, from its first summary."""
    rows = {}
    order = {benchmark: index for index, benchmark in enumerate(BENCHMARK_NAMES)}
    for summary in sorted(summaries, key=lambda s: order.get(s["benchmark"], len(order))):
        name = BENCHMARK_NAMES.get(summary["benchmark"], summary["benchmark"])
        if name in rows:
            continue
        subsets = summary.get("subsets", {})
        # SugarCrepe++ reports each item twice (ITT and TOT), so items are counted per loader subset.
        items = {stratum_of(summary["benchmark"], name): s["items"] for name, s in subsets.items()}
        rows[name] = {
            "subsets": str(len(subsets)),
            "items": str(sum(items.values())),
            "tie policy": summary.get("tie_policy", NOT_RECORDED),
            "missing subsets": ", ".join(summary.get("missing_subsets", [])) or "none",
            "absent files": str(len(summary.get("absent_files", []))),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("benchmark")


def versions_table(records: Sequence[ModelRecord], summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Tabulate package versions (rows) of each training run and of the scoring runs (columns)."""
    sources: dict[str, Mapping[str, str]] = {}
    for record in records:
        if record.versions:
            sources[f"training {record.name}"] = record.versions
    scoring = [s["package_versions"] for s in summaries if "package_versions" in s]
    distinct = list({json.dumps(v, sort_keys=True): v for v in scoring}.values())
    for index, versions in enumerate(distinct):
        sources["scoring" if len(distinct) == 1 else f"scoring ({index + 1})"] = versions
    return pd.DataFrame(sources).fillna("-").rename_axis("package")


def distinct_settings(summaries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return the distinct evaluation settings of the summaries (one entry when all agree)."""
    return list({json.dumps(s.get("settings", {}), sort_keys=True): s.get("settings", {}) for s in summaries}.values())


def checksum_lines(records: Sequence[ModelRecord], caption_report: Path | None) -> list[str]:
    lines = []
    if caption_report is not None:
        lines.append(f"- `{caption_report}`: `{sha256_of(caption_report) or 'missing'}`")
    for record in records:
        lines.append(f"- `{record.path / WEIGHTS_FILE}`: `{record.sha256 or 'missing'}`")
    return lines


def settings_lines(settings: Mapping[str, Any]) -> str:
    """Format one Markdown bullet per top-level settings key, its value as compact JSON."""
    if not settings:
        return f"- {NOT_RECORDED}\n"
    return "".join(f"- {key}: `{json.dumps(value, sort_keys=True)}`\n" for key, value in sorted(settings.items()))


def caption_lines(report: Mapping[str, Any]) -> list[str]:
    if not report:
        return ["- no caption report given"]
    fallback = report.get("fallback", {})
    share = fallback.get("share")
    lines = [
        f"- {report.get('captions')} captions of {report.get('images')} training images",
        f"- hard-negative pool per caption: mean {report.get('pool_size', {}).get('mean')}",
        f"- captions with no possible swap (fallback): {fallback.get('count')}"
        + (f" ({100 * share:.2f}%)" if share is not None else ""),
        f"- paraphrase rows by source: {report.get('paraphrase_rows')}",
    ]
    if "captions_with_generated" in report:
        lines.append(f"- captions with a generated paraphrase: {report['captions_with_generated']}")
    return lines


def render_summary(records: Sequence[ModelRecord], summaries: Sequence[Mapping[str, Any]],
                   caption_report: Path | None, bootstrap: Mapping[str, Any]) -> str:
    """Render the run summary as Markdown."""
    settings = distinct_settings(summaries)
    versions = versions_table(records, summaries)
    parts = [
        "# Run summary\n",
        "## Uncertainty\n",
        f"- {bootstrap['replicates']} bootstrap replicates, {100 * bootstrap['confidence']:g}% percentile "
        f"intervals, seed {bootstrap['seed']}; items are resampled within each subset and all models "
        "share each draw (paired).\n",
        "## Models\n",
        to_markdown(models_table(records)) if records else "No model directories given.\n",
        "## Training data\n",
        "\n".join(caption_lines(read_json(caption_report) if caption_report else {})) + "\n",
        "## Benchmarks\n",
        to_markdown(benchmarks_table(summaries)),
        "## Evaluation settings\n",
        *(settings_lines(s) for s in settings),
        "" if len(settings) == 1 else f"NOTE: the summaries were scored with {len(settings)} different settings.\n",
        "## Package versions\n",
        to_markdown(versions) if not versions.empty else f"{NOT_RECORDED}\n",
        "## Input checksums (SHA-256)\n",
        "\n".join(checksum_lines(records, caption_report) or ["- no inputs given"]) + "\n",
    ]
    return "\n".join(parts)
