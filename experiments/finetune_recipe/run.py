"""Which fine-tune recipe suits which init? The same grid of recipes for every method.

    .venv/bin/python experiments/finetune_recipe/run.py [--methods M ...] [--concepts N]
        [--generator DIR] [--overrides KEY=VALUE ...] [--recipes FILE] [--table-only]

Each (method, recipe) of ``recipes.yaml`` is a ``weightgen-bench`` run of ``experiment=bench``
with ``bench.methods=[pix2pix_scratch, <method>]``, ``bench.recipes={<method>: <recipe>}`` and
the first ``--concepts`` held-out concepts, into ``artifacts/bench/recipes/<method>/<recipe>``.
Runs the main benchmark (and ``--generator``'s bench folder) already holds are copied in first;
the bench reuses those whose stored settings match (pix2pix always; the default recipe's runs),
so only the new recipes train. ``--generator`` is the weight generator that ``denoised_init``
starts from (default: the bench's); ``--overrides`` are the configuration it was trained with
(e.g. ``diffusion.conditioning=pooled``). Rows measured before stay in the table. Output: ``results.{json,md}`` here: per method and recipe,
the median time and steps to target over the concepts and how many reached it; the best recipe
per method is the one with the fewest median steps to target among those that reach it on the
most concepts (steps, not seconds: the recipes of one method cost the same per step, and steps do
not depend on the machine's load, which varies between these runs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import yaml

from weightgen.bench.methods import BASELINE, METHODS, REFERENCE, TEXT_ONLY
from weightgen.cli.app import compose_workspace
from weightgen.stages.bench import run_benchmark
from weightgen.stages.workspace import Workspace
from weightgen.utils.io import atomic_write_json, atomic_write_text

HERE = Path(__file__).resolve().parent


def hydra_value(value) -> str:
    """A nested dict of numbers as a Hydra override value: {optimizer:{lr:0.0001}}."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def workspace(method: str, entry: dict, concepts: int, generator: str | None,
              extra: list[str]) -> Workspace:
    """The bench of one (method, recipe), composed and checked as the commands do; it headlines
    ``method`` (the headline must be one of ``bench.methods``). ``bench.recipes`` is set to null
    first so that the recipe replaces the preset's recipes (a Hydra override of a dict merges
    into it, and refuses keys it lacks)."""
    recipe = [f"bench.recipes={hydra_value({method: entry['recipe']})}"] if entry["recipe"] else []
    overrides = ["experiment=bench", "logger=csv", *extra, f"bench.n_unseen={concepts}",
                 f"bench.methods=[{REFERENCE},{method}]", f"bench.headline={method}",
                 "bench.recipes=null", *recipe,
                 f"paths.bench_dir=${{paths.run_dir}}/recipes/{method}/{entry['name']}"]
    if generator:
        overrides.append(f"paths.generator_dir={generator}")
    return compose_workspace(overrides)


def copy_runs(sources: list[Path], target: Path, methods: list[str]) -> None:
    """Stored runs of ``methods`` from the ``sources`` bench folders (the bench refuses any whose
    settings differ from this run's and reruns it)."""
    for source in sources:
        for method in methods:
            for run in (source / "runs").glob(f"*/{method}.*"):
                copy = target / "runs" / run.parent.name / run.name
                if not copy.exists():
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(run, copy)


def measure(method: str, entry: dict, concepts: int, generator: str | None,
            extra: list[str]) -> dict:
    ws = workspace(method, entry, concepts, generator, extra)
    bench_dir = Path(ws.cfg.paths.bench_dir)
    sources = [Path(ws.cfg.paths.run_dir) / "bench"]
    if generator:
        sources.append(Path(generator) / "bench")
    copy_runs(sources, bench_dir, [REFERENCE] + ([] if entry["recipe"] else [method]))
    run_benchmark(ws)
    return json.loads((bench_dir / "results.json").read_text())


def row(method: str, entry: dict, results: dict) -> dict:
    records = [c["methods"][method] for c in results["concepts"] if not c["seen"]]
    reached = [r for r in records if r["seconds_to_target"] is not None]
    return {"method": method, "recipe": entry["name"], "overrides": entry["recipe"],
            "concepts": len(records), "reached": len(reached),
            "seconds_to_target": statistics.median(r["seconds_to_target"] for r in reached)
            if reached else None,
            "steps_to_target": statistics.median(r["steps_to_target"] for r in reached)
            if reached else None,
            "zero_shot_psnr": statistics.median(r["zero_shot_psnr"] for r in records),
            "final_psnr": statistics.median(r["final_psnr"] for r in records),
            "speedup_vs_pix2pix": statistics.median(r["speedup_vs_pix2pix"] for r in records)}


def best(rows: list[dict]) -> dict:
    """Most concepts at the target, then the fewest median steps (then seconds)."""
    return min(rows, key=lambda r: (-r["reached"], r["steps_to_target"] or float("inf"),
                                    r["seconds_to_target"] or float("inf")))


def table(rows: list[dict]) -> str:
    lines = ["| method | recipe | reached (of n) | median s to target | median steps | "
             "speed-up vs pix2pix | PSNR at step 0 / at the end | best |",
             "|---|---|---|---|---|---|---|---|"]
    winners = [best([r for r in rows if r["method"] == m])
               for m in dict.fromkeys(r["method"] for r in rows)]
    for r in rows:
        seconds = "—" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.1f}"
        steps = "—" if r["steps_to_target"] is None else f"{r['steps_to_target']:g}"
        mark = "**best**" if any(r is w for w in winners) else ""
        lines.append(f"| {r['method']} | `{r['recipe']}` | {r['reached']} (of {r['concepts']}) | "
                     f"{seconds} | {steps} | {r['speedup_vs_pix2pix']:.2f}x | "
                     f"{r['zero_shot_psnr']:.2f} / {r['final_psnr']:.2f} | {mark} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=[BASELINE, TEXT_ONLY])
    parser.add_argument("--concepts", type=int, default=6, help="first N held-out concepts")
    parser.add_argument("--generator", help="generator folder the generated methods start from")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="config overrides the generator was trained with")
    parser.add_argument("--recipes", type=Path, default=HERE / "recipes.yaml")
    parser.add_argument("--table-only", action="store_true",
                        help="measure nothing; rewrite results.md from results.json")
    args = parser.parse_args()
    entries = yaml.safe_load(args.recipes.read_text())
    results = HERE / "results.json"
    rows = json.loads(results.read_text())["rows"] if results.is_file() else []
    for method in [] if args.table_only else args.methods:
        for entry in entries:
            measured = row(method, entry, measure(method, entry, args.concepts, args.generator,
                                                  args.overrides))
            measured |= {"generator": args.generator if METHODS[method].needs_generator else None,
                         "generator_overrides": args.overrides}
            rows = [r for r in rows if (r["method"], r["recipe"]) != (method, entry["name"])]
            rows.append(measured)
            atomic_write_json(results, {"rows": rows, "concepts": args.concepts})
            atomic_write_text(HERE / "results.md", table(rows))
    atomic_write_text(HERE / "results.md", table(rows))
