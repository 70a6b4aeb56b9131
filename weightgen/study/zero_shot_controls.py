"""Zero-shot against the controls that see what the generator sees, per held-out kind.

The generator earns its place only where it starts above what a closed-form map or retrieval
makes of the same inputs (issue 24's bar): with example pairs, above the ridge map from the
example vector (``examples_ridge``), the mean of the nearest adapters by example vector
(``examples_blend``) and the mean adapter; from text alone, above the ridge map from the
sentence vector (``text_ridge``) and the mean. The ridge map from both inputs together
(``text_examples_ridge``) is scored beside them, outside the bar. Scored on the held-out concepts of
``bench.split`` (``val`` where levers are chosen, ``test`` where they are reported), new concepts
and paraphrases apart, with per-concept win counts and the sign test.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from weightgen.bench.stats import sign_test

TEXT_KINDS = ("mean", "nearest", "text_ridge", "generated")
EXAMPLES_KINDS = ("examples_nearest", "examples_blend", "examples_ridge", "text_examples_ridge",
                  "generated_examples")
CEILING = "trained"

# Each generated init and the controls it must start above (issue 24: on >= 75% of new concepts).
RIVALS = {"generated_examples": ("examples_ridge", "examples_blend", "mean"),
          "generated": ("text_ridge", "mean")}


def control_kinds(examples: bool) -> tuple[str, ...]:
    """The init kinds scored: the text side, with example pairs their side too, and the ceiling."""
    return TEXT_KINDS + (EXAMPLES_KINDS if examples else ()) + (CEILING,)


def score_controls(concepts: Sequence, kinds: Sequence[str],
                   psnr: Callable[[str, object], float]) -> list[dict]:
    """One row per concept: its id, split and kind (new / paraphrase), and ``psnr(kind, concept)``
    of every init kind."""
    return [{"concept": c.id, "split": c.split, "kind": c.kind}
            | {kind: psnr(kind, c) for kind in kinds} for c in concepts]


def paired_wins(rows: Sequence[dict], kind: str, rival: str) -> dict:
    """Concepts where ``kind`` starts above / below ``rival``, and the sign test's p."""
    wins = sum(r[kind] > r[rival] for r in rows)
    losses = sum(r[kind] < r[rival] for r in rows)
    return {"wins": wins, "losses": losses, "p_value": sign_test(wins, losses)}


def wins_cell(won: dict) -> str:
    """``wins / losses (p ...)`` of :func:`paired_wins`; without the p where all were ties."""
    cell = f"{won['wins']} / {won['losses']}"
    return cell if won["p_value"] is None else f"{cell} (p {won['p_value']:.3g})"


def summarise_controls(rows: Sequence[dict]) -> dict:
    """Per held-out kind: concept count, each init's median PSNR, and each generated init's wins
    over each rival and over all of them at once (``above_all``)."""
    by_kind = {}
    for held_out_kind in sorted({r["kind"] for r in rows}):
        group = [r for r in rows if r["kind"] == held_out_kind]
        inits = [k for k in group[0] if k not in ("concept", "split", "kind")]
        wins = {}
        for generated, rivals in RIVALS.items():
            if generated in group[0]:
                wins[generated] = {rival: paired_wins(group, generated, rival) for rival in rivals}
                wins[generated]["above_all"] = sum(
                    r[generated] > max(r[rival] for rival in rivals) for r in group)
        by_kind[held_out_kind] = {"concepts": len(group),
                                  "median": {k: statistics.median(r[k] for r in group)
                                             for k in inits},
                                  "wins": wins}
    return by_kind


def controls_markdown(summary: dict, split: str) -> list[str]:
    """The zero-shot table's section on the controls: medians and wins, one column per kind."""
    held_out_kinds = list(summary)
    if not held_out_kinds:
        return []
    inits = list(summary[held_out_kinds[0]]["median"])
    lines = ["", f"## Against the controls that see the same inputs ({split} split)", "",
             "Median GAN PSNR (dB) per held-out kind; wins = concepts above the rival / below it "
             "(sign-test p).", "",
             "| init | " + " | ".join(f"{k} ({summary[k]['concepts']})"
                                      for k in held_out_kinds) + " |",
             "|---|" + "---|" * len(held_out_kinds)]
    for init in inits:
        lines.append(f"| {init} | " + " | ".join(f"{summary[k]['median'][init]:.2f}"
                                                 for k in held_out_kinds) + " |")
    for generated, rivals in RIVALS.items():
        if generated not in summary[held_out_kinds[0]]["wins"]:
            continue
        for rival in (*rivals, "above_all"):
            cells = []
            for k in held_out_kinds:
                won = summary[k]["wins"][generated][rival]
                cells.append(f"{won} of {summary[k]['concepts']}" if rival == "above_all"
                             else wins_cell(won))
            what = f"above {' and '.join(rivals)}" if rival == "above_all" else f"vs {rival}"
            lines.append(f"| {generated} {what} | " + " | ".join(cells) + " |")
    return lines
