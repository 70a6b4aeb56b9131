"""Zero-shot quality of generated adapters: no fine-tuning, against every cheap initialisation.

For train concepts (did the generator fit its data?) and held-out concepts (does it
generalise?) separately: GAN validation PSNR/SSIM with the base alone (standard init), the mean
training adapter, the nearest training concept's adapter, the concept's own trained adapter, and
the generated one, plus the seconds a generation took.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from weightgen.finetune.finetuner import default_inits
from weightgen.finetune.inits import InitSources
from weightgen.gan.adapter_evaluator import AdapterEvaluator
from weightgen.stages.dataset import load_base
from weightgen.stages.generate import load_generator
from weightgen.stages.workspace import Workspace
from weightgen.utils.io import atomic_write_json, atomic_write_text

KINDS = ("standard", "mean", "nearest", "trained", "generated")


def scoring_tools(ws: Workspace) -> tuple[AdapterEvaluator, InitSources]:
    """The GAN scorer on the run's base and every init of the run, the generator's included."""
    base = load_base(ws)
    return AdapterEvaluator(ws, base), default_inits(ws, base, load_generator(ws))


def generated_wins(rows: list[dict], split: str, rivals: tuple[str, ...]) -> int:
    """Concepts of ``split`` on which the generated adapter's PSNR is above every rival's."""
    return sum(r["generated"]["psnr"] > max(r[rival]["psnr"] for rival in rivals)
               for r in rows if r["split"] == split)


def zero_shot_report(ws: Workspace, n_train: int = 8) -> dict:
    """Score every init kind on ``n_train`` train concepts and all held-out ones; write a table."""
    evaluator, inits = scoring_tools(ws)
    rows = []
    for concept in ws.train_concepts[:n_train] + ws.test_concepts:
        row = {"concept": concept.id, "split": concept.split}
        for kind in KINDS:
            init = inits.get(kind, concept)
            quality = evaluator.quality(concept, init.state)
            row[kind] = {"psnr": quality.psnr, "ssim": quality.ssim}
            if kind == "generated":
                row["generation_seconds"] = init.seconds
        rows.append(row)
    summary = {
        split: {kind: statistics.median(r[kind]["psnr"] for r in rows if r["split"] == split)
                for kind in KINDS}
        for split in ("train", "test") if any(r["split"] == split for r in rows)
    }
    summary["generation_seconds"] = statistics.median(r["generation_seconds"] for r in rows)
    for rival in ("mean", "nearest"):
        summary[f"generated_beats_{rival}"] = {
            split: generated_wins(rows, split, (rival,)) for split in ("train", "test")
        }
    folder = Path(ws.cfg.paths.generator_dir)
    atomic_write_json(folder / "zero_shot.json", {"summary": summary, "concepts": rows})
    atomic_write_text(folder / "zero_shot.md", _markdown(rows, summary))
    return summary


def _markdown(rows: list[dict], summary: dict) -> str:
    lines = ["# Zero-shot GAN validation PSNR (dB) by adapter initialisation", "",
             "No fine-tuning. `standard` = the base alone; `trained` = the concept's own adapter "
             "from the weight store (held-out concepts' adapters are never shown to the generator).",
             "", "| concept | split | " + " | ".join(KINDS) + " |",
             "|---|---|" + "---|" * len(KINDS)]
    for r in rows:
        lines.append(f"| {r['concept']} | {r['split']} | "
                     + " | ".join(f"{r[k]['psnr']:.2f}" for k in KINDS) + " |")
    for split in ("train", "test"):
        if split in summary:
            lines.append(f"| **median** | {split} | "
                         + " | ".join(f"**{summary[split][k]:.2f}**" for k in KINDS) + " |")
    lines += ["", f"Generation: {summary['generation_seconds']:.3f} s per adapter (median). "
              f"Generated beats mean on {summary['generated_beats_mean']} concepts and nearest on "
              f"{summary['generated_beats_nearest']} (train/test counts)."]
    return "\n".join(lines) + "\n"
