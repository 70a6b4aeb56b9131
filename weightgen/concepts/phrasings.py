"""Phrasing families: several prompts for one recipe, and one family that training never sees.

Each op says what it does in three wordings (``EditOp.phrasings``). A *family* is one way to turn
a recipe into a prompt; with the sketch + red tint recipe:

* ``canonical``  the ops' first wording, parts in recipe order: "a pencil sketch with a red tint"
                 (a concept's ``prompt``);
* ``reworded``   the ops' third wording: "hand-drawn charcoal outlines with a wash of red";
* ``make_it``    "make it a pencil sketch with a red tint";
* ``style``      "a pencil sketch with a red tint style";
* ``turn_into``  "turn the photo into a pencil sketch with a red tint";
* ``give``       "give the photo a pencil sketch with a red tint";
* ``reordered``  recipes of several ops only, the parts the other way round:
                 "a red tint with a pencil sketch".

Those are the *training* families: a concept's ``phrasings``, any of which the weight generator
may be trained on (``diffusion.data.phrasings=all``). The *held-out* family is the ops' second
wording ("a graphite line drawing on white paper with red-tinted colours"): never a training
phrasing. It is every concept's ``heldout_phrasing`` (for evaluation: does the generator read
meaning or wording?), and the paraphrase test concepts are worded in it: their prompt is their
source's held-out phrasing, and their own phrasings are the templates above in that wording.
"""

from __future__ import annotations

from weightgen.concepts.ops import RecipeLike, build_recipe, join_phrases

# Which of the ops' wordings (``EditOp.describe`` variants) each family uses.
CANONICAL_WORDING = 0
REWORDED_WORDING = 2
HELDOUT_WORDING = 1

TEMPLATES: dict[str, str] = {
    "make_it": "make it {}",
    "style": "{} style",
    "turn_into": "turn the photo into {}",
    "give": "give the photo {}",
}


def _families(recipe: RecipeLike, wording: int) -> dict[str, str]:
    """Family name -> prompt, every family built from the ops' ``wording``."""
    ops = build_recipe(recipe)
    phrases = [op.describe(wording) for op in ops]
    base = join_phrases(phrases)
    texts = {"canonical": base}
    if wording == CANONICAL_WORDING:
        texts["reworded"] = join_phrases([op.describe(REWORDED_WORDING) for op in ops])
    texts |= {name: template.format(base) for name, template in TEMPLATES.items()}
    if len(ops) > 1:
        texts["reordered"] = join_phrases(phrases[::-1])
    return texts


def training_families(recipe: RecipeLike) -> dict[str, str]:
    """Every training family's prompt for ``recipe``; ``canonical`` first."""
    return _families(recipe, CANONICAL_WORDING)


def heldout_families(recipe: RecipeLike) -> dict[str, str]:
    """The same forms in the held-out wording (the phrasings of a paraphrase test concept)."""
    return _families(recipe, HELDOUT_WORDING)


def heldout_phrasing(recipe: RecipeLike) -> str:
    """The held-out family's prompt for ``recipe``: never used to train the generator."""
    return heldout_families(recipe)["canonical"]


def distinct(texts: dict[str, str]) -> tuple[str, ...]:
    """The family texts in family order, each once (two families may say the same thing)."""
    return tuple(dict.fromkeys(texts.values()))
