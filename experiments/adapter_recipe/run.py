"""Cheaper weight data: which adapter recipe reaches today's final PSNR in fewer steps?

Each recipe in ``recipes.yaml`` trains the adapters of the same probe concepts (one shard of the
run's sorted concepts) from the same base and pairs, into a probe run of its own
(``<run_name>_recipe_<name>``, sharing the run's ``base`` and ``pairs``), with the dataset
builder's own path (``weightgen-dataset builder.stage=adapters``). The table gives, per recipe,
the median final PSNR, its paired difference from the reference recipe (wins / losses over the
probe concepts), the median fit seconds per adapter and the adapters per hour that makes on this
machine (both recipes' workers share it the same way). Resumable: a probe run's store keeps its
finished adapters, so a rerun only reports.

    WEIGHTGEN_ARTIFACTS=... .venv/bin/python experiments/adapter_recipe/run.py \\
        experiment=bench run_name=bench273 concepts.n_train=null [--shard 0/38]

Writes ``results.json``, ``results.md`` and ``results.png`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from weightgen.cli.app import compose_workspace  # noqa: E402
from weightgen.stages.dataset import build_weight_dataset  # noqa: E402
from weightgen.stages.dataset_adapters import adapter_report, shard_order  # noqa: E402
from weightgen.utils.io import atomic_save_figure, atomic_write_json, atomic_write_text  # noqa: E402
from weightgen.weights.store import Shard  # noqa: E402

HERE = Path(__file__).resolve().parent


def probe_overrides(run_overrides: list[str], run_dir: Path, recipe: dict, shard: str) -> list[str]:
    """A probe run of ``recipe`` beside the run: its own store, the run's base and pairs."""
    name = [o for o in run_overrides if o.startswith("run_name=")][-1].split("=", 1)[1]
    return [*run_overrides, f"run_name={name}_recipe_{recipe['name']}",
            f"paths.base_dir={run_dir}/base", f"paths.pairs_dir={run_dir}/pairs",
            "builder.stage=adapters", f"builder.shard={shard}", "progress=false", "logger=csv",
            *recipe["overrides"]]


def final_psnr(summary: dict) -> float:
    return summary["checkpoints"][max(summary["checkpoints"], key=int)]["psnr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="the run's overrides (run_name=... required)")
    parser.add_argument("--shard", default="0/38", help="the probe concepts: one shard i/n")
    parser.add_argument("--recipes", type=Path, default=HERE / "recipes.yaml")
    args = parser.parse_args()
    spec = yaml.safe_load(args.recipes.read_text())
    run_ws = compose_workspace(args.overrides)
    concepts = [c.id for c in Shard.parse(args.shard).select(shard_order(run_ws))]
    results = {"concepts": concepts, "reference": spec["reference"], "recipes": {}}
    for recipe in spec["recipes"]:
        ws = compose_workspace(probe_overrides(args.overrides, run_ws.run_dir, recipe, args.shard))
        build_weight_dataset(ws)
        summaries = {c: json.loads(adapter_report(ws, c).read_text()) for c in concepts}
        results["recipes"][recipe["name"]] = {
            "note": recipe["note"], "overrides": recipe["overrides"],
            "steps": int(ws.cfg.builder.adapter_steps),
            "final_psnr": {c: final_psnr(s) for c, s in summaries.items()},
            "curves": {c: {int(k): v["psnr"] for k, v in s["checkpoints"].items()}
                       for c, s in summaries.items()},
            "seconds": {c: s["seconds"] for c, s in summaries.items()},
        }
    summarise(results)
    atomic_write_json(HERE / "results.json", results)
    atomic_write_text(HERE / "results.md", markdown(results))
    plot(results, HERE / "results.png")
    print(markdown(results))


def summarise(results: dict) -> None:
    """Per recipe: median final PSNR, paired difference from the reference, seconds, per hour."""
    reference = results["recipes"][results["reference"]]
    for recipe in results["recipes"].values():
        diffs = [recipe["final_psnr"][c] - reference["final_psnr"][c] for c in results["concepts"]]
        seconds = statistics.median(recipe["seconds"].values())
        recipe["summary"] = {
            "median_final_psnr": statistics.median(recipe["final_psnr"].values()),
            "median_difference_db": statistics.median(diffs),
            "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs),
            "median_seconds": seconds,
            "speed_vs_reference": statistics.median(reference["seconds"].values()) / seconds,
        }


def markdown(results: dict) -> str:
    lines = [f"Probe concepts ({len(results['concepts'])}): {', '.join(results['concepts'])}. "
             f"Reference: `{results['reference']}`.", "",
             "| recipe | steps | median final PSNR (dB) | vs reference (median, wins-losses) | "
             "median fit s per adapter | adapters per unit time vs reference |",
             "|---|---|---|---|---|---|"]
    for name, recipe in results["recipes"].items():
        s = recipe["summary"]
        lines.append(f"| `{name}`: {recipe['note']} | {recipe['steps']} | "
                     f"{s['median_final_psnr']:.2f} | {s['median_difference_db']:+.2f} "
                     f"({s['wins']}-{s['losses']}) | {s['median_seconds']:.1f} | "
                     f"{s['speed_vs_reference']:.2f}x |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Median PSNR over the probe concepts at each checkpoint, per recipe."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, recipe in results["recipes"].items():
        steps = sorted({s for curve in recipe["curves"].values() for s in curve})
        axes.plot(steps, [statistics.median(c[s] for c in recipe["curves"].values())
                          for s in steps], marker="o", label=name)
    axes.set(xlabel="adapter step", ylabel="median validation PSNR (dB)",
             title="adapter recipes on the probe concepts")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    atomic_save_figure(figure, path)


if __name__ == "__main__":
    main()
