"""Does the text matter? Zero-shot quality of one generator under four prompts per concept.

* ``correct``     the concept's own prompt.
* ``paraphrase``  the concept's held-out phrasing (``Concept.heldout_phrasing``, a wording no
                  generator is trained on, whatever ``diffusion.data.phrasings``). Concepts
                  without one (paraphrase test concepts, which are worded in it already, and
                  concept-file entries that give none) have none.
* ``shuffled``    the prompt of the least similar training concept (the bench's control).
* ``empty``       "" (what classifier-free guidance trains as the unconditional prompt).

A generator that uses its prompt scores correct ≈ paraphrase > shuffled, empty. The *paraphrase
gap* (:func:`paraphrase_gap`) is correct - paraphrase per train concept: how much a generator loses
when a concept it learned is worded in a way it never saw (issue 13 asks for a median within 1 dB).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from weightgen.concepts.spec import Concept
from weightgen.finetune.inits import InitSources
from weightgen.gan.adapter_evaluator import AdapterEvaluator

VARIANTS = ("correct", "paraphrase", "shuffled", "empty")


def variant_prompt(variant: str, concept: Concept, inits) -> str | None:
    if variant == "correct":
        return concept.prompt
    if variant == "paraphrase":
        return concept.heldout_phrasing
    if variant == "shuffled":
        return inits.shuffled_prompt(concept)
    if variant == "empty":
        return ""
    raise ValueError(f"unknown prompt variant {variant!r}; use one of {VARIANTS}")


def prompt_variant_quality(evaluator: AdapterEvaluator, inits: InitSources,
                           concepts: Sequence[Concept], examples: bool = False) -> dict:
    """Median zero-shot PSNR per (split, variant) over ``concepts`` (train and held-out);
    ``examples``: each prompt with k of the concept's training pairs (``generated_examples``)."""
    rows = []
    for concept in concepts:
        row = {"concept": concept.id, "split": concept.split, "prompts": {}}
        for variant in VARIANTS:
            prompt = row["prompts"][variant] = variant_prompt(variant, concept, inits)
            if prompt is None:
                row[variant] = None
                continue
            init = (inits.generated_examples(concept, prompt) if examples
                    else inits.generated(prompt))
            row[variant] = evaluator.quality(concept, init.state).psnr
        rows.append(row)
    summary = {}
    for split in ("train", "test"):
        for variant in VARIANTS:
            values = [r[variant] for r in rows if r["split"] == split and r[variant] is not None]
            summary[f"{split}/{variant}"] = statistics.median(values) if values else None
    return {"summary": summary, "concepts": rows}


def paraphrase_sources(train: Sequence[Concept], test: Sequence[Concept]) -> list[Concept]:
    """The train concepts that the paraphrase test concepts reword (same recipe), in train order:
    the concepts the paraphrase gap is measured on, so it sits beside those held-out rows."""
    reworded = {c.recipe for c in test if c.holdout == "paraphrase" and c.recipe is not None}
    return [c for c in train if c.recipe in reworded and c.heldout_phrasing]


def paraphrase_gap(evaluator: AdapterEvaluator, inits: InitSources,
                   concepts: Sequence[Concept], examples: bool = False) -> dict:
    """Generated zero-shot PSNR of train ``concepts`` under their training prompt, their held-out
    phrasing and a wrong prompt (with ``examples``: each beside k of the concept's pairs):
    medians, the median per-concept gap (prompt - held-out phrasing) and the rows."""
    rows = prompt_variant_quality(evaluator, inits, concepts, examples)["concepts"]
    rows = [r for r in rows if r["paraphrase"] is not None]
    if not rows:
        raise ValueError("the paraphrase gap needs train concepts with a held-out phrasing")
    return {
        "concepts": len(rows),
        "training_phrasing": statistics.median(r["correct"] for r in rows),
        "heldout_phrasing": statistics.median(r["paraphrase"] for r in rows),
        "wrong_prompt": statistics.median(r["shuffled"] for r in rows),
        "gap_db": statistics.median(r["correct"] - r["paraphrase"] for r in rows),
        "rows": rows,
    }
