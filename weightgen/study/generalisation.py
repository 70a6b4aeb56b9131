"""The generalisation table (issue 8): every generator configuration against the cheap inits.

Input: one record per configuration with its zero-shot report (``weightgen-zero-shot``). Output:
``results.json``, ``results.md`` (train-prompt fit, held-out medians, per-concept win counts) and
``results.png`` (the same medians as bars, with the controls as markers). A configuration whose
generator reads example pairs adds a text + examples column (held-out median and wins over
both cheap inits); a table without one is as before.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from weightgen.bench.methods import BASELINE, TEXT_ONLY, WITH_EXAMPLES
from weightgen.study.zero_shot_table import EXAMPLES_KIND, generated_wins
from weightgen.utils.bar_axes import style_psnr_bars
from weightgen.utils.io import atomic_save_figure, atomic_write_json, atomic_write_text


def summarise_zero_shot(report: dict) -> dict:
    """Medians and held-out win counts from a zero_shot.json report."""
    summary, rows = report["summary"], report["concepts"]

    def wins(*rivals: str) -> int:
        return generated_wins(rows, "test", rivals)

    return {
        "train_generated": summary["train"]["generated"],
        "train_trained": summary["train"]["trained"],
        "train_mean": summary["train"]["mean"],
        "test_generated": summary["test"]["generated"],
        "test_mean": summary["test"]["mean"],
        "test_nearest": summary["test"]["nearest"],
        "test_standard": summary["test"]["standard"],
        "test_trained": summary["test"]["trained"],
        "beats_mean": wins("mean"),
        "beats_nearest": wins("nearest"),
        "beats_both": wins("mean", "nearest"),
        "beats_base": wins("standard"),
        "test_count": sum(r["split"] == "test" for r in rows),
        "generation_seconds": summary["generation_seconds"],
        "paraphrase_gap": summary.get("paraphrase_gap"),
        "paraphrase_gap_examples": summary.get("paraphrase_gap_examples"),
    } | ({"test_generated_examples": summary["test"][EXAMPLES_KIND],
          "examples_beats_both": generated_wins(rows, "test", ("mean", "nearest"), EXAMPLES_KIND)}
         if EXAMPLES_KIND in summary["test"] else {})


def summarise_bench(results: dict | None) -> dict:
    """Median steps and seconds to target from the generated init and from the standard init
    (where the bench ran the text-only init, its headline), and the text + examples method's
    speed-ups."""
    if results is None:
        return {}
    if TEXT_ONLY not in results["summary"]["seconds_to_target"]:
        return _examples_bench(results["summary"])
    summary, unseen = results["summary"], [c for c in results["concepts"] if not c["seen"]]

    def median_steps(method: str) -> float | None:
        steps = sorted(c["methods"][method]["steps_to_target"] for c in unseen
                       if c["methods"][method]["steps_to_target"] is not None)
        return statistics.median(steps) if steps else None

    paired = (summary.get("paired_vs_e2gan") or {}).get(TEXT_ONLY)
    in_steps = (summary.get("paired_steps_vs_e2gan") or {}).get(TEXT_ONLY)
    return {"seconds_to_target": summary["seconds_to_target"][TEXT_ONLY],
            "standard_seconds_to_target": summary["seconds_to_target"][BASELINE],
            "steps_to_target": median_steps(TEXT_ONLY),
            "standard_steps_to_target": median_steps(BASELINE),
            "speedup_vs_e2gan": summary.get("speedup_vs_e2gan"),
            "speedup_vs_pix2pix": summary.get("speedup_vs_pix2pix"),
            "ceiling_vs_e2gan": summary.get("speedup_ceiling_vs_e2gan"),
            "paired_vs_e2gan": paired,
            "paired_steps_vs_e2gan": in_steps,
            "zero_shot_wins": summary.get("zero_shot_wins")} | _examples_bench(summary)


def _examples_bench(summary: dict) -> dict:
    """The text + examples method's speed-ups, where the benchmark ran it."""
    paired = (summary.get("paired_vs_e2gan") or {}).get(WITH_EXAMPLES)
    if paired is None:
        return {}
    return {"examples_paired_vs_e2gan": paired,
            "examples_paired_steps_vs_e2gan": summary["paired_steps_vs_e2gan"][WITH_EXAMPLES],
            "examples_speedup_vs_pix2pix": summary["speedup_by_method"][WITH_EXAMPLES]}


def generalisation_table(records: Sequence[dict], out_dir: str | Path) -> Path:
    out = Path(out_dir)
    rows = [{"name": r["name"], "note": r["note"], "overrides": r["overrides"],
             "sampling_of": r.get("sampling_of"), "train_seconds": r["train_seconds"]}
            | summarise_zero_shot(r["zero_shot"]) | summarise_bench(r.get("bench"))
            for r in records]
    atomic_write_json(out / "results.json", {"configurations": rows})
    examples = any("test_generated_examples" in r for r in rows)
    lines = [
        "| configuration | train prompts: generated / trained / mean | held-out: generated / mean "
        "/ nearest / base | held-out wins vs mean, nearest, both (of n) | "
        + ("held-out text + examples: generated (wins vs both) | " if examples else "")
        + "steps to target: generated / standard init | speed-up vs E2GAN in seconds (ceiling); "
        "wins-losses, sign p; the same in steps | paraphrase gap: training prompt / held-out "
        "phrasing / wrong prompt, gap | train s |",
        "|---|---|---|---|---|---|---|---|" + ("---|" if examples else ""),
    ]
    for r in rows:
        to_target = speed = "not run"
        if "steps_to_target" in r:
            to_target = f"{_number(r['steps_to_target'])} / {_number(r['standard_steps_to_target'])}"
        if r.get("speedup_vs_e2gan") is not None:
            paired = r["paired_vs_e2gan"]
            speed = (f"{r['speedup_vs_e2gan']:.2f}x ({_number(r['ceiling_vs_e2gan'])}x); "
                     f"{paired['wins']}-{paired['losses']}, p={paired['p_value']:.2g}"
                     if paired else f"{r['speedup_vs_e2gan']:.2f}x")
            steps = r.get("paired_steps_vs_e2gan")
            if steps:
                p_value = "—" if steps["p_value"] is None else f"{steps['p_value']:.2g}"
                speed += (f"; in steps {steps['median_ratio']:.2f}x, {steps['wins']}-"
                          f"{steps['losses']}, p={p_value}")
        lines.append(
            f"| `{r['name']}` | {r['train_generated']:.2f} / {r['train_trained']:.2f} / "
            f"{r['train_mean']:.2f} | **{r['test_generated']:.2f}** / {r['test_mean']:.2f} / "
            f"{r['test_nearest']:.2f} / {r['test_standard']:.2f} | {r['beats_mean']}, "
            f"{r['beats_nearest']}, **{r['beats_both']}** (of {r['test_count']}) | "
            + (_examples_cell(r) if examples else "")
            + f"{to_target} | {speed} | {_gap(r['paraphrase_gap'])}"
            + (f"; + examples {_gap(r['paraphrase_gap_examples'])}"
               if r["paraphrase_gap_examples"] else "")
            + f" | {r['train_seconds']:.0f} |"
        )
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    _plot(rows, out / "results.png")
    return out


def _gap(gap: dict | None) -> str:
    if gap is None:
        return "not run"
    return (f"{gap['training_phrasing']:.2f} / {gap['heldout_phrasing']:.2f} / "
            f"{gap['wrong_prompt']:.2f}, **{gap['gap_db']:.2f}**")


def _examples_cell(row: dict) -> str:
    if "test_generated_examples" not in row:
        return "— | "
    cell = f"**{row['test_generated_examples']:.2f}** ({row['examples_beats_both']})"
    if "examples_paired_vs_e2gan" in row:
        seconds, steps = row["examples_paired_vs_e2gan"], row["examples_paired_steps_vs_e2gan"]
        cell += (f"; vs E2GAN {seconds['median_ratio']:.2f}x ({seconds['wins']}-"
                 f"{seconds['losses']}), in steps {steps['median_ratio']:.2f}x ({steps['wins']}-"
                 f"{steps['losses']}); vs pix2pix {row['examples_speedup_vs_pix2pix']:.2f}x")
    return cell + " | "


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _plot(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows]
    x = range(len(rows))
    fig, (fit, test) = plt.subplots(1, 2, figsize=(max(8.0, 1.1 * len(rows) + 4), 4.2))
    fit.bar(x, [r["train_generated"] for r in rows], color="tab:blue", label="generated")
    fit.plot(x, [r["train_trained"] for r in rows], "k_", markersize=18, label="trained adapter")
    fit.plot(x, [r["train_mean"] for r in rows], "rx", label="mean adapter")
    fit.set_title("fit: train prompts (median)", fontsize=9)
    test.bar(x, [r["test_generated"] for r in rows], color="tab:green", label="generated")
    test.plot(x, [r["test_mean"] for r in rows], "rx", label="mean init")
    test.plot(x, [r["test_nearest"] for r in rows], "m^", label="nearest init")
    test.plot(x, [r["test_standard"] for r in rows], "k_", markersize=18, label="base")
    test.set_title("generalise: held-out prompts (median)", fontsize=9)
    low = min(min(r["test_standard"], r["train_mean"]) for r in rows) - 3
    for ax in (fit, test):
        style_psnr_bars(ax, names, low)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
