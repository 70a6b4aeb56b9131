"""The zero-shot table: GAN PSNR of every init kind per concept, medians, win counts, markdown.

Rows come from ``weightgen-zero-shot`` (``zero_shot.json``); the generalisation study reads the
same rows, so the win count is defined once here.
"""

from __future__ import annotations

KINDS = ("standard", "mean", "nearest", "trained", "generated")


def generated_wins(rows: list[dict], split: str, rivals: tuple[str, ...]) -> int:
    """Concepts of ``split`` on which the generated adapter's PSNR is above every rival's."""
    return sum(r["generated"]["psnr"] > max(r[rival]["psnr"] for rival in rivals)
               for r in rows if r["split"] == split)


def zero_shot_markdown(rows: list[dict], summary: dict) -> str:
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
    gap = summary.get("paraphrase_gap")
    if gap:
        lines += ["", f"Paraphrase gap on {gap['concepts']} train concepts (generated, medians): "
                  f"{gap['training_phrasing']:.2f} under the training prompt, "
                  f"{gap['heldout_phrasing']:.2f} under the held-out phrasing, "
                  f"{gap['wrong_prompt']:.2f} under a wrong prompt; median gap "
                  f"{gap['gap_db']:.2f} dB."]
    return "\n".join(lines) + "\n"
