"""`fetch-clip`: build the base CLIP from open_clip pretrained weights into a model directory.

open_clip downloads the weights into `--cache-dir` once; later runs (and other workflows sharing
the cache) read them from there.
"""

from __future__ import annotations

import argparse
import logging

from read_clip.models.clip import create_clip, save_model_dir

log = logging.getLogger(__name__)

# OpenAI's CLIP weights were trained with QuickGELU. open_clip builds plain GELU for these names,
# loads the weights anyway and only warns, which silently shifts every score.
GELU_NAMES_OF_QUICKGELU_WEIGHTS = {"ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336", "RN50", "RN101"}


def check_activation(architecture: str, pretrained: str) -> None:
    """Reject a plain-GELU architecture paired with OpenAI's QuickGELU weights."""
    if pretrained == "openai" and architecture in GELU_NAMES_OF_QUICKGELU_WEIGHTS:
        raise ValueError(
            f"model.clip is {architecture!r} with pretrained 'openai': these weights need QuickGELU. "
            f"Set model.clip to '{architecture}-quickgelu'.")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--architecture", required=True, help="open_clip model name, e.g. ViT-B-32-quickgelu.")
    parser.add_argument("--pretrained", required=True, help="open_clip pretrained tag (e.g. openai) or a local checkpoint path.")
    parser.add_argument("--cache-dir", default=None, help="Folder where open_clip keeps downloaded weights.")
    parser.add_argument("--out", required=True, help="Model directory to write.")


def main(args: argparse.Namespace) -> int:
    check_activation(args.architecture, args.pretrained)
    loaded = create_clip(args.architecture, pretrained=args.pretrained, cache_dir=args.cache_dir)
    save_model_dir(loaded.model, args.architecture, args.out, extra={"pretrained": args.pretrained})
    log.info("saved %s (%s) to %s", args.architecture, args.pretrained, args.out)
    return 0
