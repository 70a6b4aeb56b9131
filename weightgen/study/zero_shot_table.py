"""The zero-shot table: GAN PSNR of every init kind per concept, medians, win counts, markdown.

Rows come from ``weightgen-zero-shot`` (``zero_shot.json``); the generalisation study reads the
same rows, so the win count is defined once here. A generator trained with example pairs adds
``generated_examples`` (its adapter for the prompt and k training pairs) beside the text-only
``generated``; the table of any other generator is as before.
"""

from __future__ import annotations

KINDS = ("standard", "mean", "nearest", "trained", "generated")
EXAMPLES_KIND = "generated_examples"  # scored only for a generator trained with example pairs


def generated_wins(rows: list[dict], split: str, rivals: tuple[str, ...],
                   kind: str = "generated") -> int:
    """Concepts of ``split`` on which ``kind``'s adapter PSNR is above every rival's."""
    return sum(r[kind]["psnr"] > max(r[rival]["psnr"] for rival in rivals)
               for r in rows if r["split"] == split)


def kinds_of(rows: list[dict]) -> tuple[str, ...]:
    """The init kinds a report scored: :data:`KINDS`, and :data:`EXAMPLES_KIND` if it has it."""
    return KINDS + ((EXAMPLES_KIND,) if rows and EXAMPLES_KIND in rows[0] else ())


def zero_shot_markdown(rows: list[dict], summary: dict) -> str:
    kinds = kinds_of(rows)
    lines = ["# Zero-shot GAN validation PSNR (dB) by adapter initialisation", "",
             "No fine-tuning. `standard` = the base alone; `trained` = the concept's own adapter "
             "from the weight store (held-out concepts' adapters are never shown to the generator).",
             "", "| concept | split | " + " | ".join(kinds) + " |",
             "|---|---|" + "---|" * len(kinds)]
    for r in rows:
        lines.append(f"| {r['concept']} | {r['split']} | "
                     + " | ".join(f"{r[k]['psnr']:.2f}" for k in kinds) + " |")
    for split in ("train", "val", "test"):
        if split in summary:
            lines.append(f"| **median** | {split} | "
                         + " | ".join(f"**{summary[split][k]:.2f}**" for k in kinds) + " |")
    lines += ["", f"Generation: {summary['generation_seconds']:.3f} s per adapter (median). "
              f"Generated beats mean on {summary['generated_beats_mean']} concepts and nearest on "
              f"{summary['generated_beats_nearest']} (train/held-out counts)."]
    if EXAMPLES_KIND in kinds:
        lines += ["", f"With {summary['examples_k']} example pairs (`{EXAMPLES_KIND}`: prompt + k "
                  f"training pairs, encoding included): "
                  f"{summary['examples_generation_seconds']:.3f} s per adapter (median); beats "
                  f"mean on {summary['generated_examples_beats_mean']} concepts and nearest on "
                  f"{summary['generated_examples_beats_nearest']} (train/held-out counts)."]
    for key, what in (("paraphrase_gap", "generated"),
                      ("paraphrase_gap_examples", "generated with the same example pairs")):
        gap = summary.get(key)
        if gap:
            lines += ["", f"Paraphrase gap on {gap['concepts']} train concepts ({what}, "
                      f"medians): {gap['training_phrasing']:.2f} under the training prompt, "
                      f"{gap['heldout_phrasing']:.2f} under the held-out phrasing, "
                      f"{gap['wrong_prompt']:.2f} under a wrong prompt; median gap "
                      f"{gap['gap_db']:.2f} dB."]
    return "\n".join(lines) + "\n"
