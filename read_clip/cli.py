"""The `read-clip` command: one subcommand per workflow step, plus tools for users.

Each subcommand lives in the module that implements it, which provides
`configure_parser(parser)` and `main(args) -> int`. Modules are imported only when their
subcommand runs, so `read-clip --help` stays fast and a light step never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from read_clip.log import setup_logging

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "download": ("read_clip.data.download", "Download one source of the data manifest, resumably, and verify it."),
    "prepare-images": ("read_clip.data.prepare", "Decode, convert and resize one shard of training images."),
    "report-leakage": ("read_clip.data.leakage", "Count benchmark images that are also training images."),
    "fetch-clip": ("read_clip.models.fetch_clip", "Fetch pretrained CLIP weights into a model directory."),
    "fetch-decoder": ("read_clip.models.fetch_decoder", "Fetch the pretrained T5 decoder into a decoder directory."),
    "make-demo-world": ("read_clip.demo.export", "Generate the shapes world in the upstream data layouts."),
    "make-negatives": ("read_clip.captions.stage", "Write hard negatives and paraphrases of one caption shard."),
    "gather-captions": ("read_clip.captions.report", "Summarise the caption shards into the stage report."),
    "generate-paraphrases": ("read_clip.captions.generate", "Write model-generated paraphrases of one caption shard."),
    "make-decoder-targets": ("read_clip.targets", "Tokenise the reconstruction targets of the decoder."),
    "pretrain-clip": ("read_clip.train.pretrain", "Demo only: pretrain the base CLIP with the plain contrastive loss."),
    "pretrain-decoder": ("read_clip.train.pretrain_decoder", "Demo only: pretrain the decoder and bridge on the frozen base CLIP."),
    "finetune": ("read_clip.train.finetune", "Fine-tune the base CLIP with one variant's loss weights."),
    "list-images": ("read_clip.benchmarks.images", "List the images each benchmark needs, per image set."),
    "embed-images": ("read_clip.benchmarks.embed", "Embed one image set with one model."),
    "score-benchmark": ("read_clip.benchmarks.run", "Score one model on one benchmark from the shared image embeddings."),
    "check-data": ("read_clip.benchmarks.check", "Check a benchmark's files and images; print per-subset item counts."),
    "evaluate": ("read_clip.benchmarks.evaluate", "Score any checkpoint on one or more benchmarks without editing the config."),
    "score-retrieval": ("read_clip.benchmarks.retrieval", "COCO Karpathy test retrieval recall (the forgetting check)."),
    "fetch-model": ("read_clip.models.sources", "Materialise a model spec (open_clip, checkpoint, Hugging Face) as a model directory."),
    "render-report": ("read_clip.results.report", "Render the full report: tables with intervals, plots, run summary."),
    "render-table": ("read_clip.results.table", "Render the results table (Markdown, CSV) and bar chart."),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="read-clip", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="Logging level (DEBUG, INFO, WARNING).")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported to add its options.
        if name == chosen:
            importlib.import_module(module_name).configure_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    setup_logging(args.log_level)
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(args) or 0)


# Errors that bad input or a missing file cause: the console command prints their message, which
# names the file, record or key and what to do, instead of a traceback. DEBUG shows the traceback.
USER_ERRORS = (ValueError, FileNotFoundError)


def run() -> int:
    """Entry point of the `read-clip` console command."""
    try:
        return main()
    except USER_ERRORS as error:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        print(f"read-clip: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
