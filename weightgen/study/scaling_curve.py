"""The scaling curve (issue 24): does the generator overtake the controls as the weight data grows?

Input: the lever records (:mod:`weightgen.study.controls_table`) of generators trained on the
first k train concepts of one store (``diffusion.data.n_concepts``; every control is built from
the same k), each with ``train_concepts`` = k, scored on the validation split, the test split or
both. Output: the lever table (``results.*``) and ``scaling.{json,md,png}``: per split and k
(seeds averaged), the median zero-shot PSNR of the generators and their controls on one held-out
kind, and the share of concepts where each generator is above all its controls at once, against
the 75% bar. Records that were also fine-tuned (``record["bench"]``: the bench's results.json)
add the speed-ups per k (``speedups`` in scaling.json, a table in scaling.md, speedups.png):
each init's per-concept median time-to-target ratio against E2GAN in seconds and in steps, and
its speed-up over pix2pix, on the same held-out kind.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from weightgen.bench.methods import CEILING, METHODS
from weightgen.bench.stats import paired_comparison, sign_test
from weightgen.bench.summary import paired_ratios
from weightgen.study.controls_table import BAR, controls_table, lever_row
from weightgen.study.zero_shot_controls import RIVALS
from weightgen.utils.io import atomic_save_figure, atomic_write_json, atomic_write_text

CURVES = ("generated_examples", "examples_ridge", "examples_blend", "text_examples_ridge", "mean",
          "generated", "text_ridge", "trained")
# The fine-tuned inits of a point, by init kind: the generator (text + pairs, text only), the
# controls that read the same inputs, the ensembles (the generator's adapter averaged with the
# controls', and the controls' alone) and the ceiling; the bench methods that start from them.
SPEEDUP_KINDS = ("generated_examples", "ensemble", "examples_nearest", "examples_blend",
                 "examples_ridge", "text_examples_ridge", "controls_ensemble", "generated",
                 "text_ridge", "trained")
CONTROL_KINDS = ("examples_nearest", "examples_blend", "examples_ridge", "text_examples_ridge",
                 "controls_ensemble", "text_ridge")


def _methods_of(kinds: Sequence[str]) -> tuple[str, ...]:
    return tuple(method.name for kind in kinds for method in METHODS.values()
                 if method.init == kind)


SPEEDUP_METHODS = _methods_of(SPEEDUP_KINDS)
CONTROL_METHODS = _methods_of(CONTROL_KINDS)
# The methods with generated weights compared concept by concept (in steps) with each control
# that ran beside them: the text + examples generator, and the ensemble that holds its adapter.
GENERATOR_METHOD, ENSEMBLE_METHOD = _methods_of(("generated_examples", "ensemble"))
HEAD_TO_HEAD = (GENERATOR_METHOD, ENSEMBLE_METHOD)


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


def speedup_points(records: Sequence[dict], held_out_kind: str = "new") -> list[dict]:
    """One point per split and training-set size that was fine-tuned: for each init, over the
    seeds that ran it (a run reused by several seeds counts once), the mean of their median
    per-concept time-to-target ratios against E2GAN in steps (wins and losses summed over the
    concept-seeds, with the sign test's p-value) and in seconds, and of their speed-ups over
    pix2pix."""
    by_size: dict[tuple[str, int], list[dict]] = {}
    for record in records:
        results = record.get("bench")
        if not results or held_out_kind not in results["summary"]["by_kind"]:
            continue
        key = (results["summary"]["split"], int(record["train_concepts"]))
        by_size.setdefault(key, []).append(record)
    points = []
    for (split, size), group in sorted(by_size.items()):
        kinds = [r["bench"]["summary"]["by_kind"][held_out_kind] for r in group]
        methods = {}
        for method in SPEEDUP_METHODS:
            ran = _distinct_runs(kinds, method)
            if not ran:
                continue
            steps = [kind["paired_steps_vs_e2gan"][method] for kind in ran]
            wins, losses = sum(s["wins"] for s in steps), sum(s["losses"] for s in steps)
            methods[method] = {
                "seeds": len(ran),
                "vs_e2gan_steps": statistics.mean(s["median_ratio"] for s in steps),
                "wins_steps": [wins, losses], "p_steps": sign_test(wins, losses),
                "vs_e2gan_seconds": statistics.mean(kind["paired_vs_e2gan"][method]["median_ratio"]
                                                    for kind in ran),
                "vs_pix2pix": statistics.mean(kind["speedup_by_method"][method] for kind in ran)}
        points.append({"train_concepts": size, "split": split, "seeds": len(group),
                       "versus": _versus_controls(group, held_out_kind),
                       "names": [r["name"] for r in group],
                       "concepts": group[0]["bench"]["summary"]["heldout_kinds"][held_out_kind],
                       "methods": methods})
    return points


def _versus_controls(group: Sequence[dict], held_out_kind: str) -> dict:
    """Each method of :data:`HEAD_TO_HEAD` that ran against each control of its point, concept
    by concept over every seed, in steps to target: the median ratio (control / method), wins,
    losses, the sign test."""
    unseen = [concept for record in group for concept in record["bench"]["concepts"]
              if concept["kind"] == held_out_kind and not concept["seen"]]
    versus = {}
    for method in HEAD_TO_HEAD:
        against = {control: paired_comparison(paired_ratios(unseen, method, control, "steps"))
                   for control in CONTROL_METHODS
                   if any({method, control} <= set(c["methods"]) for c in unseen)}
        if against:
            versus[method] = against
    return versus


def _distinct_runs(kinds: Sequence[dict], method: str) -> list[dict]:
    """The seeds' results that ran ``method``, a run reused by several seeds (pix2pix, E2GAN, the
    ceiling, a control that does not depend on the seed) counted once."""
    distinct: dict[str, dict] = {}
    for kind in kinds:
        if method in kind["paired_vs_e2gan"]:
            key = json.dumps([kind[table][method] for table in
                              ("paired_vs_e2gan", "paired_steps_vs_e2gan", "speedup_by_method")],
                             sort_keys=True)
            distinct.setdefault(key, kind)
    return list(distinct.values())


def _speedup_lines(points: Sequence[dict], held_out_kind: str) -> list[str]:
    shown = [m for m in SPEEDUP_METHODS if any(m in p["methods"] for p in points)]
    lines = ["", f"## Fine-tune speed-ups on the {held_out_kind} concepts", "",
             "Per init: the per-concept median time-to-target ratio against E2GAN in steps "
             "(wins-losses; steps do not depend on the machine's load, and an adapter's step "
             "costs the same from any init), then in seconds, then the speed-up over pix2pix "
             "(medians of seconds to its target); over a point's seeds, the mean of these "
             "medians and the wins and losses summed (an init that ran on fewer seeds says so). "
             "Seconds are comparable only between runs made under the same load.", "",
             "| split | train concepts | seeds | n | " + " | ".join(shown) + " |",
             "|---|---|---|---|" + "---|" * len(shown)]
    for p in points:
        cells = []
        for method in shown:
            got = p["methods"].get(method)
            if got is None:
                cells.append("—")
                continue
            fewer = "" if got["seeds"] == p["seeds"] else f" ({got['seeds']} seed)"
            cells.append(f"{got['vs_e2gan_steps']:.2f}x ({got['wins_steps'][0]}-"
                         f"{got['wins_steps'][1]}) / {got['vs_e2gan_seconds']:.2f}x / "
                         f"{got['vs_pix2pix']:.1f}x{fewer}")
        lines.append(f"| {p['split']} | {p['train_concepts']} | {p['seeds']} | {p['concepts']} | "
                     + " | ".join(cells) + " |")
    for method in HEAD_TO_HEAD:
        rivals = [m for m in CONTROL_METHODS
                  if any(m in p["versus"].get(method, {}) for p in points)]
        if not rivals:
            continue
        lines += ["", f"`{method}` against each control, concept by concept over the "
                  "seeds, in steps to target: the median ratio (the control's steps over "
                  f"{method}'s; above 1: {method} is sooner), wins-losses, the sign test's p.",
                  "", "| split | train concepts | " + " | ".join(rivals) + " |",
                  "|---|---|" + "---|" * len(rivals)]
        for p in points:
            cells = []
            for control in rivals:
                got = p["versus"].get(method, {}).get(control)
                cells.append("—" if got is None else
                             f"{got['median_ratio']:.2f}x ({got['wins']}-{got['losses']}, "
                             f"p = {got['p_value']:.2g})")
            lines.append(f"| {p['split']} | {p['train_concepts']} | " + " | ".join(cells) + " |")
    return lines


def scaling_table(records: Sequence[dict], out_dir: str | Path, held_out_kind: str = "new") -> Path:
    """The lever table of ``records`` and the curve over their training-set sizes; returns
    scaling.md."""
    out = Path(out_dir)
    controls_table(records, out, held_out_kind)
    points = scaling_points(records, held_out_kind)
    speedups = speedup_points(records, held_out_kind)
    atomic_write_json(out / "scaling.json", {"kind": held_out_kind, "bar": BAR, "points": points,
                                             "speedups": speedups})
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
    if speedups:
        lines += _speedup_lines(speedups, held_out_kind)
        _plot_speedups(speedups, held_out_kind, out / "speedups.png")
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
              "text_examples_ridge": "d--",
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


def _plot_speedups(points: Sequence[dict], held_out_kind: str, path: Path) -> None:
    """Time to target against E2GAN in steps (load-independent) over k, a line per init."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(figsize=(6.5, 4.2))
    for method in SPEEDUP_METHODS:
        ours = [p for p in points if method in p["methods"] and method != CEILING]
        if ours:
            style = "s--" if METHODS[method].init in CONTROL_KINDS else "o-"
            axes.plot([p["train_concepts"] for p in ours],
                      [p["methods"][method]["vs_e2gan_steps"] for p in ours], style, label=method)
    axes.axhline(1.0, color="k", linestyle=":", label="E2GAN")
    sizes = sorted({p["train_concepts"] for p in points})
    axes.set(xscale="log", xlabel="train concepts (weight data)",
             ylabel="time to target vs E2GAN, steps (x)",
             title=f"fine-tune speed-up over E2GAN ({held_out_kind} concepts)")
    axes.set_xticks(sizes, [str(s) for s in sizes])
    axes.minorticks_off()
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
