"""The built-in concept set (nearly 300 procedural concepts), its fixed split, and subset selection.

Concepts are built from named *parts*, each one op with fixed parameters:
- structure parts (blur, sharpen, emboss, sketch, cartoon, pixelate, posterise, vignette),
- colour parts (14 tints, sepia, three gradings, three colour maps, three seasons, invert,
  grayscale, solarize, two duotones),
- variant parts (other parameter settings and tone ops), used only on their own.
Every part is a single-op concept, and every structure x colour pairing is a two-op concept
"structure+colour" (structure first), except pairings that would repeat another concept
(grayscale after the already grey sketch and emboss).

The split rule (fixed, by name, so it never changes with the code around it). Every held-out
concept has a kind (`Concept.kind`): "new" (a recipe no train concept has) or "paraphrase".
- test, kind "new": the pairings in `HELDOUT_COMBINATIONS`. Each structure part is held out
  with two colour parts; every part keeps its single-op concept and many other pairings in
  train, so a test combination is a new pairing of seen parts and its recipe is in no train
  concept.
- test, kind "paraphrase": for each id in `PARAPHRASED`, a copy of that train concept (same
  recipe) worded in the held-out phrasing family (the ops' second wording: "an old brown
  photograph look" instead of "a sepia tone"): the generator must map new words to a seen edit.
- val, kind "new": the pairings in `VALIDATION_COMBINATIONS`, one per structure part, with
  colour parts no test combination uses: new pairings like the test ones, disjoint from them.
  Choices made by looking at results (fine-tune recipes, generator configurations,
  checkpoints) are made on these (`bench.split=val`); the test split is reported, never tuned on.
Everything else is train.

Phrasings (`weightgen.concepts.phrasings`): every concept's `prompt` is its canonical phrasing
(the ops' first wording); its `phrasings` add the other training families (the ops' third
wording, "make it ...", "... style", "turn the photo into ...", "give the photo ...", and for
combinations the parts in the other order); its `heldout_phrasing` is the held-out family, which
no concept's `phrasings` contain, so generator training never sees it. A paraphrase concept's
prompt is its source's held-out phrasing, and its phrasings are the templates in that wording.
Phrasings never change ids, splits or prompts: weight stores are keyed by id.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from weightgen.concepts.ops import NAMED_COLOURS
from weightgen.concepts.phrasings import (
    distinct,
    heldout_families,
    heldout_phrasing,
    training_families,
)
from weightgen.concepts.spec import Concept
from weightgen.errors import ConfigError

STRUCTURE_PARTS: dict[str, dict[str, Any]] = {
    "blur": {"op": "blur", "sigma": 1.5},
    "sharpen": {"op": "sharpen", "amount": 2.0},
    "emboss": {"op": "emboss"},
    "sketch": {"op": "sketch"},
    "cartoon": {"op": "cartoon"},
    "pixelate": {"op": "pixelate", "block": 4},
    "posterise": {"op": "posterise", "levels": 4},
    "vignette": {"op": "vignette", "strength": 0.7},
}

COLOUR_PARTS: dict[str, dict[str, Any]] = {
    **{f"tint_{name}": {"op": "tint", "colour": name} for name in NAMED_COLOURS},
    "sepia": {"op": "sepia"},
    "grade_warm": {"op": "grade", "style": "warm"},
    "grade_cool": {"op": "grade", "style": "cool"},
    "grade_teal_orange": {"op": "grade", "style": "teal_orange"},
    "thermal": {"op": "colormap", "palette": "thermal"},
    "night_vision": {"op": "colormap", "palette": "night_vision"},
    "xray": {"op": "colormap", "palette": "xray"},
    "winter": {"op": "season", "look": "winter"},
    "sunset": {"op": "season", "look": "sunset"},
    "autumn": {"op": "season", "look": "autumn"},
    "invert": {"op": "invert"},
    "grayscale": {"op": "grayscale"},
    "solarize": {"op": "solarize"},
    "duotone_navy_gold": {"op": "duotone", "dark": "navy", "light": "gold"},
    "duotone_purple_orange": {"op": "duotone", "dark": "purple", "light": "orange"},
}

VARIANT_PARTS: dict[str, dict[str, Any]] = {
    "blur_slight": {"op": "blur", "sigma": 0.75},
    "blur_heavy": {"op": "blur", "sigma": 3.0},
    "sharpen_slight": {"op": "sharpen", "amount": 0.8},
    "emboss_deep": {"op": "emboss", "strength": 2.0},
    "sketch_bold": {"op": "sketch", "darkness": 12.0},
    "cartoon_flat": {"op": "cartoon", "levels": 3},
    "pixelate_fine": {"op": "pixelate", "block": 2},
    "pixelate_coarse": {"op": "pixelate", "block": 8},
    "posterise_2": {"op": "posterise", "levels": 2},
    "posterise_3": {"op": "posterise", "levels": 3},
    "posterise_6": {"op": "posterise", "levels": 6},
    "vignette_soft": {"op": "vignette", "strength": 0.4},
    "sepia_light": {"op": "sepia", "strength": 0.5},
    "grade_warm_mild": {"op": "grade", "style": "warm", "strength": 0.5},
    "solarize_strong": {"op": "solarize", "threshold": 0.3},
    "contrast_high": {"op": "contrast", "factor": 1.6},
    "contrast_low": {"op": "contrast", "factor": 0.6},
    "brighten": {"op": "brightness", "delta": 0.2},
    "darken": {"op": "brightness", "delta": -0.2},
    "saturate": {"op": "saturation", "factor": 1.8},
    "mute": {"op": "saturation", "factor": 0.4},
    "duotone_teal_pink": {"op": "duotone", "dark": "teal", "light": "pink"},
}

# Pairings that would equal another concept's edit: grayscale of an already grey image.
_REDUNDANT_PAIRS = {("sketch", "grayscale"), ("emboss", "grayscale")}

HELDOUT_COMBINATIONS: tuple[tuple[str, str], ...] = (
    ("blur", "sepia"),
    ("blur", "night_vision"),
    ("sharpen", "autumn"),
    ("sharpen", "tint_blue"),
    ("emboss", "tint_gold"),
    ("emboss", "grade_teal_orange"),
    ("sketch", "tint_red"),
    ("sketch", "thermal"),
    ("cartoon", "tint_teal"),
    ("cartoon", "sunset"),
    ("pixelate", "tint_purple"),
    ("pixelate", "winter"),
    ("posterise", "xray"),
    ("posterise", "tint_pink"),
    ("vignette", "grade_warm"),
    ("vignette", "duotone_navy_gold"),
)

VALIDATION_COMBINATIONS: tuple[tuple[str, str], ...] = (
    ("blur", "tint_green"),
    ("sharpen", "grade_cool"),
    ("emboss", "tint_orange"),
    ("sketch", "tint_magenta"),
    ("cartoon", "solarize"),
    ("pixelate", "tint_cyan"),
    ("posterise", "duotone_purple_orange"),
    ("vignette", "tint_brown"),
)

PARAPHRASED: tuple[str, ...] = (
    "sepia",
    "grayscale",
    "cartoon",
    "pixelate",
    "thermal",
    "winter",
    "blur+tint_blue",
    "sketch+sepia",
)


def _instruction(prompt: str) -> str:
    return f"give the photo {prompt}"


def _concept(concept_id: str, parts: Sequence[str], steps: list[dict], **fields) -> Concept:
    phrasings = distinct(training_families(steps))
    return Concept(
        id=concept_id,
        prompt=phrasings[0],
        recipe=steps,
        instruction=_instruction(phrasings[0]),
        parts=tuple(parts),
        phrasings=phrasings,
        heldout_phrasing=heldout_phrasing(steps),
        **fields,
    )


def builtin_concepts() -> list[Concept]:
    """All built-in concepts in a fixed order: singles, then pairings, then paraphrases."""
    return list(_builtin_concepts())


@functools.cache
def _builtin_concepts() -> tuple[Concept, ...]:
    """Built once per process (~50 ms of phrasing templates; every command's config check reads
    it); the concepts are frozen, so callers share them."""
    held_out = dict.fromkeys(HELDOUT_COMBINATIONS, "test") | dict.fromkeys(
        VALIDATION_COMBINATIONS, "val")
    singles = {**STRUCTURE_PARTS, **COLOUR_PARTS, **VARIANT_PARTS}
    concepts = [_concept(name, [name], [step]) for name, step in singles.items()]
    for structure, structure_step in STRUCTURE_PARTS.items():
        for colour, colour_step in COLOUR_PARTS.items():
            if (structure, colour) in _REDUNDANT_PAIRS:
                continue
            split = held_out.get((structure, colour), "train")
            concepts.append(
                _concept(
                    f"{structure}+{colour}",
                    [structure, colour],
                    [structure_step, colour_step],
                    split=split,
                    holdout=None if split == "train" else "new",
                )
            )
    by_id = {concept.id: concept for concept in concepts}
    for source_id in PARAPHRASED:
        source = by_id[source_id]
        phrasings = distinct(heldout_families(source.recipe))
        concepts.append(
            Concept(
                id=f"{source_id}.paraphrase",
                prompt=phrasings[0],
                recipe=source.recipe,
                instruction=_instruction(phrasings[0]),
                split="test",
                parts=source.parts,
                holdout="paraphrase",
                phrasings=phrasings,
            )
        )
    return tuple(concepts)


def split_concepts(concepts: Sequence[Concept]) -> tuple[list[Concept], list[Concept], list[Concept]]:
    """(train, val, test) by each concept's `split`, order kept."""
    return tuple([c for c in concepts if c.split == split] for split in ("train", "val", "test"))


def _ops(concept: Concept) -> set[str]:
    return {step.op for step in concept.recipe or ()}


def _pick_held_out(pool: list[Concept], n: int | None, rng: np.random.Generator) -> list[Concept]:
    """`n` of a held-out split (None: all; 0 draws nothing): a seeded shuffle within each kind,
    then the kinds in turn (both get picked)."""
    if n is None:
        return pool
    if n == 0:
        return []
    groups: dict[str | None, list[Concept]] = {}
    for concept in pool:
        groups.setdefault(concept.kind, []).append(concept)
    queues = [[group[i] for i in rng.permutation(len(group))] for group in groups.values()]
    picks: list[Concept] = []
    while len(picks) < n:
        for queue in queues:
            if queue and len(picks) < n:
                picks.append(queue.pop(0))
    return picks


def _pick_train(
    train: list[Concept], n_train: int, held_out: list[Concept], rng: np.random.Generator
) -> list[Concept]:
    """Greedy: first cover what the picked held-out concepts need (a paraphrase's own recipe, a
    new combination's parts), then new ops, then new parts; ties go to a seeded order."""
    needed_recipes = {t.recipe for t in held_out if t.kind == "paraphrase"}
    needed_parts = {p for t in held_out if t.kind != "paraphrase" for p in t.parts}
    candidates = [train[i] for i in rng.permutation(len(train))]
    covered_ops: set[str] = set()
    covered_parts: set[str] = set()
    picks: list[Concept] = []

    def score(concept: Concept) -> tuple[int, int, int, int]:
        parts = set(concept.parts)
        return (
            int(concept.recipe in needed_recipes),
            len((parts & needed_parts) - covered_parts),
            len(_ops(concept) - covered_ops),
            len(parts - covered_parts),
        )

    for _ in range(n_train):
        best = max(candidates, key=score)  # max keeps the first of equals: the seeded order
        candidates.remove(best)
        picks.append(best)
        needed_recipes.discard(best.recipe)
        covered_ops |= _ops(best)
        covered_parts |= set(best.parts)
    return picks


def select_concepts(
    concepts: Sequence[Concept], n_train: int | None, n_test: int | None, seed: int,
    n_val: int | None = None,
) -> list[Concept]:
    """A deterministic subset: `n_train` train, `n_val` val and `n_test` test concepts (None =
    all).

    Held-out picks alternate between kinds (new, paraphrase) in a seeded order, test first, then
    val. Train picks are chosen greedily so that the picked held-out concepts are answerable (a
    paraphrase's source edit and each part of a new combination are in train, when `n_train`
    allows), then so that they spread over as many ops and parts as possible: a 12-concept
    quickstart still covers most op families.
    Returns train, then val, then test picks, each in the order of `concepts`.
    """
    trains, vals, tests = _picks(concepts, n_train, n_test, seed, n_val)
    order = {concept.id: index for index, concept in enumerate(concepts)}
    return [c for picks in (trains, vals, tests) for c in sorted(picks, key=lambda c: order[c.id])]


def train_pick_order(concepts: Sequence[Concept], n_test: int | None, seed: int,
                     n_val: int | None = None) -> list[str]:
    """Every train concept's id in the order :func:`select_concepts` picks them: the first k are
    the train concepts of ``n_train=k`` (the held-out concepts' parts first, then spread over
    ops and parts), so a prefix is a fair small training set (the scaling study's)."""
    n_train = len(split_concepts(concepts)[0])
    return [c.id for c in _picks(concepts, n_train, n_test, seed, n_val)[0]]


def _picks(concepts: Sequence[Concept], n_train: int | None, n_test: int | None, seed: int,
           n_val: int | None) -> tuple[list[Concept], list[Concept], list[Concept]]:
    """(train, val, test) picks, each in pick order."""
    train, val, test = split_concepts(concepts)
    for name, n, pool in (("n_train", n_train, train), ("n_val", n_val, val),
                          ("n_test", n_test, test)):
        if n is not None and not 0 <= n <= len(pool):
            split = name.removeprefix("n_")
            raise ConfigError(f"concepts.{name}={n} is out of range: there are {len(pool)} {split} concepts")
    rng = np.random.default_rng(seed)
    tests = _pick_held_out(test, n_test, rng)
    vals = _pick_held_out(val, n_val, rng)
    trains = train if n_train is None else _pick_train(train, n_train, tests + vals, rng)
    return trains, vals, tests
