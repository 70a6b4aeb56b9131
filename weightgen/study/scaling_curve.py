"""The scaling curve (issue 24): does the generator overtake the controls as the weight data grows?

Input: the lever records (:mod:`weightgen.study.controls_table`) of generators trained on the
first k train concepts of one store (``diffusion.data.n_concepts``; every control is built from
the same k), each with ``train_concepts`` = k, scored on the validation split, the test split or
both. Output: the lever table (``results.*``) and ``scaling.{json,md,png}``: per split and k
(seeds averaged), the median zero-shot PSNR of the generators and their controls on one held-out
kind, and the share of concepts where each generator is above all its controls at once, against
the 75% bar.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from weightgen.study.controls_table import BAR, controls_table, lever_row
from weightgen.study.zero_shot_controls import RIVALS
from weightgen.utils.io import atomic_save_figure, atomic_write_json, atomic_write_text

CURVES = ("generated_examples", "examples_ridge", "examples_blend", "mean", "generated",
          "text_ridge", "trained")


def scaling_points(records: Sequence[dict], held_out_kind: str = "new") -> list[dict]:
    """One point per split and training-set size: medians and above-all shares averaged over its
    seeds."""
    by_size: dict[tuple[str, int], list[dict]] = {}
    for record in records:
        row = lever_row(record, held_out_kind)
        by_size.setdefault((row["split"], int(record["train_concepts"])), []).append(row)
    points = []
    for (split, size), rows in sorted(by_size.items()):
        points.append({
            "train_concepts": size, "seeds": len(rows), "split": split,
            "concepts": rows[0]["concepts"],
            "median": {k: statistics.mean(r["median"][k] for r in rows)
                       for k in CURVES if all(k in r["median"] for r in rows)},
            "above_all": {g: statistics.mean(r["wins"][g]["above_all"] / r["concepts"] for r in rows)
                          for g in RIVALS if all(g in r["wins"] for r in rows)},
        })
    return points


def scaling_table(records: Sequence[dict], out_dir: str | Path, held_out_kind: str = "new") -> Path:
    """The lever table of ``records`` and the curve over their training-set sizes; returns
    scaling.md."""
    out = Path(out_dir)
    controls_table(records, out, held_out_kind)
    points = scaling_points(records, held_out_kind)
    atomic_write_json(out / "scaling.json", {"kind": held_out_kind, "bar": BAR, "points": points})
    lines = [f"# Scaling the weight data: {held_out_kind} concepts", "",
             "Median zero-shot GAN PSNR (dB) of generators and controls built from the first k "
             "train concepts (seeds averaged); above all: the share of concepts where the "
             f"generator is above all its controls at once (bar {BAR:.0%}).", "",
             "| split | train concepts | seeds | n | " + " | ".join(CURVES)
             + " | text + examples above all | text only above all |",
             "|---|---|---|---|" + "---|" * (len(CURVES) + 2)]
    for p in points:
        medians = [f"{p['median'][c]:.2f}" if c in p["median"] else "—" for c in CURVES]
        shares = [f"{p['above_all'][g]:.0%}" if g in p["above_all"] else "—" for g in RIVALS]
        lines.append(f"| {p['split']} | {p['train_concepts']} | {p['seeds']} | {p['concepts']} | "
                     + " | ".join(medians)
                     + " | " + " | ".join(shares) + " |")
    atomic_write_text(out / "scaling.md", "\n".join(lines) + "\n")
    _plot(points, held_out_kind, out / "scaling.png")
    return out / "scaling.md"


def _plot(points: Sequence[dict], held_out_kind: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({p["split"] for p in points})
    fig, panels = plt.subplots(len(splits), 2, figsize=(11, 4.2 * len(splits)), squeeze=False)
    styles = {"generated_examples": "o-", "examples_ridge": "s--", "examples_blend": "^--",
              "mean": "x:", "generated": "o-", "text_ridge": "s--", "trained": "*-"}
    for split, (left, right) in zip(splits, panels, strict=True):
        ours = [p for p in points if p["split"] == split]
        sizes = [p["train_concepts"] for p in ours]
        for curve in CURVES:
            if all(curve in p["median"] for p in ours):
                left.plot(sizes, [p["median"][curve] for p in ours], styles[curve], label=curve)
        left.set(xscale="log", xlabel="train concepts (weight data)",
                 ylabel="median zero-shot PSNR (dB)",
                 title=f"{held_out_kind} concepts of the {split} split")
        for generated in RIVALS:
            if all(generated in p["above_all"] for p in ours):
                right.plot(sizes, [p["above_all"][generated] for p in ours], "o-",
                           label=f"{generated} above all its controls")
        right.axhline(BAR, color="k", linestyle=":", label=f"bar {BAR:.0%}")
        right.set(xscale="log", xlabel="train concepts (weight data)", ylabel="share of concepts",
                  ylim=(0, 1), title=f"generator above every control at once ({split})")
        for axes in (left, right):
            axes.set_xticks(sizes, [str(s) for s in sizes])
            axes.minorticks_off()
            axes.grid(alpha=0.3)
            axes.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
