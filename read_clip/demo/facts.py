"""Checkable statements about a scene: what each caption of the demo claims.

Every caption the generator writes comes with the facts it asserts (a conjunction). A gold
caption is kept only when all its facts are clearly true of its scene, and a negative only when
at least one of its facts is clearly false, so no item is left to judgement. The same checker
runs on scenes recovered from pixels in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

from read_clip.demo.world import (
    Obj,
    Scene,
    Spec,
    box_gap,
    margin,
    overlap_pixels,
    relation_truth,
    side_truth,
)

VERBS = ("covers", "hides behind", "avoids")


@dataclass(frozen=True)
class Exists:
    """Some object matches `spec`."""

    spec: Spec


@dataclass(frozen=True)
class Count:
    """Exactly `n` objects match `spec`."""

    spec: Spec
    n: int


@dataclass(frozen=True)
class Several:
    """Two or more objects match `spec`."""

    spec: Spec


@dataclass(frozen=True)
class Related:
    """An object matching `a` is left of / right of / above / below another matching `b`."""

    a: Spec
    relation: str
    b: Spec


@dataclass(frozen=True)
class OnSide:
    """An object matching `spec` lies in the left / right / top / bottom half of the image."""

    spec: Spec
    side: str


@dataclass(frozen=True)
class Acts:
    """An object matching `a` covers / hides behind / avoids another matching `b`.

    covers: they overlap and a is drawn on top; hides behind: they overlap and b is on top;
    avoids: their boxes are apart by at least twice the relation margin.
    """

    a: Spec
    verb: str
    b: Spec


@dataclass(frozen=True)
class ColourIs:
    """The one object matching `spec` has `colour` (unclear when several or none match)."""

    spec: Spec
    colour: str


@dataclass(frozen=True)
class Not:
    """The negation of `fact`."""

    fact: object


def truth(fact, scene: Scene) -> bool | None:
    """Return True when `fact` clearly holds in `scene`, False when it clearly fails, None when unclear."""
    objects = scene.objects
    match fact:
        case Exists(spec):
            return any(spec.matches(o) for o in objects)
        case Count(spec, n):
            return sum(spec.matches(o) for o in objects) == n
        case Several(spec):
            return sum(spec.matches(o) for o in objects) >= 2
        case Related(a, relation, b):
            return pair_truth(scene, a, b, lambda x, y: relation_truth(x, relation, y))
        case OnSide(spec, side):
            return any_truth(side_truth(o, side, scene.side) for o in objects if spec.matches(o))
        case Acts(a, verb, b):
            return pair_truth(scene, a, b, lambda x, y: action_truth(scene, x, verb, y))
        case ColourIs(spec, colour):
            matching = [o for o in objects if spec.matches(o)]
            return matching[0].colour == colour if len(matching) == 1 else None
        case Not(inner):
            value = truth(inner, scene)
            return None if value is None else not value
    raise TypeError(f"not a fact: {fact!r}")


def any_truth(values) -> bool | None:
    """Combine truths existentially: True if any is True, False if all are False (or there are none)."""
    values = list(values)
    if any(v is True for v in values):
        return True
    if all(v is False for v in values):
        return False
    return None


def pair_truth(scene: Scene, a: Spec, b: Spec, test) -> bool | None:
    """Evaluate `test(x, y)` existentially over distinct objects x matching a and y matching b."""
    return any_truth(test(x, y) for x, y in permutations(scene.objects, 2)
                     if a.matches(x) and b.matches(y))


def action_truth(scene: Scene, a: Obj, verb: str, b: Obj) -> bool | None:
    """Decide whether `a` covers / hides behind / avoids `b` in `scene` (drawing order decides which is on top)."""
    if verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r}; expected one of {VERBS}")
    gap = box_gap(a, b)
    overlap = overlap_pixels(a, b, scene.side) if gap < 0 else 0
    # At least 4 shared pixels, so a JPEG edge cannot fake or hide the contact.
    overlapping = overlap >= 4
    if verb == "avoids":
        if gap >= 2 * margin(a, b):
            return True
        return False if overlapping else None
    if gap >= 1:
        return False
    if not overlapping:
        return None
    a_on_top = scene.objects.index(a) > scene.objects.index(b)
    return a_on_top if verb == "covers" else not a_on_top


def all_true(facts, scene: Scene) -> bool:
    """Check that every fact clearly holds, so the caption is a safe positive."""
    return all(truth(f, scene) is True for f in facts)


def clearly_false(facts, scene: Scene) -> bool:
    """Check that some fact clearly fails, so the caption is a safe negative."""
    return any(truth(f, scene) is False for f in facts)
