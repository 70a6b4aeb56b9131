"""Which fine-tune recipe suits which init? The same grid of recipes for every method, chosen on
the validation split (issue 23 #5).

    .venv/bin/python experiments/finetune_recipe/run.py [--methods M ...] [--split val]
        [--recipes FILE] [--overrides KEY=VALUE ...] [--table-only]

Each recipe of ``recipes.yaml`` is one ``weightgen-bench`` run of ``experiment=bench`` on every
held-out concept of ``--split`` (``bench.split``; ``val``: the validation concepts, the only
place choices are made) in which **every** method of ``--methods`` (default: the preset's
``bench.methods`` that fine-tune an adapter) fine-tunes with that recipe, into
``artifacts/bench/recipes/<split>/<recipe>``. pix2pix (its own schedule: it sets the target) runs
once and is copied into the other recipes' folders; the bench resumes any run whose stored
settings match, so an interrupted grid continues where it stopped. Output: ``results.{json,md}``
here (per method and recipe: concepts at the target, median seconds and steps to it over those
that reached it, PSNR at step 0 and at the end) and ``chosen.yaml``: per method the recipe with
the most concepts at the target, then the fewest median steps, then seconds (steps first: the
recipes of one method cost the same per step, and steps do not depend on the machine's load).
``conf/experiment/bench.yaml``'s ``bench.recipes`` is ``chosen.yaml`` (a test checks it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import yaml

from weightgen.bench.methods import METHODS, REFERENCE
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


def fine_tuned_methods(overrides: list[str]) -> list[str]:
    """The bench preset's methods that fine-tune an adapter (all but pix2pix from scratch)."""
    cfg = compose_workspace(["experiment=bench", *overrides]).cfg
    return [m for m in cfg.bench.methods if METHODS[m].init is not None]


def workspace(methods: list[str], entry: dict, split: str, extra: list[str]) -> Workspace:
    """The bench of one recipe for every method of ``methods``, composed and checked as the
    commands do. ``bench.recipes`` is set to null first so that the recipe replaces the preset's
    recipes (a Hydra override of a dict merges into it, and refuses keys it lacks)."""
    recipes = ([f"bench.recipes={hydra_value({m: entry['recipe'] for m in methods})}"]
               if entry["recipe"] else [])
    headline = compose_workspace(["experiment=bench", *extra]).cfg.bench.headline
    overrides = ["experiment=bench", "logger=csv", *extra, f"bench.split={split}",
                 "bench.n_unseen=null", f"bench.methods=[{','.join([REFERENCE, *methods])}]",
                 f"bench.headline={headline if headline in methods else methods[0]}",
                 "bench.recipes=null", *recipes,
                 f"paths.bench_dir=${{paths.run_dir}}/recipes/{split}/{entry['name']}"]
    return compose_workspace(overrides)


def copy_reference_runs(source: Path, target: Path) -> None:
    """pix2pix's stored runs (and their validation outputs) from another recipe's bench folder:
    its schedule is the same in every recipe, so it trains once."""
    for run in (source / "runs").glob(f"*/{REFERENCE}.*"):
        copy = target / "runs" / run.parent.name / run.name
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run, copy)


def measure(methods: list[str], entry: dict, split: str, extra: list[str],
            first_bench_dir: Path | None) -> tuple[dict, Path]:
    ws = workspace(methods, entry, split, extra)
    bench_dir = Path(ws.cfg.paths.bench_dir)
    if first_bench_dir is not None:
        copy_reference_runs(first_bench_dir, bench_dir)
    run_benchmark(ws)
    return json.loads((bench_dir / split / "results.json").read_text()), bench_dir


def row(method: str, entry: dict, results: dict, split: str) -> dict:
    records = [c["methods"][method] for c in results["concepts"] if not c["seen"]]
    reached = [r for r in records if r["seconds_to_target"] is not None]
    return {"method": method, "recipe": entry["name"], "overrides": entry["recipe"],
            "split": split, "concepts": len(records), "reached": len(reached),
            "seconds_to_target": statistics.median(r["seconds_to_target"] for r in reached)
            if reached else None,
            "steps_to_target": statistics.median(r["steps_to_target"] for r in reached)
            if reached else None,
            "zero_shot_psnr": statistics.median(r["zero_shot_psnr"] for r in records),
            "final_psnr": statistics.median(r["final_psnr"] for r in records)}


def best(rows: list[dict]) -> dict:
    """Most concepts at the target, then the fewest median steps (then seconds)."""
    return min(rows, key=lambda r: (-r["reached"], r["steps_to_target"] or float("inf"),
                                    r["seconds_to_target"] or float("inf")))


def chosen(rows: list[dict], recipes: list[dict]) -> dict[str, dict | None]:
    """Each method's best recipe, for methods measured with every recipe of the grid."""
    names = {entry["name"] for entry in recipes}
    choice = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        measured = [r for r in rows if r["method"] == method]
        if {r["recipe"] for r in measured} >= names:
            choice[method] = best([r for r in measured if r["recipe"] in names])["overrides"]
    return choice


def table(rows: list[dict]) -> str:
    lines = ["| method | recipe | reached (of n) | median s to target | median steps | "
             "PSNR at step 0 / at the end | best |",
             "|---|---|---|---|---|---|---|"]
    winners = [best([r for r in rows if r["method"] == m])
               for m in dict.fromkeys(r["method"] for r in rows)]
    for r in rows:
        seconds = "—" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.1f}"
        steps = "—" if r["steps_to_target"] is None else f"{r['steps_to_target']:g}"
        mark = "**best**" if any(r is w for w in winners) else ""
        lines.append(f"| {r['method']} | `{r['recipe']}` | {r['reached']} (of {r['concepts']}) | "
                     f"{seconds} | {steps} | {r['zero_shot_psnr']:.2f} / {r['final_psnr']:.2f} "
                     f"| {mark} |")
    return "\n".join(lines) + "\n"


def write(rows: list[dict], recipes: list[dict], split: str) -> None:
    """results.{json,md} and chosen.yaml, rows in the registry's and the grid's order."""
    grid = [entry["name"] for entry in recipes]
    rows = sorted(rows, key=lambda r: (list(METHODS).index(r["method"]), grid.index(r["recipe"])))
    atomic_write_json(HERE / "results.json", {"split": split, "rows": rows})
    atomic_write_text(HERE / "results.md", table(rows))
    atomic_write_text(HERE / "chosen.yaml",
                      "# Each method's best recipe on the validation split (run.py writes this; "
                      "conf/experiment/bench.yaml's bench.recipes copies it)\n"
                      + yaml.safe_dump(chosen(rows, recipes), sort_keys=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", help="default: the bench's fine-tuned methods")
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--overrides", nargs="*", default=[], help="more config overrides")
    parser.add_argument("--recipes", type=Path, default=HERE / "recipes.yaml")
    parser.add_argument("--table-only", action="store_true",
                        help="measure nothing; rewrite results.md and chosen.yaml")
    args = parser.parse_args()
    entries = yaml.safe_load(args.recipes.read_text())
    results = HERE / "results.json"
    grid = {entry["name"] for entry in entries}  # rows of recipes no longer in the grid go
    rows = [r for r in json.loads(results.read_text())["rows"] if r["recipe"] in grid
            ] if results.is_file() else []
    methods = args.methods or fine_tuned_methods(args.overrides)
    first = None
    for entry in [] if args.table_only else entries:
        measured, bench_dir = measure(methods, entry, args.split, args.overrides, first)
        first = first or bench_dir
        rows = [r for r in rows if (r["method"], r["recipe"]) not in
                {(m, entry["name"]) for m in methods}]
        rows += [row(m, entry, measured, args.split) for m in methods]
        write(rows, entries, args.split)
    write(rows, entries, args.split)
