"""Zero-shot quality of generated adapters: no fine-tuning, against every cheap initialisation.

For train concepts (did the generator fit its data?) and the held-out concepts of ``bench.split``
(does it generalise? ``val`` where configurations are chosen, ``test`` where they are reported)
separately: GAN validation PSNR/SSIM with the base alone (standard init), the mean
training adapter, the nearest training concept's adapter, the concept's own trained adapter, and
the generated one, plus the seconds a generation took. For a generator trained with example
pairs, also its adapter for the prompt and k of the concept's training pairs
(``generated_examples``), with its seconds (encoding included) and its own win counts.
Beside them, the paraphrase gap: the generated (text-only) adapter of the train concepts that
the split's paraphrases reword, under their training prompt, their held-out phrasing and a
wrong prompt (``summary["paraphrase_gap"]``; with example pairs, each prompt beside the same k
pairs too: ``summary["paraphrase_gap_examples"]``). Last, the held-out concepts against the
controls that see the same inputs, new concepts and paraphrases apart (``report["controls"]``,
``summary["controls"]["by_kind"]``: ``weightgen.study.zero_shot_controls``).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from weightgen.stages.artifacts import scoring_tools
from weightgen.stages.bench import split_concepts
from weightgen.stages.workspace import Workspace
from weightgen.study.prompt_variants import paraphrase_gap, paraphrase_sources
from weightgen.study.zero_shot_controls import (
    control_kinds,
    controls_markdown,
    score_controls,
    summarise_controls,
)
from weightgen.study.zero_shot_table import (
    EXAMPLES_KIND,
    KINDS,
    generated_wins,
    zero_shot_markdown,
)
from weightgen.utils.io import atomic_write_json, atomic_write_text


def zero_shot_report(ws: Workspace, n_train: int = 8) -> dict:
    """Score every init kind on ``n_train`` train concepts and all held-out ones; write a table.

    The train concepts are the first ``n_train`` in the selection's pick order, which every
    ``diffusion.data.n_concepts`` >= ``n_train`` trains on (did the generator fit its data?)."""
    evaluator, inits = scoring_tools(ws)
    examples_k = inits.generator.examples_k
    generated = ("generated",) + ((EXAMPLES_KIND,) if examples_k else ())
    kinds = KINDS + generated[1:]
    seconds_key = {"generated": "generation_seconds",
                   EXAMPLES_KIND: "examples_generation_seconds"}
    split = str(ws.cfg.bench.split)
    held_out = split_concepts(ws)
    scored: dict[tuple[str, str], dict] = {}  # (kind, concept) -> quality and seconds

    def score(kind: str, concept) -> dict:
        if (kind, concept.id) not in scored:
            init = inits.get(kind, concept)
            quality = evaluator.quality(concept, init.state)
            scored[kind, concept.id] = {"psnr": quality.psnr, "ssim": quality.ssim,
                                        "seconds": init.seconds}
        return scored[kind, concept.id]

    rows = []
    for concept in ws.first_train_concepts(n_train) + held_out:
        row = {"concept": concept.id, "split": concept.split}
        for kind in kinds:
            result = score(kind, concept)
            row[kind] = {"psnr": result["psnr"], "ssim": result["ssim"]}
            if kind in generated:
                row[seconds_key[kind]] = result["seconds"]
        rows.append(row)
    splits = [s for s in ("train", split) if any(r["split"] == s for r in rows)]
    summary = {s: {kind: statistics.median(r[kind]["psnr"] for r in rows if r["split"] == s)
                   for kind in kinds} for s in splits}
    for kind in generated:
        summary[seconds_key[kind]] = statistics.median(r[seconds_key[kind]] for r in rows)
        for rival in ("mean", "nearest"):
            summary[f"{kind}_beats_{rival}"] = {
                s: generated_wins(rows, s, (rival,), kind) for s in ("train", split)}
    if examples_k:
        summary["examples_k"] = examples_k
    report = {"summary": summary, "concepts": rows}
    reworded = paraphrase_sources(ws.train_concepts, held_out)
    if reworded:
        gap = paraphrase_gap(evaluator, inits, reworded)
        report["paraphrase_gap_concepts"] = gap.pop("rows")
        summary["paraphrase_gap"] = gap
        if examples_k:
            gap = paraphrase_gap(evaluator, inits, reworded, examples=True)
            report["paraphrase_gap_examples_concepts"] = gap.pop("rows")
            summary["paraphrase_gap_examples"] = gap
    report["controls"] = score_controls(held_out, control_kinds(bool(examples_k)),
                                        lambda kind, concept: score(kind, concept)["psnr"])
    summary["controls"] = {"split": split, "by_kind": summarise_controls(report["controls"])}
    folder = Path(ws.cfg.paths.generator_dir)
    atomic_write_json(folder / "zero_shot.json", report)
    atomic_write_text(folder / "zero_shot.md", zero_shot_markdown(rows, summary)
                      + "\n".join(controls_markdown(summary["controls"]["by_kind"], split)) + "\n")
    return summary
