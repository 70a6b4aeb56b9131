"""Does the text matter? Zero-shot quality of one generator under four prompts per concept.

* ``correct``     the concept's own prompt.
* ``paraphrase``  the concept's held-out phrasing (``Concept.heldout_phrasing``, a wording no
                  generator is trained on, whatever ``diffusion.data.phrasings``). Concepts
                  without one (paraphrase test concepts, which are worded in it already, and
                  concept-file entries that give none) have none.
* ``shuffled``    the prompt of the least similar training concept (the bench's control).
* ``empty``       "" (what classifier-free guidance trains as the unconditional prompt).

A generator that uses its prompt scores correct ≈ paraphrase > shuffled, empty.
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
                           concepts: Sequence[Concept]) -> dict:
    """Median zero-shot PSNR per (split, variant) over ``concepts`` (train and held-out)."""
    rows = []
    for concept in concepts:
        row = {"concept": concept.id, "split": concept.split, "prompts": {}}
        for variant in VARIANTS:
            prompt = row["prompts"][variant] = variant_prompt(variant, concept, inits)
            if prompt is None:
                row[variant] = None
                continue
            row[variant] = evaluator.quality(concept, inits.generated(prompt).state).psnr
        rows.append(row)
    summary = {}
    for split in ("train", "test"):
        for variant in VARIANTS:
            values = [r[variant] for r in rows if r["split"] == split and r[variant] is not None]
            summary[f"{split}/{variant}"] = statistics.median(values) if values else None
    return {"summary": summary, "concepts": rows}
