"""English for the shapes world: noun phrases, relation phrases and the training captions.

Captions are lower-case sentences without a final full stop, built from a few templates whose
nouns, adjectives and noun chunks spaCy tags reliably ("a small red circle to the left of a large
blue square"), because a later stage derives swap negatives from them with spaCy.
"""

from __future__ import annotations

import numpy as np

from read_clip.demo.facts import Related
from read_clip.demo.world import INVERSE, Obj, Spec

RELATION_PHRASES = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
# "a X with a Y to its right" states that X is left of Y.
WITH_PHRASES = {"left": "to its right", "right": "to its left", "above": "below it", "below": "above it"}
SIDE_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
PAIR_FORMS = ("plain", "is", "there", "with")
CAPTIONS_PER_IMAGE = 5


def words(spec: Spec) -> str:
    """Return the attribute words and noun of `spec`, without article ("small red circle")."""
    return " ".join(w for w in (spec.size, spec.colour, spec.shape) if w)


def article(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text


def noun_phrase(spec: Spec) -> str:
    """"a small red circle", "an orange square", "a triangle"."""
    return article(words(spec))


def plural(spec: Spec) -> str:
    """"red circles": the attribute words with a plural noun."""
    return words(spec) + "s"


def pair_caption(a: Spec, relation: str, b: Spec, form: str = "plain") -> str:
    """Write one sentence stating that `a` is in `relation` to `b`, in one of PAIR_FORMS."""
    first, second = noun_phrase(a), noun_phrase(b)
    phrase = RELATION_PHRASES[relation]
    if form == "plain":
        return f"{first} {phrase} {second}"
    if form == "is":
        return f"{first} is {phrase} {second}"
    if form == "there":
        return f"there is {first} {phrase} {second}"
    if form == "with":
        return f"{first} with {second} {WITH_PHRASES[relation]}"
    raise ValueError(f"unknown caption form {form!r}; expected one of {PAIR_FORMS}")


def chain_caption(mentions: list[Spec], relations: list[str], negated: int | None = None) -> str:
    """"a red circle to the left of a square above a blue triangle"; relation `negated` gets "not"."""
    parts = [noun_phrase(mentions[0])]
    for index, (relation, mention) in enumerate(zip(relations, mentions[1:])):
        phrase = RELATION_PHRASES[relation]
        parts.append(f"not {phrase}" if index == negated else phrase)
        parts.append(noun_phrase(mention))
    return " ".join(parts)


def stated(obj: Obj, size: bool = True, colour: bool = True) -> Spec:
    """Return the description of `obj` that a caption states: its shape, plus the chosen attributes."""
    return Spec(obj.shape, obj.colour if colour else None, obj.size if size else None)


def training_captions(rng: np.random.Generator, first: Obj, relation: str,
                      second: Obj) -> list[tuple[str, Related]]:
    """Write five distinct true captions of a two-object scene, with the fact each one states.

    They reword one relation both ways round ("a X to the left of a Y" / "a Y to the right of a
    X") in four templates. The size is left out of some of them when the colours or shapes alone
    tell the two objects apart.
    """
    distinguishable = (first.shape, first.colour) != (second.shape, second.colour)
    options = [(form, forward) for form in PAIR_FORMS for forward in (True, False)]
    chosen = rng.permutation(len(options))[:CAPTIONS_PER_IMAGE]
    captions = []
    for index in chosen:
        form, forward = options[int(index)]
        with_size = not distinguishable or rng.random() >= 0.25
        a, b = stated(first, size=with_size), stated(second, size=with_size)
        if forward:
            fact = Related(a, relation, b)
        else:
            fact = Related(b, INVERSE[relation], a)
        captions.append((pair_caption(fact.a, fact.relation, fact.b, form), fact))
    return captions
