"""VALSE items of the shapes world: the 11 pieces, each adapted to flat shapes.

Every record carries the key set of its upstream piece, with that piece's `dataset` spelling and
image-file naming. Actions are drawn as overlaps: "a red circle covers a blue square" (the circle
is drawn over the square), "hides behind" (it is under it) and "avoids" (they are well apart).
Coreference asks a yes/no question about an object the caption introduced.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from read_clip.demo.facts import VERBS, Acts, ColourIs, Count, Exists, Not, Related, Several
from read_clip.demo.grammar import RELATION_PHRASES, article, noun_phrase, pair_caption, plural, words
from read_clip.demo.items import (
    Candidate,
    Item,
    ItemFactory,
    build_items,
    coco_val2017,
    gold_pair,
    random_pair,
    replace_relation,
    replace_shape,
)
from read_clip.demo.world import (
    COLOURS,
    SHAPES,
    Spec,
    margin,
    make_obj,
    pick,
    place_overlapping,
    place_scattered,
    random_look,
    stream,
)

VALSE_PIECES = (
    "existence", "plurals", "counting-hard", "counting-small-quant", "counting-adversarial",
    "relations", "action-replacement", "actant-swap", "coreference-standard", "coreference-hard",
    "foil-it",
)
# Share of items whose annotators did not confirm the caption (mturk.caption < 2), as in the
# upstream files; the loader must filter them out.
INVALID_SHARE = 0.1
# piece -> (true counts, foil counts)
COUNTS = {
    "counting-hard": ((1, 2, 3, 4), (0, 1, 2, 3, 4)),
    "counting-small-quant": ((1, 2, 3), (0, 1, 2, 3)),
    # The true count is the largest, the foil a small count.
    "counting-adversarial": ((3, 4), (0, 1, 2)),
}
# SWiG names its images after the verb: "<verb>ing_<n>.jpg".
VERB_FILES = {"covers": "covering", "hides behind": "hiding", "avoids": "avoiding"}
# NOTE: upstream these are the outputs of a grammaticality model and an NLI model. The demo writes
# fixed values so that the key sets match, and nothing reads them.
GRAMMATICALITY = [1.0]
NLI_SCORES = {"entail": [0.0], "neutral": [0.0], "contradict": [1.0], "pred": ["contradict"]}


def build_valse(seed: int, piece: str, count: int, factory: ItemFactory) -> list[Item]:
    """Build `count` items of one piece; `fields` contains the JSON key and the full record of each."""
    items = build_items(seed, f"valse/{piece}", count, factory, PIECE_BUILDERS[piece], piece)
    votes = mturk_votes(stream(seed, f"valse/{piece}/mturk"), count)
    finished = []
    for index, (item, mturk) in enumerate(zip(items, votes)):
        key = record_key(piece, index, item)
        record = dict(item.fields)
        if piece == "relations":
            record["key"] = key
        record.update({"mturk": mturk, "foil": item.candidates[1].text})
        finished.append(replace(item, fields={"key": key, "record": record}))
    return finished


def record_key(piece: str, index: int, item: Item) -> str:
    """Return the JSON key of a record, in the style of the upstream piece."""
    if piece == "existence" or piece.startswith("counting"):
        return f"{piece.split('-')[0]}_visual7w_{item.image_id}"
    if piece == "plurals":
        return f"plurals:coco2017:{item.image_id}"
    if piece == "relations":
        return f"relations:coco_2017:{item.image_id}"
    if piece in ("action-replacement", "actant-swap"):
        return f"actions_test_{index}"
    if piece == "coreference-standard":
        return f"coref_train_{index}"
    if piece == "coreference-hard":
        return f"coref_test_{index}"
    return str(item.image_id)


def mturk_votes(rng: np.random.Generator, count: int) -> list[dict]:
    """Annotator votes (3 per item); round(10%) of the items get caption < 2 (invalid)."""
    invalid = set(rng.permutation(count)[:round(INVALID_SHARE * count)].tolist())
    votes = []
    for index in range(count):
        if index in invalid:
            caption = int(rng.integers(0, 2))
        else:
            caption = 3 if rng.random() < 0.7 else 2
        foil = int(rng.integers(0, 3 - caption + 1))
        votes.append({"foil": foil, "caption": caption, "other": 3 - caption - foil})
    return votes


def pair_of(caption: str, caption_facts: tuple, foil: str, foil_facts: tuple) -> list[Candidate]:
    return [Candidate(caption, caption_facts, True), Candidate(foil, foil_facts, False)]


def visual7w(image_id: int) -> str:
    return f"visual7w/images/v7w_{image_id}.jpg"


def visual7w_fields(piece: str, image_id: int) -> dict:
    return {"dataset": "visual7w", "dataset_idx": str(image_id), "image_file": f"v7w_{image_id}.jpg",
            "linguistic_phenomena": piece.split("-")[0]}


# ---------------------------------------------------------------------------------------------
# Existence, plurals and counting: how many objects of a kind the image holds.

def kind(rng: np.random.Generator, with_colour: bool = True) -> Spec:
    return Spec(pick(rng, SHAPES), pick(rng, COLOURS) if with_colour else None)


def members(rng: np.random.Generator, spec: Spec, count: int) -> list[Spec]:
    """`count` looks matching `spec`, mostly small so that four fit in one image."""
    return [Spec(spec.shape, spec.colour or pick(rng, COLOURS), "small" if rng.random() < 0.75 else "large")
            for _ in range(count)]


def others(rng: np.random.Generator, spec: Spec, count: int) -> list[Spec]:
    """`count` looks that do not match `spec` (another shape, and another colour if it has one)."""
    looks = []
    while len(looks) < count:
        look = random_look(rng)
        if look.shape != spec.shape and (spec.colour is None or look.colour != spec.colour):
            looks.append(look)
    return looks


def existence_item(rng: np.random.Generator, factory: ItemFactory, piece: str) -> Item | None:
    """"there are no red triangles" vs "there are red triangles", or the other way round."""
    target = kind(rng, with_colour=rng.random() < 0.5)
    zero = rng.random() < 0.5
    count = 0 if zero else int(rng.integers(2, 4))
    looks = members(rng, target, count) + others(rng, target, int(rng.integers(0 if count else 1, 3)))
    scene = place_scattered(rng, looks, factory.image_size)
    if scene is None:
        return None
    some, none = f"there are {plural(target)}", f"there are no {plural(target)}"
    if zero:
        candidates = pair_of(none, (Not(Exists(target)),), some, (Several(target),))
    else:
        candidates = pair_of(some, (Several(target),), none, (Not(Exists(target)),))

    def fields(image_id: int) -> dict:
        return {**visual7w_fields(piece, image_id), "caption": candidates[0].text,
                "answer": count, "classes": count, "split": "test", "original_split": "test",
                "classes_foil": [1, 2, 3] if zero else [0],
                "declarative_statement": candidates[0].text,
                "declarative_statement_foils": [candidates[1].text],
                "provenance_of_foils": "zero_to_something" if zero else "something_to_zero"}

    return with_fields(factory.make(scene, candidates, visual7w), fields)


def counting_sentence(spec: Spec, n: int) -> str:
    return f"there is exactly 1 {words(spec)}" if n == 1 else f"there are exactly {n} {plural(spec)}"


def counting_item(rng: np.random.Generator, factory: ItemFactory, piece: str) -> Item | None:
    """"there are exactly 3 red circles" vs another count; 1-4 objects of the kind plus 0-1 others."""
    true_counts, foil_counts = COUNTS[piece]
    n = pick(rng, true_counts)
    foil_n = pick(rng, [k for k in foil_counts if k != n])
    target = kind(rng)
    looks = members(rng, target, n) + others(rng, target, int(rng.integers(0, 2)))
    scene = place_scattered(rng, looks, factory.image_size)
    if scene is None:
        return None
    candidates = pair_of(counting_sentence(target, n), (Count(target, n),),
                         counting_sentence(target, foil_n), (Count(target, foil_n),))

    def fields(image_id: int) -> dict:
        return {**visual7w_fields(piece, image_id), "caption": candidates[0].text,
                "answer": n, "classes": n, "split": "test", "original_split": "test",
                "classes_foil": foil_n}

    return with_fields(factory.make(scene, candidates, visual7w), fields)


def plurals_item(rng: np.random.Generator, factory: ItemFactory, piece: str) -> Item | None:
    """"there is exactly one red circle" vs "there are a number of red circles", either way."""
    target = kind(rng)
    to_plural = rng.random() < 0.5
    count = 1 if to_plural else int(rng.integers(2, 4))
    looks = members(rng, target, count) + others(rng, target, int(rng.integers(0, 2)))
    scene = place_scattered(rng, looks, factory.image_size)
    if scene is None:
        return None
    one = (f"there is exactly one {words(target)}", (Count(target, 1),))
    many = (f"there are a number of {plural(target)}", (Several(target),))
    first, second = (one, many) if to_plural else (many, one)
    candidates = pair_of(*first, *second)
    singular, plural_noun = target.shape, target.shape + "s"

    def fields(image_id: int) -> dict:
        return {"dataset": "coco2017", "original_split": "val", "dataset_idx": image_id,
                "image_file": f"{image_id:012d}.jpg", "linguistic_phenomena": "plurals",
                "foil_method": f"checklist method, change NP to {'PL' if to_plural else 'SG'}",
                "classes": singular if to_plural else plural_noun,
                "classes_foil": plural_noun if to_plural else singular,
                "grammaticality_scores": GRAMMATICALITY, "nli_scores": NLI_SCORES,
                "orig_caption": f"there is {noun_phrase(target)}" if to_plural else f"there are {plural(target)}",
                "caption": candidates[0].text}

    return with_fields(factory.make(scene, candidates, coco_val2017), fields)


# ---------------------------------------------------------------------------------------------
# Relations, foil-it: one word of a two-object caption replaced.

def relations_item(rng: np.random.Generator, factory: ItemFactory, piece: str) -> Item | None:
    pair = random_pair(rng, factory.image_size)
    if pair is None:
        return None
    scene, a, relation, b = pair
    gold = gold_pair(rng, a, relation, b)
    foil = replace_relation(rng, gold)
    candidates = [gold.candidate(True), foil.candidate(False)]

    def fields(image_id: int) -> dict:
        return {"dataset": "coco_2017", "original_split": "val", "dataset_idx": image_id,
                "image_file": f"{image_id:012d}.jpg", "linguistic_phenomena": "relations",
                "foil_method": "shapes world: relation phrase replaced",
                "caption": candidates[0].text, "classes": RELATION_PHRASES[gold.relation],
                "classes_foil": RELATION_PHRASES[foil.relation],
                "grammaticality_scores": GRAMMATICALITY, "nli_scores": NLI_SCORES}

    return with_fields(factory.make(scene, candidates, coco_val2017), fields)


def foil_it_item(rng: np.random.Generator, factory: ItemFactory, piece: str) -> Item | None:
    pair = random_pair(rng, factory.image_size)
    if pair is None:
        return None
    scene, a, relation, b = pair
    gold = gold_pair(rng, a, relation, b)
    foil = replace_shape(rng, gold)
    replaced = "a" if foil.a != gold.a else "b"
    candidates = [gold.candidate(True), foil.candidate(False)]

    def fields(image_id: int) -> dict:
        return {"dataset": "FOIL dataset", "dataset_idx": image_id, "original_split": "test",
                "linguistic_phenomena": "noun phrases", "image_file": f"COCO_val2014_{image_id:012d}.jpg",
                "caption": candidates[0].text, "classes": getattr(gold, replaced).shape,
                "classes_foil": getattr(foil, replaced).shape}

    # "FOIL dataset" is the upstream spelling; its images are COCO val2014.
    return with_fields(factory.make(scene, candidates, coco_val2014), fields)


def coco_val2014(image_id: int) -> str:
    return f"coco/val2014/COCO_val2014_{image_id:012d}.jpg"


def coco_train2014(image_id: int) -> str:
    return f"coco/train2014/COCO_train2014_{image_id:012d}.jpg"


# ---------------------------------------------------------------------------------------------
# Actions: "covers", "hides behind", "avoids".

def action_scene(rng: np.random.Generator, a: Spec, verb: str, b: Spec, image_size: int):
    if verb == "covers":
        return place_overlapping(rng, top=a, bottom=b, image_size=image_size)
    if verb == "hides behind":
        return place_overlapping(rng, top=b, bottom=a, image_size=image_size)
    # Far enough apart for "avoids" whatever the two sizes are.
    large = make_obj(Spec("circle", "red", "large"), 0, 0, image_size)
    return place_scattered(rng, [a, b], image_size, gap=2 * margin(large) + 1)


def action_item(rng: np.random.Generator, factory: ItemFactory, piece: str) -> Item | None:
    """action-replacement: the verb replaced; actant-swap: subject and object exchanged."""
    swap = piece == "actant-swap"
    verb = pick(rng, VERBS[:2] if swap else VERBS)
    first = random_look(rng)
    second = random_look(rng, avoid=(first,), every=True)
    scene = action_scene(rng, first, verb, second, factory.image_size)
    if scene is None:
        return None
    a, b = Spec(first.shape, first.colour), Spec(second.shape, second.colour)
    if swap:
        other_verb = verb
        foil = (f"{noun_phrase(b)} {verb} {noun_phrase(a)}", (Acts(b, verb, a),))
    else:
        other_verb = pick(rng, [v for v in VERBS if v != verb])
        foil = (f"{noun_phrase(a)} {other_verb} {noun_phrase(b)}", (Acts(a, other_verb, b),))
    candidates = pair_of(f"{noun_phrase(a)} {verb} {noun_phrase(b)}", (Acts(a, verb, b),), *foil)

    def image(image_id: int) -> str:
        return f"swig/images_512/{VERB_FILES[verb]}_{image_id}.jpg"

    def fields(image_id: int) -> dict:
        name = f"{VERB_FILES[verb]}_{image_id}.jpg"
        record = {"dataset": "SWiG", "original_split": "test", "dataset_idx": name,
                  "linguistic_phenomena": "actions"}
        if not swap:
            record["foiling_method"] = "change_action"
        record.update({"image_file": name, "caption": candidates[0].text,
                       "classes": words(a) if swap else verb,
                       "classes_foil": words(b) if swap else other_verb})
        if not swap:
            record["nli_scores"] = NLI_SCORES
        return record

    return with_fields(factory.make(scene, candidates, image), fields)


# ---------------------------------------------------------------------------------------------
# Coreference: "<caption>. is it red? yes." vs the same with the other answer.

def question_candidates(only_caption: str, question: str, referent: Spec, colour: str,
                        answer: bool, context: tuple) -> list[Candidate]:
    claim = ColourIs(referent, colour)
    yes = (f"{only_caption}. {question}? yes.", (*context, claim))
    no = (f"{only_caption}. {question}? no.", (*context, Not(claim)))
    return pair_of(*yes, *no) if answer else pair_of(*no, *yes)


def coreference_setting(rng: np.random.Generator, image_size: int, hard: bool):
    """Draw (scene, caption, question, referent object, caption facts), or None.

    standard: "there is a circle in the picture" + "is it"; the scene also has an object of
    another shape. hard: "a circle to the left of a square" + "is the one on the right", so the
    referent is found only through the relation.
    """
    if not hard:
        target = random_look(rng)
        other = random_look(rng, avoid=(target,), differ=("shape",))
        scene = place_scattered(rng, [target, other], image_size)
        if scene is None:
            return None
        return (scene, f"there is {article(target.shape)} in the picture", "is it", scene.objects[0],
                (Exists(Spec(target.shape)),))
    pair = random_pair(rng, image_size)
    if pair is None or pair[1].shape == pair[3].shape:
        return None
    scene, first, relation, second = pair
    a, b = Spec(first.shape), Spec(second.shape)
    referent = pick(rng, (first, second))
    position = {("left", True): "on the left", ("left", False): "on the right",
                ("above", True): "at the top", ("above", False): "at the bottom"}
    question = f"is the one {position[relation, referent is first]}"
    return scene, pair_caption(a, relation, b), question, referent, (Related(a, relation, b),)


def coreference_item(rng: np.random.Generator, factory: ItemFactory, piece: str) -> Item | None:
    """Ask the colour of an object the caption introduced; the answer is yes (half) or no."""
    hard = piece == "coreference-hard"
    setting = coreference_setting(rng, factory.image_size, hard)
    if setting is None:
        return None
    scene, only_caption, question, referent, context = setting
    answer = rng.random() < 0.5
    colour = referent.colour if answer else pick(rng, [c for c in COLOURS if c != referent.colour])
    candidates = question_candidates(only_caption, f"{question} {colour}", Spec(referent.shape),
                                     colour, answer, context)
    # Upstream, coreference-hard uses VisDial val2018 images; coreference-standard (VisDial train)
    # uses COCO train2014 and val2014 images, still under dataset "VisDial_v1.0".
    image = visdial_val2018 if hard else pick(rng, (coco_train2014, coco_val2014))

    def fields(image_id: int) -> dict:
        return {"dataset": "VisDial_v1.0", "original_split": "val" if hard else "train",
                "linguistic_phenomena": "coreference", "image_file": image(image_id).rsplit("/", 1)[1],
                "only_caption": only_caption, "caption": candidates[0].text,
                "classes": "yes" if answer else "no", "classes_foil": "no" if answer else "yes"}

    return with_fields(factory.make(scene, candidates, image), fields)


def visdial_val2018(image_id: int) -> str:
    return f"visdial/VisualDialog_val2018/VisualDialog_val2018_{image_id:012d}.jpg"


def with_fields(item: Item | None, fields) -> Item | None:
    """Attach `fields(image_id)` to the item as its record (all keys but mturk and foil)."""
    return None if item is None else replace(item, fields=fields(item.image_id))


PIECE_BUILDERS = {
    "existence": existence_item,
    "plurals": plurals_item,
    "counting-hard": counting_item,
    "counting-small-quant": counting_item,
    "counting-adversarial": counting_item,
    "relations": relations_item,
    "action-replacement": action_item,
    "actant-swap": action_item,
    "coreference-standard": coreference_item,
    "coreference-hard": coreference_item,
    "foil-it": foil_it_item,
}
