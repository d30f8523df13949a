"""`read-clip render-report`: tables with bootstrap intervals, figures and the run summary.

Inputs are the outputs of earlier stages: each `score-benchmark` summary JSON with its per-item
score Parquet (same path, suffix .parquet), the training metrics.jsonl files, the model
directories and the caption report. Every file below is rewritten whole in --out-dir:

    tables.md, tables.html, tables.tex   all tables (READ-CLIP protocol, vl_compo protocol,
                                         published vs ours, per-subset accuracies, and paired
                                         differences and training seeds when there are any)
    headline.csv, vl_compo.csv, published.csv, differences.csv, subsets.csv, seeds.csv
                                         the same numbers in full precision, one row per cell
    bars.png, bars.pdf                   headline numbers per model with interval error bars
    training.png, training.pdf           loss terms, learning rate and logit scale per step
    summary.md, summary.html             the one-page run summary

Settings JSON (--settings):
    seed               int, seeds the bootstrap draws (the config's one seed)
    bootstrap_samples  int, bootstrap replicates (1000 gives stable 95% percentile limits)
    confidence         float in (0, 1), central share of the interval (0.95)
    pairs              optional [[first, second], ...]: paired differences first - second;
                       default: every model against the first of --models
    seed_groups        optional {variant: [model, ...]}: runs of one variant with different
                       training seeds, summarised as mean and standard deviation
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from read_clip.config import ConfigError, parse_settings
from read_clip.io import write_text
from read_clip.results import bootstrap, plots, summary, tables

log = logging.getLogger(__name__)

REQUIRED_SETTINGS = ("seed", "bootstrap_samples", "confidence")
OPTIONAL_SETTINGS = ("pairs", "seed_groups")
# Largest difference (percentage points) tolerated between a summary's number and the same number
# recomputed from its Parquet; both are float64 means of the same outcomes.
SUMMARY_TOLERANCE = 1e-6
PROTOCOL_TITLES = {
    "headline": "READ-CLIP protocol (headline)",
    "vl_compo": "vl_compo protocol (as FSC-CLIP reports)",
}
HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:80em;margin:1em auto}}table{{border-collapse:collapse;margin:0.5em 0}}
th,td{{border:1px solid #bbb;padding:0.2em 0.5em;text-align:right}}th:first-child,td:first-child{{text-align:left}}
code{{font-size:90%}}</style></head><body>
{body}</body></html>
"""


def check_settings(settings: Mapping[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """Validate the settings and fill in the default pairs; raise ConfigError naming the bad key."""
    missing = [key for key in REQUIRED_SETTINGS if key not in settings]
    unknown = sorted(set(settings) - set(REQUIRED_SETTINGS) - set(OPTIONAL_SETTINGS))
    if missing or unknown:
        raise ConfigError(f"render-report --settings: missing keys {missing}, unknown keys {unknown}; "
                          f"expected {list(REQUIRED_SETTINGS)} and optionally {list(OPTIONAL_SETTINGS)}")
    if not isinstance(settings["bootstrap_samples"], int) or settings["bootstrap_samples"] < 1:
        raise ConfigError(f"bootstrap_samples must be a positive integer, got {settings['bootstrap_samples']!r}")
    confidence = settings["confidence"]
    if not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")

    pairs = [tuple(pair) for pair in settings.get("pairs") or [(model, models[0]) for model in models[1:]]]
    if any(len(pair) != 2 for pair in pairs):
        raise ConfigError(f"each entry of pairs must be [first, second], got {pairs}")
    groups = settings.get("seed_groups") or {}
    named = [m for pair in pairs for m in pair] + [m for runs in groups.values() for m in runs]
    unknown_models = sorted(set(named) - set(models))
    if unknown_models:
        raise ConfigError(f"pairs or seed_groups name models {unknown_models} that are not in --models {list(models)}")
    return {**settings, "pairs": pairs, "seed_groups": groups}


def read_summaries(paths: Sequence[str | Path], score_paths: Sequence[str | Path],
                   models: Sequence[str]) -> list[dict[str, Any]]:
    """Read each summary JSON and attach its per-item table under "scores_path"."""
    scores = {Path(p).with_suffix("") for p in score_paths}
    summaries = []
    for path in map(Path, paths):
        if path.with_suffix("") not in scores:
            raise ValueError(f"{path}: its per-item table {path.with_suffix('.parquet')} is not among --scores")
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("model") not in models:
            raise ValueError(f"{path}: model {data.get('model')!r} is not one of --models {list(models)}")
        summaries.append({**data, "path": path, "scores_path": path.with_suffix(".parquet")})
    extra = sorted(str(p) for p in scores - {Path(s["path"]).with_suffix("") for s in summaries})
    if extra:
        raise ValueError(f"per-item tables {extra} have no summary JSON among --summaries")
    return summaries


def benchmark_outcomes(summaries: Sequence[Mapping[str, Any]],
                       models: Sequence[str]) -> list[bootstrap.BenchmarkOutcomes]:
    """Judge every item of every (model, benchmark) and align them per benchmark in --models order."""
    by_benchmark: dict[str, dict[str, Any]] = {}
    for s in summaries:
        earlier = by_benchmark.setdefault(s["benchmark"], {}).setdefault(s["model"], s)
        if earlier is not s:
            raise ValueError(f"{s['path']} and {earlier['path']} both score {s['model']} on {s['benchmark']}; "
                             "pass one summary per model and benchmark")
    aligned = []
    for benchmark, by_model in by_benchmark.items():
        outcomes = {model: bootstrap.read_outcomes(by_model[model]["scores_path"], benchmark,
                                                   by_model[model]["tie_policy"])
                    for model in models if model in by_model}
        aligned.append(bootstrap.align_outcomes(benchmark, outcomes))
    return aligned


def check_against_summaries(estimates: bootstrap.ReportEstimates, summaries: Sequence[Mapping[str, Any]]) -> None:
    """Raise when a number recomputed from a Parquet differs from its summary (stale or mixed files)."""
    for s in summaries:
        for protocol in bootstrap.PROTOCOLS:
            for column, value in s[protocol].items():
                recomputed = estimates.columns[protocol][s["model"]][column].point
                if abs(recomputed - value) > SUMMARY_TOLERANCE:
                    raise ValueError(f"{s['path']}: {protocol} {column} is {value} but its per-item table gives "
                                     f"{recomputed}; the two files come from different runs, rerun score-benchmark")


def seed_runs(summaries: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]]):
    files = {variant: [s["path"] for s in summaries if s["model"] in runs] for variant, runs in groups.items()}
    return tables.collect_seed_runs(files)


def read_metrics_files(paths: Sequence[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """Read the training records per model; the model is the metrics file's folder (results/models/<model>/)."""
    runs = {}
    for path in map(Path, paths):
        if path.parent.name in runs:
            raise ValueError(f"{path}: duplicate metrics file for model {path.parent.name!r}; pass one per model")
        runs[path.parent.name] = plots.read_metrics(path)
    return runs


def interval_note(settings: Mapping[str, Any]) -> str:
    return (f"Brackets: {100 * settings['confidence']:g}% percentile bootstrap interval over test items "
            f"({settings['bootstrap_samples']} replicates, seed {settings['seed']}).")


def build_sections(frames: Mapping[str, Any], models: Sequence[str], settings: Mapping[str, Any]) -> list[tuple]:
    """List (title, note, display table, LaTeX label) of every table, in document order."""
    note = interval_note(settings)
    sections = [
        (f"Accuracy, {PROTOCOL_TITLES['headline']}",
         f"Accuracy in percent. Average is the plain mean of the six benchmark numbers. {note}",
         tables.columns_text(frames["headline"]), "tab:headline"),
        (f"Accuracy, {PROTOCOL_TITLES['vl_compo']}",
         "Accuracy in percent. SugarCrepe: mean of the replace, swap and add categories, items pooled "
         "in each; WhatsUp: plain mean of the 6 subsets; VALSE: mean of the 7 instruments. vl_compo "
         "does not report SugarCrepe++, so its columns repeat the only definition (plain mean of the "
         f"5 subsets). {note}",
         tables.columns_text(frames["vl_compo"]), "tab:vl-compo"),
        ("Published numbers beside ours",
         "Published ViT-B/32 accuracies of READ-CLIP, NegCLIP and FSC-CLIP (READ-CLIP protocol) and our "
         "models trained with the same recipe. The difference row is ours minus published, in "
         f"percentage points; its interval is ours shifted by the published number. {note}",
         tables.published_text(frames["published"]), "tab:published"),
    ]
    if len(frames["differences"]):
        sections.append(("Paired differences, READ-CLIP protocol",
                         "First model minus second, in percentage points, with both models judged on the "
                         "same item draw in every replicate. The interval covers test-item sampling only, "
                         f"not training-run variation. {note}",
                         tables.columns_text(frames["differences"], index="pair", signed=True),
                         "tab:differences"))
    if len(frames["seeds"]):
        sections.append(("Across training seeds, READ-CLIP protocol",
                         "Mean and sample standard deviation over the training runs of each variant "
                         "(number of runs in parentheses).",
                         tables.seed_text(frames["seeds"]), "tab:seeds"))
    scored = set(frames["subsets"]["benchmark"])
    for benchmark in [b for b in tables.BENCHMARK_NAMES if b in scored]:
        name = tables.BENCHMARK_NAMES.get(benchmark, benchmark)
        extra = " The pooled row is SugarCrepe's own number over all its items." if benchmark == "sugarcrepe" else ""
        sections.append((f"{name} per subset", f"Accuracy in percent per reported subset.{extra} {note}",
                         tables.subset_text(frames["subsets"], benchmark, models), f"tab:subsets-{benchmark}"))
    return sections


def markdown_document(title: str, sections: Sequence[tuple]) -> str:
    parts = [f"# {title}\n"]
    for heading, note, table, _ in sections:
        parts.append(f"## {heading}\n\n{note}\n\n{tables.to_markdown(table)}")
    return "\n".join(parts)


def latex_document(sections: Sequence[tuple]) -> str:
    """Render the tables as LaTeX table environments (booktabs), ready to \\input into a paper."""
    return "\n".join(tables.to_latex(table, f"{heading}. {note}", label) for heading, note, table, label in sections)


def html_page(title: str, markdown: str) -> str:
    """Render a Markdown document as a standalone HTML page, which the Snakemake report can show."""
    body = MarkdownIt("commonmark").enable("table").render(markdown)
    return HTML_PAGE.format(title=title, body=body)


def build_frames(estimates: bootstrap.ReportEstimates, summaries: Sequence[Mapping[str, Any]],
                 models: Sequence[str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Build every tidy frame of the report, keyed by its CSV name."""
    confidence = settings["confidence"]
    headline = tables.column_frame(estimates, "headline", models, confidence)
    return {
        "headline": headline,
        "vl_compo": tables.column_frame(estimates, "vl_compo", models, confidence),
        "published": tables.published_frame(headline),
        "differences": tables.difference_frame(estimates, settings["pairs"], "headline", confidence),
        "subsets": tables.subset_frame(estimates, models, confidence),
        "seeds": tables.seed_statistics(seed_runs(summaries, settings["seed_groups"])),
    }


def write_documents(out: Path, frames: Mapping[str, Any], models: Sequence[str], settings: Mapping[str, Any]) -> None:
    for name, frame in frames.items():
        write_text(out / f"{name}.csv", frame.to_csv(index=False, float_format="%.6f"))
    sections = build_sections(frames, models, settings)
    markdown = markdown_document("Results", sections)
    write_text(out / "tables.md", markdown)
    write_text(out / "tables.html", html_page("Results", markdown))
    write_text(out / "tables.tex", latex_document(sections))


def write_figures(out: Path, frames: Mapping[str, Any], models: Sequence[str], metrics: Sequence[str],
                  settings: Mapping[str, Any]) -> None:
    title = (f"Compositional benchmarks, {PROTOCOL_TITLES['headline']}, "
             f"{100 * settings['confidence']:g}% bootstrap intervals")
    plots.plot_bars(frames["headline"], models, title, out / "bars")
    plots.plot_training(read_metrics_files(metrics), out / "training")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summaries", nargs="+", required=True, help="Summary JSON files of score-benchmark.")
    parser.add_argument("--scores", nargs="+", required=True,
                        help="Per-item score Parquet files, each beside its summary (same path, suffix .parquet).")
    parser.add_argument("--models", nargs="+", required=True, help="Models in table row order.")
    parser.add_argument("--metrics", nargs="*", default=[],
                        help="Training metrics.jsonl files; the model is each file's folder name.")
    parser.add_argument("--model-dirs", nargs="*", default=[],
                        help="Model directories (results/models/<model>/) for the run summary.")
    parser.add_argument("--caption-report", default=None, help="Caption report JSON of gather-captions.")
    parser.add_argument("--settings", required=True,
                        help='Report settings as JSON: "seed", "bootstrap_samples", "confidence", '
                        'optionally "pairs" and "seed_groups".')
    parser.add_argument("--out-dir", required=True, help="Folder for the tables, figures and run summary.")


def main(args: argparse.Namespace) -> int:
    settings = check_settings(parse_settings(args.settings), args.models)
    summaries = read_summaries(args.summaries, args.scores, args.models)
    out = Path(args.out_dir)

    estimates = bootstrap.bootstrap_report(benchmark_outcomes(summaries, args.models),
                                           settings["bootstrap_samples"], bootstrap.seeded_draws(settings["seed"]))
    check_against_summaries(estimates, summaries)
    frames = build_frames(estimates, summaries, args.models, settings)
    write_documents(out, frames, args.models, settings)
    write_figures(out, frames, args.models, args.metrics, settings)

    records = [summary.read_model_dir(path) for path in args.model_dirs]
    caption_report = Path(args.caption_report) if args.caption_report else None
    run_summary = summary.render_summary(records, summaries, caption_report, {
        "replicates": settings["bootstrap_samples"], "confidence": settings["confidence"], "seed": settings["seed"]})
    write_text(out / "summary.md", run_summary)
    write_text(out / "summary.html", html_page("Run summary", run_summary))
    log.info("report for %d models and %d summaries written to %s", len(args.models), len(summaries), out)
    return 0
