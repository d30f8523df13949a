"""CREPE productivity items of the shapes world: long captions over a crop of a larger scene.

A scene is twice the image size and contains 3-5 objects of distinct colours. A caption names a
chain of 2-5 of them ("a red circle to the left of a square above a large blue triangle"). Its
complexity is the number of atoms it states, one per shape, colour, size and relation, so a
chain of m objects spans complexities 2m-1 to 4m-1. The crop box holds the named objects and
every object it touches, whole. Hard negatives (1-5 per row) are of three types:
atom (one atom replaced), swap (two atoms or two objects exchanged) and negate ("not" before a
relation, or "there is no X" for a named X).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from read_clip.demo.facts import Exists, Not, Related, all_true, clearly_false
from read_clip.demo.grammar import chain_caption, words
from read_clip.demo.items import Candidate, Item, ItemFactory, build_items
from read_clip.demo.world import (
    COLOURS,
    RELATIONS,
    SHAPES,
    Obj,
    Scene,
    Spec,
    pick,
    place_scattered,
    relation_truth,
)

CREPE_TYPES = ("atom", "swap", "negate")
COMPLEXITIES = range(4, 13)
MAX_NEGATIVES = 5
MAX_NAMED = 5
OTHER_SIZE = {"small": "large", "large": "small"}


@dataclass(frozen=True)
class ChainClaim:
    """Named objects m_0 .. m_k and the relation between each and the next."""

    mentions: tuple[Spec, ...]
    relations: tuple[str, ...]

    def facts(self) -> tuple:
        return tuple(Related(a, r, b) for a, r, b in zip(self.mentions, self.relations, self.mentions[1:]))

    def candidate(self, true: bool) -> Candidate:
        return Candidate(chain_caption(list(self.mentions), list(self.relations)), self.facts(), true)


def crepe_file(type_name: str, complexity: int) -> str:
    """Path of one CSV relative to the CREPE folder, as in the upstream zip."""
    return f"prod_hard_negatives/{type_name}/prod_vg_hard_negs_{type_name}_complexity_{complexity}.csv"


def rows_per_complexity(count: int) -> dict[int, int]:
    """`count` rows spread evenly over complexities 4-12, at least one each so no CSV is empty."""
    total = max(count, len(COMPLEXITIES))
    base, extra = divmod(total, len(COMPLEXITIES))
    return {k: base + (1 if index < extra else 0) for index, k in enumerate(COMPLEXITIES)}


def build_crepe(seed: int, type_name: str, count: int, factory: ItemFactory) -> dict[int, list[Item]]:
    """Items of one negative type, per complexity; each complexity has its own random stream."""
    return {k: build_items(seed, f"crepe/{type_name}/complexity_{k}", rows, factory, crepe_item, type_name, k)
            for k, rows in rows_per_complexity(count).items()}


def crepe_item(rng: np.random.Generator, factory: ItemFactory, type_name: str, complexity: int) -> Item | None:
    named_count = pick(rng, [m for m in range(2, MAX_NAMED + 1) if 2 * m - 1 <= complexity <= 4 * m - 1])
    object_count = int(rng.integers(max(3, named_count), MAX_NAMED + 1))
    colours = [list(COLOURS)[i] for i in rng.permutation(len(COLOURS))[:object_count]]
    looks = [Spec(pick(rng, SHAPES), colour, pick(rng, ("small", "large"))) for colour in colours]
    # 5 blank pixels between boxes: every pair is then clearly separated along some axis.
    scene = place_scattered(rng, looks, factory.image_size, side=2 * factory.image_size, gap=5)
    if scene is None:
        return None
    named = [scene.objects[i] for i in rng.permutation(object_count)[:named_count]]
    gold = chain_claim(rng, named, complexity)
    if gold is None:
        return None
    crop = crop_box(scene, named, pad=int(rng.integers(2, 9)))
    x, y, width, height = crop
    view = scene.within((x, y, x + width - 1, y + height - 1))
    if not all_true(gold.facts(), view):
        return None
    negatives = [c for c in NEGATIVE_MAKERS[type_name](gold) if clearly_false(c.facts, view)]
    negatives = list({c.text: c for c in negatives if c.text != gold.candidate(True).text}.values())
    if not negatives:
        return None
    chosen = rng.permutation(len(negatives))[:int(rng.integers(1, MAX_NEGATIVES + 1))]
    candidates = [gold.candidate(True), *(negatives[i] for i in sorted(chosen))]
    return factory.make(scene, candidates, visual_genome, crop=crop, complexity=complexity)


def visual_genome(image_id: int) -> str:
    return f"visual_genome/VG_100K/{image_id}.jpg"


def chain_claim(rng: np.random.Generator, named: list[Obj], complexity: int) -> ChainClaim | None:
    """Make a caption of exactly `complexity` atoms over `named`, with a clear relation per link."""
    relations = []
    for a, b in zip(named, named[1:]):
        holding = [r for r in RELATIONS if relation_truth(a, r, b) is True]
        if not holding:
            return None
        relations.append(pick(rng, holding))
    attribute_atoms = complexity - (2 * len(named) - 1)
    slots = [(i, attribute) for i in range(len(named)) for attribute in ("colour", "size")]
    stated = {slots[i] for i in rng.permutation(len(slots))[:attribute_atoms]}
    mentions = tuple(Spec(o.shape, o.colour if (i, "colour") in stated else None,
                          o.size if (i, "size") in stated else None)
                     for i, o in enumerate(named))
    return ChainClaim(mentions, tuple(relations))


def crop_box(scene: Scene, named: list[Obj], pad: int) -> tuple[int, int, int, int]:
    """(x, y, width, height) around `named` plus `pad`, grown until no object is cut by its edge."""
    last = scene.side - 1
    x0 = max(0, min(o.box[0] for o in named) - pad)
    y0 = max(0, min(o.box[1] for o in named) - pad)
    x1 = min(last, max(o.box[2] for o in named) + pad)
    y1 = min(last, max(o.box[3] for o in named) + pad)
    grown = True
    while grown:
        grown = False
        for o in scene.objects:
            ox0, oy0, ox1, oy1 = o.box
            touches = ox0 <= x1 and ox1 >= x0 and oy0 <= y1 and oy1 >= y0
            inside = ox0 >= x0 and oy0 >= y0 and ox1 <= x1 and oy1 <= y1
            if touches and not inside:
                x0, y0, x1, y1 = min(x0, ox0), min(y0, oy0), max(x1, ox1), max(y1, oy1)
                grown = True
    return (x0, y0, x1 - x0 + 1, y1 - y0 + 1)


# ---------------------------------------------------------------------------------------------
# Hard negatives: every candidate of a type; the caller keeps the clearly false ones.

def with_mention(claim: ChainClaim, index: int, spec: Spec) -> ChainClaim:
    mentions = list(claim.mentions)
    mentions[index] = spec
    return replace(claim, mentions=tuple(mentions))


def atom_negatives(claim: ChainClaim) -> list[Candidate]:
    """Replace one atom: a shape, a stated colour or size, or a relation."""
    variants = []
    for index, spec in enumerate(claim.mentions):
        variants += [with_mention(claim, index, replace(spec, shape=s)) for s in SHAPES if s != spec.shape]
        if spec.colour:
            variants += [with_mention(claim, index, replace(spec, colour=c)) for c in COLOURS if c != spec.colour]
        if spec.size:
            variants.append(with_mention(claim, index, replace(spec, size=OTHER_SIZE[spec.size])))
    for index, relation in enumerate(claim.relations):
        for other in RELATIONS:
            if other != relation:
                relations = list(claim.relations)
                relations[index] = other
                variants.append(replace(claim, relations=tuple(relations)))
    return [v.candidate(False) for v in variants]


def swap_negatives(claim: ChainClaim) -> list[Candidate]:
    """Exchange two named objects, or one attribute between them."""
    variants = []
    count = len(claim.mentions)
    for i in range(count):
        for j in range(i + 1, count):
            a, b = claim.mentions[i], claim.mentions[j]
            variants.append(with_mention(with_mention(claim, i, b), j, a))
            for attribute in ("shape", "colour", "size"):
                value_a, value_b = getattr(a, attribute), getattr(b, attribute)
                if value_a and value_b and value_a != value_b:
                    swapped = with_mention(claim, i, replace(a, **{attribute: value_b}))
                    variants.append(with_mention(swapped, j, replace(b, **{attribute: value_a})))
    return [v.candidate(False) for v in variants]


def negate_negatives(claim: ChainClaim) -> list[Candidate]:
    """Put "not" before one relation, or add "there is no X" for one named object X."""
    mentions, relations = list(claim.mentions), list(claim.relations)
    facts = claim.facts()
    candidates = []
    for index in range(len(relations)):
        negated = tuple(Not(f) if i == index else f for i, f in enumerate(facts))
        candidates.append(Candidate(chain_caption(mentions, relations, negated=index), negated, False))
    text = chain_caption(mentions, relations)
    for spec in mentions:
        candidates.append(Candidate(f"{text}, and there is no {words(spec)}", (*facts, Not(Exists(spec))), False))
    return candidates


NEGATIVE_MAKERS = {"atom": atom_negatives, "swap": swap_negatives, "negate": negate_negatives}
