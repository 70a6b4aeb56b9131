"""Zero-shot quality of generated adapters: no fine-tuning, against every cheap initialisation.

For train concepts (did the generator fit its data?) and held-out concepts (does it
generalise?) separately: GAN validation PSNR/SSIM with the base alone (standard init), the mean
training adapter, the nearest training concept's adapter, the concept's own trained adapter, and
the generated one, plus the seconds a generation took. For a generator trained with example
pairs, also its adapter for the prompt and k of the concept's training pairs
(``generated_examples``), with its seconds (encoding included) and its own win counts.
Beside them, the paraphrase gap: the generated (text-only) adapter of the train concepts that
the paraphrase test concepts reword, under their training prompt, their held-out phrasing and a
wrong prompt (``summary["paraphrase_gap"]``; with example pairs, each prompt beside the same k
pairs too: ``summary["paraphrase_gap_examples"]``).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from weightgen.stages.artifacts import scoring_tools
from weightgen.stages.workspace import Workspace
from weightgen.study.prompt_variants import paraphrase_gap, paraphrase_sources
from weightgen.study.zero_shot_table import (
    EXAMPLES_KIND,
    KINDS,
    generated_wins,
    zero_shot_markdown,
)
from weightgen.utils.io import atomic_write_json, atomic_write_text


def zero_shot_report(ws: Workspace, n_train: int = 8) -> dict:
    """Score every init kind on ``n_train`` train concepts and all held-out ones; write a table."""
    evaluator, inits = scoring_tools(ws)
    examples_k = inits.generator.examples_k
    generated = ("generated",) + ((EXAMPLES_KIND,) if examples_k else ())
    kinds = KINDS + generated[1:]
    seconds_key = {"generated": "generation_seconds",
                   EXAMPLES_KIND: "examples_generation_seconds"}
    rows = []
    for concept in ws.train_concepts[:n_train] + ws.test_concepts:
        row = {"concept": concept.id, "split": concept.split}
        for kind in kinds:
            init = inits.get(kind, concept)
            quality = evaluator.quality(concept, init.state)
            row[kind] = {"psnr": quality.psnr, "ssim": quality.ssim}
            if kind in generated:
                row[seconds_key[kind]] = init.seconds
        rows.append(row)
    summary = {
        split: {kind: statistics.median(r[kind]["psnr"] for r in rows if r["split"] == split)
                for kind in kinds}
        for split in ("train", "test") if any(r["split"] == split for r in rows)
    }
    for kind in generated:
        summary[seconds_key[kind]] = statistics.median(r[seconds_key[kind]] for r in rows)
        for rival in ("mean", "nearest"):
            summary[f"{kind}_beats_{rival}"] = {
                split: generated_wins(rows, split, (rival,), kind) for split in ("train", "test")
            }
    if examples_k:
        summary["examples_k"] = examples_k
    report = {"summary": summary, "concepts": rows}
    reworded = paraphrase_sources(ws.train_concepts, ws.test_concepts)
    if reworded:
        gap = paraphrase_gap(evaluator, inits, reworded)
        report["paraphrase_gap_concepts"] = gap.pop("rows")
        summary["paraphrase_gap"] = gap
        if examples_k:
            gap = paraphrase_gap(evaluator, inits, reworded, examples=True)
            report["paraphrase_gap_examples_concepts"] = gap.pop("rows")
            summary["paraphrase_gap_examples"] = gap
    folder = Path(ws.cfg.paths.generator_dir)
    atomic_write_json(folder / "zero_shot.json", report)
    atomic_write_text(folder / "zero_shot.md", zero_shot_markdown(rows, summary))
    return summary
