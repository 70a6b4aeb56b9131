"""The lever table (issue 24): each generator configuration against the controls that see its
inputs, on one held-out kind of one split.

Input: one record per configuration with its zero-shot report (``weightgen-zero-shot``, whose
``summary["controls"]`` scores the held-out concepts of ``bench.split`` against the ridge maps,
retrieval and the mean). Output: ``results.json``, ``results.md`` (medians; wins over each
control with the sign test; the share of concepts above all of them, the bar is 75%; a
configuration measured on several seeds, ``<name>_seed<n>`` beside ``<name>``, also pooled) and
``results.png`` (the generated medians as bars, the controls as markers).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from pathlib import Path

from weightgen.bench.stats import sign_test
from weightgen.study.zero_shot_controls import RIVALS, wins_cell
from weightgen.utils.bar_axes import style_psnr_bars
from weightgen.utils.io import atomic_save_figure, atomic_write_json, atomic_write_text

BAR = 0.75  # issue 24: above every control on at least this share of the new concepts
COLUMNS = ("generated_examples", "examples_ridge", "examples_blend", "examples_nearest", "mean",
           "generated", "text_ridge", "nearest", "trained")


def lever_row(record: dict, held_out_kind: str) -> dict:
    """A configuration's medians and wins on ``held_out_kind`` of its zero-shot split."""
    controls = record["zero_shot"]["summary"]["controls"]
    group = controls["by_kind"][held_out_kind]
    return {"name": record["name"], "note": record["note"], "overrides": record["overrides"],
            "train_seconds": record["train_seconds"], "split": controls["split"],
            "kind": held_out_kind, "concepts": group["concepts"], "median": group["median"],
            "wins": group["wins"]}


def seed_family(name: str) -> str:
    """A configuration's name without its ``_seed<n>`` suffix: the seeds of one configuration."""
    return re.sub(r"_seed\d+$", "", name)


def pooled_over_seeds(rows: Sequence[dict]) -> list[dict]:
    """One row per configuration measured on more than one seed: the seeds' mean medians, their
    wins and losses summed (one pair per concept and seed) with the sign test redone, and the
    count above all summed over ``seeds x concepts``."""
    families: dict[str, list[dict]] = {}
    for row in rows:
        families.setdefault(seed_family(row["name"]), []).append(row)
    pooled = []
    for family, seeds in families.items():
        if len(seeds) < 2:
            continue
        first = seeds[0]
        wins = {}
        for generated, rivals in first["wins"].items():
            wins[generated] = {"above_all": sum(s["wins"][generated]["above_all"] for s in seeds)}
            for rival in rivals:
                if rival == "above_all":
                    continue
                won = sum(s["wins"][generated][rival]["wins"] for s in seeds)
                lost = sum(s["wins"][generated][rival]["losses"] for s in seeds)
                wins[generated][rival] = {"wins": won, "losses": lost,
                                          "p_value": sign_test(won, lost)}
        pooled.append({
            "name": f"{family} ({len(seeds)} seeds)",
            "note": f"pooled: {', '.join(s['name'] for s in seeds)}",
            "overrides": first["overrides"],
            "train_seconds": statistics.mean(s["train_seconds"] for s in seeds),
            "split": first["split"], "kind": first["kind"],
            "concepts": sum(s["concepts"] for s in seeds),
            "median": {k: statistics.mean(s["median"][k] for s in seeds) for k in first["median"]
                       if all(k in s["median"] for s in seeds)},  # a column every seed scored
            "wins": wins, "seeds": [s["name"] for s in seeds]})
    return pooled


def controls_table(records: Sequence[dict], out_dir: str | Path,
                   held_out_kind: str = "new") -> Path:
    """Write results.{json,md,png} for the configurations measured so far; return results.md."""
    out = Path(out_dir)
    rows = [lever_row(r, held_out_kind) for r in records]
    pooled = pooled_over_seeds(rows)
    atomic_write_json(out / "results.json", {"kind": held_out_kind, "bar": BAR,
                                             "configurations": rows, "pooled_over_seeds": pooled})
    splits = sorted({r["split"] for r in rows})
    lines = [f"# Generator configurations against the controls: {held_out_kind} concepts of the "
             f"{' / '.join(splits)} split", "",
             "Median zero-shot GAN PSNR (dB). Wins: concepts above the control / below it (sign-"
             f"test p). Above all: the share above every control at once (the bar: "
             f"{BAR:.0%}).", "",
             "| configuration | n | " + " | ".join(COLUMNS) + " | text + examples vs ridge | "
             "text + examples above all | text only vs text ridge | text only above all | "
             "train s |",
             "|---|---|" + "---|" * (len(COLUMNS) + 5)]
    for row in [*rows, *pooled]:
        medians = [f"{row['median'][c]:.2f}" if c in row["median"] else "—" for c in COLUMNS]
        lines.append(f"| `{row['name']}` | {row['concepts']} | " + " | ".join(medians)
                     + f" | {_versus(row, 'generated_examples', 'examples_ridge')}"
                     + f" | {_above_all(row, 'generated_examples')}"
                     + f" | {_versus(row, 'generated', 'text_ridge')}"
                     + f" | {_above_all(row, 'generated')} | {row['train_seconds']:.0f} |")
    if pooled:
        lines += ["", "Rows named `(n seeds)` pool a configuration's seeds: mean medians, wins and "
                  "losses summed over concepts x seeds (the sign test redone), n counts "
                  "concepts x seeds."]
    lines += ["", "Each configuration's overrides:", ""]
    lines += [f"- `{row['name']}`: {row['note']} (`{' '.join(row['overrides'])}`)" for row in rows]
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    _plot(rows, out / "results.png")
    return out / "results.md"


def _versus(row: dict, generated: str, rival: str) -> str:
    won = row["wins"].get(generated, {}).get(rival)
    return "—" if won is None else wins_cell(won)


def _above_all(row: dict, generated: str) -> str:
    if generated not in row["wins"]:
        return "—"
    above = row["wins"][generated]["above_all"]
    share = above / row["concepts"]
    return f"{above} of {row['concepts']} ({share:.0%}){' **met**' if share >= BAR else ''}"


def _plot(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = range(len(rows))
    fig, axes = plt.subplots(1, len(RIVALS), figsize=(max(8.0, 1.2 * len(rows) + 5), 4.2))
    markers = {"examples_ridge": "r_", "examples_blend": "m^", "text_ridge": "r_", "mean": "kx",
               "trained": "g*"}
    for ax, (generated, rivals) in zip(axes, RIVALS.items(), strict=True):
        ax.bar(x, [r["median"].get(generated, 0.0) for r in rows], color="tab:blue",
               label=generated)
        for rival in (*rivals, "trained"):
            ax.plot(x, [r["median"].get(rival) for r in rows], markers[rival], markersize=14,
                    label=rival)
        ax.set_title(f"{generated} ({rows[0]['kind']} concepts, median)", fontsize=9)
        style_psnr_bars(ax, [r["name"] for r in rows],
                        min(min(r["median"].values()) for r in rows) - 2)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
