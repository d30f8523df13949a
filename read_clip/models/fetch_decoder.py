"""`fetch-decoder`: keep the decoder half of a pretrained T5 as a read-clip decoder directory.

The recipe's decoder is `google/t5-v1_1-large` (d_model 1024). transformers downloads it into
`--cache-dir` once; only the decoder stack and the lm_head are written out, since the encoder is
never run.
"""

from __future__ import annotations

import argparse
import logging

from transformers import T5ForConditionalGeneration

from read_clip.models.decoder import DECODER_START_ID, EOS_ID, PAD_ID, TextDecoder, save_decoder_dir

log = logging.getLogger(__name__)


def fetch_decoder(source: str, cache_dir: str | None, out_dir: str) -> TextDecoder:
    """Load a T5 model (hub id or local directory), check its token ids, save its decoder."""
    t5 = T5ForConditionalGeneration.from_pretrained(source, cache_dir=cache_dir)
    config = t5.config
    ids = (config.pad_token_id, config.eos_token_id, config.decoder_start_token_id)
    if ids != (PAD_ID, EOS_ID, DECODER_START_ID):
        raise ValueError(
            f"{source}: pad/eos/decoder-start ids are {ids}; the reconstruction targets assume T5's "
            f"{(PAD_ID, EOS_ID, DECODER_START_ID)}")
    decoder = TextDecoder(t5)
    save_decoder_dir(decoder, None, out_dir, extra={"source": source})
    return decoder


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="Hugging Face T5 id (google/t5-v1_1-large) or a local directory.")
    parser.add_argument("--cache-dir", default=None, help="Folder where transformers keeps downloaded weights.")
    parser.add_argument("--out", required=True, help="Decoder directory to write.")


def main(args: argparse.Namespace) -> int:
    decoder = fetch_decoder(args.source, args.cache_dir, args.out)
    parameters = sum(p.numel() for p in decoder.parameters())
    log.info("saved the decoder of %s (%.1fM parameters) to %s", args.source, parameters / 1e6, args.out)
    return 0
