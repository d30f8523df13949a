"""Training examples and benchmark items of the shapes world: SugarCrepe, SugarCrepe++, WhatsUp.

Every item keeps its scene and, for each candidate caption, the facts the caption states, so the
tests can check each item against its pixels. `ItemFactory.make` accepts an item only when every
true candidate clearly holds and every false one clearly fails on the scene (or on its crop).
VALSE and CREPE items are built in `read_clip.demo.valse` and `read_clip.demo.crepe`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from read_clip.demo.facts import Exists, OnSide, Related, all_true, clearly_false
from read_clip.demo.grammar import (
    PAIR_FORMS,
    SIDE_PHRASES,
    noun_phrase,
    pair_caption,
    stated,
    training_captions,
    words,
)
from read_clip.demo.world import (
    COLOURS,
    INVERSE,
    OPPOSITE_SIDE,
    RELATIONS,
    SHAPES,
    SIDES,
    Obj,
    Scene,
    Spec,
    add_objects,
    pick,
    place_on_side,
    place_pair,
    random_look,
    stream,
)

# Benchmark images are numbered from here, above every training, val and test image id.
BENCHMARK_ID_START = 1_000_000
AXES = ("horizontal", "vertical")
OTHER_SIZE = {"small": "large", "large": "small"}
# Draws allowed per item before giving up; a rejected draw is rare, so hitting this is a bug.
MAX_TRIES = 1000


@dataclass(frozen=True)
class Candidate:
    """One caption offered for an image, the facts it states and whether it is true of the image."""

    text: str
    facts: tuple
    true: bool


@dataclass(frozen=True)
class Item:
    """One benchmark item: an image, its candidate captions (the gold one first), extra fields.

    `image` is the path relative to the world folder. `crop` = (x, y, width, height) in pixels
    when only that region of the image is scored (CREPE). `fields` contains the benchmark's
    other record keys.
    """

    image: str
    image_id: int
    scene: Scene
    candidates: tuple[Candidate, ...]
    crop: tuple[int, int, int, int] | None = None
    fields: Mapping = field(default_factory=dict)

    @property
    def view(self) -> Scene:
        """The part of the scene the captions are about: the objects inside the crop, if any."""
        if self.crop is None:
            return self.scene
        x, y, width, height = self.crop
        return self.scene.within((x, y, x + width - 1, y + height - 1))


@dataclass(frozen=True)
class TrainingExample:
    """One Karpathy-split image with its five true captions and the fact each states."""

    image_id: int
    split: str
    scene: Scene
    captions: tuple[str, ...]
    facts: tuple


class ItemFactory:
    """Numbers benchmark images and keeps only items whose captions are unambiguous.

    `reserved` contains the keys of the training scenes. A benchmark scene equal to one is drawn
    again, so no benchmark image repeats a training image.
    """

    def __init__(self, image_size: int, reserved: frozenset, first_id: int = BENCHMARK_ID_START):
        self.image_size = image_size
        self.reserved = reserved
        self.next_id = first_id

    def make(self, scene: Scene, candidates: list[Candidate], image: Callable[[int], str],
             crop: tuple[int, int, int, int] | None = None, **fields) -> Item | None:
        """Return the item with an image id and the path `image(id)`, or None if it is not clear-cut."""
        item = Item("", 0, scene, tuple(candidates), crop, fields)
        if scene.key() in self.reserved or not self.acceptable(item):
            return None
        image_id = self.next_id
        self.next_id += 1
        return replace(item, image=image(image_id), image_id=image_id)

    @staticmethod
    def acceptable(item: Item) -> bool:
        texts = [c.text for c in item.candidates]
        if len(set(texts)) != len(texts) or not all(texts) or not item.candidates[0].true:
            return False
        view = item.view
        return all(all_true(c.facts, view) if c.true else clearly_false(c.facts, view)
                   for c in item.candidates)


def build_items(seed: int, name: str, count: int, factory: ItemFactory,
                build: Callable[..., Item | None], *args) -> list[Item]:
    """`count` items of one subset, each `build(rng, factory, *args)`, from the random stream `name`."""
    rng = stream(seed, name)
    items = []
    for _ in range(count):
        for _ in range(MAX_TRIES):
            item = build(rng, factory, *args)
            if item is not None:
                items.append(item)
                break
        else:
            raise RuntimeError(f"could not build an item of {name} in {MAX_TRIES} draws; "
                               "the image size may be too small for its scenes")
    return items


# ---------------------------------------------------------------------------------------------
# Training images (Karpathy split).

def random_pair(rng: np.random.Generator, image_size: int, every: bool = False,
                background: str = "plain") -> tuple[Scene, Obj, str, Obj] | None:
    """Draw a two-object scene and its relation: (scene, first, "left" or "above", second)."""
    first = random_look(rng)
    second = random_look(rng, avoid=(first,), every=every)
    axis = pick(rng, AXES)
    placed = place_pair(rng, first, second, image_size, axis, background)
    if placed is None:
        return None
    scene, a, b = placed
    return scene, a, ("left" if axis == "horizontal" else "above"), b


def training_examples(seed: int, split: str, count: int, image_size: int,
                      first_id: int) -> list[TrainingExample]:
    """`count` two-object images of one split, numbered from `first_id`, five captions each."""
    rng = stream(seed, f"karpathy/{split}")
    examples = []
    while len(examples) < count:
        pair = random_pair(rng, image_size)
        if pair is None:
            continue
        scene, a, relation, b = pair
        captions = training_captions(rng, a, relation, b)
        examples.append(TrainingExample(
            image_id=first_id + len(examples), split=split, scene=scene,
            captions=tuple(text for text, _ in captions), facts=tuple(f for _, f in captions)))
    return examples


# ---------------------------------------------------------------------------------------------
# Captions about a pair of objects, and the edits that turn them into negatives.

@dataclass(frozen=True)
class PairClaim:
    """"a X <relation> a Y" in one of the caption forms of `pair_caption`."""

    a: Spec
    relation: str
    b: Spec
    form: str = "plain"

    def candidate(self, true: bool) -> Candidate:
        text = pair_caption(self.a, self.relation, self.b, self.form)
        return Candidate(text, (Related(self.a, self.relation, self.b),), true)

    def reworded(self, form: str) -> PairClaim:
        """Return the same fact stated the other way round ("a Y to the right of a X")."""
        return PairClaim(self.b, INVERSE[self.relation], self.a, form)


@dataclass(frozen=True)
class AndClaim:
    """"a X and a Y": both objects are present."""

    a: Spec
    b: Spec

    def candidate(self, true: bool) -> Candidate:
        return Candidate(f"{noun_phrase(self.a)} and {noun_phrase(self.b)}",
                         (Exists(self.a), Exists(self.b)), true)


def gold_pair(rng: np.random.Generator, a: Obj, relation: str, b: Obj,
              forms: tuple[str, ...] = ("plain", "is")) -> PairClaim:
    """Make a true caption of the pair with every attribute stated, either way round."""
    claim = PairClaim(stated(a), relation, stated(b), pick(rng, forms))
    return claim if rng.random() < 0.5 else claim.reworded(claim.form)


def replace_attribute(rng: np.random.Generator, claim: PairClaim) -> PairClaim:
    """Change the colour (3 in 4 times) or the size of one mentioned object."""
    target = pick(rng, ("a", "b"))
    spec = getattr(claim, target)
    if rng.random() < 0.75:
        spec = replace(spec, colour=pick(rng, [c for c in COLOURS if c != spec.colour]))
    else:
        spec = replace(spec, size=OTHER_SIZE[spec.size])
    return replace(claim, **{target: spec})


def replace_shape(rng: np.random.Generator, claim: PairClaim) -> PairClaim:
    target = pick(rng, ("a", "b"))
    spec = getattr(claim, target)
    return replace(claim, **{target: replace(spec, shape=pick(rng, [s for s in SHAPES if s != spec.shape]))})


def replace_relation(rng: np.random.Generator, claim: PairClaim) -> PairClaim:
    return replace(claim, relation=pick(rng, [r for r in RELATIONS if r != claim.relation]))


def swap_attribute(rng: np.random.Generator, claim: PairClaim | AndClaim) -> PairClaim | AndClaim:
    """Exchange the colours of the two objects, or their sizes (1 in 3 times) when they differ."""
    attribute = "size" if claim.a.size != claim.b.size and rng.random() < 1 / 3 else "colour"
    a = replace(claim.a, **{attribute: getattr(claim.b, attribute)})
    b = replace(claim.b, **{attribute: getattr(claim.a, attribute)})
    return replace(claim, a=a, b=b)


def swap_shapes(claim: PairClaim) -> PairClaim:
    return replace(claim, a=replace(claim.a, shape=claim.b.shape), b=replace(claim.b, shape=claim.a.shape))


def coco_val2017(image_id: int) -> str:
    return f"coco/val2017/{image_id:012d}.jpg"


def vg_image(image_id: int) -> str:
    """WhatsUp's own Visual Genome images (vg_images.tar.gz)."""
    return f"whatsup/vg_images/{image_id}.jpg"


# ---------------------------------------------------------------------------------------------
# SugarCrepe: image vs {caption, negative_caption}; SugarCrepe++ adds a reworded caption2.

SUGARCREPE_SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
SUGARCREPE_PP_SUBSETS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def sugarcrepe_item(rng: np.random.Generator, factory: ItemFactory, subset: str) -> Item | None:
    pair = random_pair(rng, factory.image_size, every=subset.startswith("swap"))
    if pair is None:
        return None
    scene, a, relation, b = pair
    gold = gold_pair(rng, a, relation, b)
    if subset == "swap_att" and rng.random() < 0.5:
        gold = AndClaim(gold.a, gold.b)
    positive, negative = edit_caption(rng, subset, gold, scene)
    return factory.make(scene, [positive, negative], coco_val2017)


def sugarcrepe_pp_item(rng: np.random.Generator, factory: ItemFactory, subset: str) -> Item | None:
    """Build caption (P1), caption2 (P2: P1 stated the other way round, in another form) and negative (N)."""
    pair = random_pair(rng, factory.image_size, every=subset.startswith("swap"))
    if pair is None:
        return None
    scene, a, relation, b = pair
    gold = gold_pair(rng, a, relation, b)
    paraphrase = gold.reworded(pick(rng, [f for f in PAIR_FORMS if f != gold.form]))
    positive, negative = edit_caption(rng, subset, gold, scene)
    return factory.make(scene, [positive, paraphrase.candidate(True), negative], coco_val2017)


def edit_caption(rng: np.random.Generator, subset: str, gold: PairClaim | AndClaim,
                 scene: Scene) -> tuple[Candidate, Candidate]:
    """(positive, negative) captions of one SugarCrepe subset, made from the true claim `gold`."""
    if subset == "replace_att":
        negative = replace_attribute(rng, gold)
    elif subset == "replace_obj":
        negative = replace_shape(rng, gold)
    elif subset == "replace_rel":
        negative = replace_relation(rng, gold)
    elif subset == "swap_att":
        negative = swap_attribute(rng, gold)
    elif subset == "swap_obj":
        negative = swap_shapes(gold)
    elif subset == "add_att":
        return add_attribute(rng, gold)
    elif subset == "add_obj":
        absent = random_look(rng, avoid=tuple(o.look for o in scene.objects))
        positive = gold.candidate(True)
        return positive, Candidate(f"{positive.text} and {noun_phrase(absent)}",
                                   (*positive.facts, Exists(absent)), False)
    else:
        raise ValueError(f"unknown SugarCrepe subset {subset!r}; expected one of {SUGARCREPE_SUBSETS}")
    return gold.candidate(True), negative.candidate(False)


def add_attribute(rng: np.random.Generator, gold: PairClaim) -> tuple[Candidate, Candidate]:
    """Drop one attribute of one object from the gold caption; the negative adds a wrong value back."""
    target = pick(rng, ("a", "b"))
    spec = getattr(gold, target)
    if rng.random() < 0.75:
        left_out = replace(spec, colour=None)
        added = replace(spec, colour=pick(rng, [c for c in COLOURS if c != spec.colour]))
    else:
        left_out = replace(spec, size=None)
        added = replace(spec, size=OTHER_SIZE[spec.size])
    positive = replace(gold, **{target: left_out})
    return positive.candidate(True), replace(gold, **{target: added}).candidate(False)


# ---------------------------------------------------------------------------------------------
# WhatsUp: controlled images (4 relation options) and QA pairs (2 options).

WHATSUP_CONTROLLED = {
    # file -> (image folder, background, caption form)
    "controlled_images_dataset.json": ("controlled_images", "plain", "plain"),
    "controlled_clevr_dataset.json": ("controlled_clevr", "grey", "is"),
}
WHATSUP_QA = {
    # file -> (image path of an id, one object or two, distractor count range)
    "coco_qa_one_obj.json": (coco_val2017, 1, (0, 1)),
    "coco_qa_two_obj.json": (coco_val2017, 2, (0, 0)),
    "vg_qa_one_obj.json": (vg_image, 1, (1, 2)),
    "vg_qa_two_obj.json": (vg_image, 2, (1, 1)),
}


def controlled_item(rng: np.random.Generator, factory: ItemFactory, file_name: str) -> Item | None:
    """Build the gold relation first, then the three other relations of the same pair."""
    folder, background, form = WHATSUP_CONTROLLED[file_name]
    pair = random_pair(rng, factory.image_size, background=background)
    if pair is None:
        return None
    scene, a, relation, b = pair
    gold = gold_pair(rng, a, relation, b, forms=(form,))
    wrong = [replace(gold, relation=r).candidate(False) for r in RELATIONS if r != gold.relation]
    # Named after what it shows, like the upstream files ("mug_left_of_plate.jpeg").
    stem = f"{words(gold.a)}_{gold.relation}_{words(gold.b)}".replace(" ", "-")

    def image(image_id: int) -> str:
        return f"whatsup/{folder}/{stem}_{image_id}.jpeg"

    return factory.make(scene, [gold.candidate(True), *wrong], image)


def qa_item(rng: np.random.Generator, factory: ItemFactory, file_name: str) -> Item | None:
    """Ask where one object is ("a red circle on the left"), or how two objects are placed."""
    image, objects, (fewest, most) = WHATSUP_QA[file_name]
    if objects == 1:
        look = random_look(rng)
        where = pick(rng, SIDES)
        scene = place_on_side(rng, look, where, factory.image_size)
        named = [look]
        mention = Spec(look.shape, look.colour)
        gold = Candidate(f"{noun_phrase(mention)} {SIDE_PHRASES[where]}", (OnSide(mention, where),), True)
        opposite = OPPOSITE_SIDE[where]
        wrong = Candidate(f"{noun_phrase(mention)} {SIDE_PHRASES[opposite]}", (OnSide(mention, opposite),), False)
    else:
        pair = random_pair(rng, factory.image_size)
        if pair is None:
            return None
        scene, a, relation, b = pair
        named = [a.look, b.look]
        claim = gold_pair(rng, a, relation, b, forms=("plain",))
        claim = replace(claim, a=replace(claim.a, size=None), b=replace(claim.b, size=None))
        gold = claim.candidate(True)
        wrong = replace(claim, relation=INVERSE[claim.relation]).candidate(False)
    if scene is None:
        return None
    extra = [random_look(rng, avoid=tuple(named)) for _ in range(int(rng.integers(fewest, most + 1)))]
    scene = add_objects(rng, scene, extra, factory.image_size)
    if scene is None:
        return None
    return factory.make(scene, [gold, wrong], image)
