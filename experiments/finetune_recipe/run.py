"""Which fine-tune recipe suits which init? The same grid of recipes for every method, chosen on
the validation split (issue 23 #5).

    .venv/bin/python experiments/finetune_recipe/run.py [--methods M ...] [--split val]
        [--recipes FILE] [--overrides KEY=VALUE ...] [--variant NAME KEY=VALUE ...]
        [--out DIR] [--table-only]

Each (method, recipe) of ``recipes.yaml`` is a ``weightgen-bench`` run of ``experiment=bench``
with ``bench.methods=[pix2pix_scratch, <method>]`` and ``bench.recipes={<method>: <recipe>}`` on
every held-out concept of ``--split`` (``bench.split``; ``val``: the validation concepts, the
only place choices are made), into ``artifacts/bench/recipes/<split>/<recipe>``. Methods
(default: every method of the preset's ``bench.methods`` that fine-tunes an adapter) go one at a
time through the whole grid, E2GAN and the headline first, so an interrupted grid has whole
methods chosen. pix2pix (its own schedule: it sets the target) trains once and is copied into the
other recipes' folders; the bench resumes any run whose stored settings match, so a rerun
continues where it stopped. Output: ``results.{json,md}`` in ``--out`` (default: here; per method
and recipe: concepts at the target, median seconds and steps to it over those that reached it,
PSNR at step 0 and at the end) and ``chosen.yaml``: per method measured with the whole grid, the
recipe with the most concepts at the target, then the fewest median steps, then seconds (steps
first: the recipes of one method cost the same per step, and steps do not depend on the
machine's load). ``conf/experiment/bench.yaml``'s ``bench.recipes`` copies the default
``chosen.yaml`` (a test keeps them equal); a bench method not yet through the grid has no recipe
there.

``--variant NAME OVERRIDES...`` (repeatable) measures every method that starts from a generator
again under each variant's overrides (e.g. its seeds: one seed's choice can reverse on the test
concepts), into ``recipes/<split>/<NAME>/<recipe>``; a row pools the concepts of every variant.
A method whose start needs no generator (E2GAN, the mean) is the same under each, so it runs
under the first only. Rows are re-read from ``--out`` before each is written, so two processes
with different ``--methods`` can fill one grid side by side.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from pathlib import Path

import yaml

from weightgen.bench.methods import BASELINE, EXAMPLE_CONTROLS, METHODS, REFERENCE
from weightgen.cli.app import compose_workspace
from weightgen.stages.bench import offer_stored_runs, run_benchmark
from weightgen.stages.workspace import Workspace
from weightgen.utils.io import atomic_write_json, atomic_write_text

HERE = Path(__file__).resolve().parent


def hydra_value(value) -> str:
    """A nested dict of numbers as a Hydra override value: {optimizer:{lr:0.0001}}."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def fine_tuned_methods(overrides: list[str]) -> list[str]:
    """The bench preset's methods that fine-tune an adapter (all but pix2pix from scratch):
    E2GAN, the headline and the controls that see its example pairs first."""
    bench = compose_workspace(["experiment=bench", *overrides]).cfg.bench
    first = [BASELINE, bench.headline, *EXAMPLE_CONTROLS]
    return [m for m in dict.fromkeys([*first, *bench.methods])
            if m in bench.methods and METHODS[m].init is not None]


def workspace(method: str, entry: dict, split: str, extra: list[str],
              variant: str = "") -> Workspace:
    """The bench of one (method, recipe) on every held-out concept of ``split``, composed and
    checked as the commands do; it headlines ``method``. ``bench.recipes`` is set to null first
    so that the recipe replaces the preset's recipes (a Hydra override of a dict merges into it,
    and refuses keys it lacks). A variant's runs get a folder of their own."""
    recipe = [f"bench.recipes={hydra_value({method: entry['recipe']})}"] if entry["recipe"] else []
    folder = "/".join(part for part in (split, variant, entry["name"]) if part)
    overrides = ["experiment=bench", "logger=csv", *extra, f"bench.split={split}",
                 "bench.n_unseen=null", f"bench.methods=[{REFERENCE},{method}]",
                 f"bench.headline={method}", "bench.recipes=null", *recipe,
                 f"paths.bench_dir=${{paths.run_dir}}/recipes/{folder}"]
    return compose_workspace(overrides)


def measured_variants(method: str, variants: list[list[str]]) -> list[list[str]]:
    """The variants a method runs under: all of them if its start needs a generator, else the
    first (the variants move the generator; nothing else of its run)."""
    return variants if METHODS[method].needs_generator else variants[:1]


def measure(method: str, entry: dict, split: str, extra: list[str], variants: list[list[str]],
            first_bench_dir: Path | None) -> tuple[list[dict], Path]:
    """The bench of one (method, recipe) under each of its variants ([name, *overrides])."""
    results = []
    for name, *overrides in measured_variants(method, variants):
        ws = workspace(method, entry, split, [*extra, *overrides], name)
        bench_dir = Path(ws.cfg.paths.bench_dir)
        if first_bench_dir is not None:  # pix2pix's schedule is every recipe's: it trains once
            offer_stored_runs(first_bench_dir, bench_dir, [REFERENCE])
        run_benchmark(ws)
        first_bench_dir = first_bench_dir or bench_dir
        results.append(json.loads((bench_dir / split / "results.json").read_text()))
    return results, first_bench_dir


def row(method: str, entry: dict, results: list[dict], split: str) -> dict:
    """One (method, recipe): the new concepts of every variant's bench, pooled."""
    records = [c["methods"][method] for one in results for c in one["concepts"] if not c["seen"]]
    reached = [r for r in records if r["seconds_to_target"] is not None]
    return {"method": method, "recipe": entry["name"], "overrides": entry["recipe"],
            "split": split, "variants": len(results), "concepts": len(records),
            "reached": len(reached),
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
        if {r["recipe"] for r in measured} >= names:  # rows hold only the grid's recipes
            choice[method] = copy.deepcopy(best(measured)["overrides"])  # no YAML aliases
    return choice


def table(rows: list[dict], recipes: list[dict]) -> str:
    """One line per (method, recipe); "best" marks the choice of a method the whole grid
    measured (a method partway through it has no choice yet)."""
    lines = ["| method | recipe | reached (of n) | median s to target | median steps | "
             "PSNR at step 0 / at the end | best |",
             "|---|---|---|---|---|---|---|"]
    choice = chosen(rows, recipes)
    winners = [best([r for r in rows if r["method"] == m]) for m in choice]
    for r in rows:
        seconds = "—" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.1f}"
        steps = "—" if r["steps_to_target"] is None else f"{r['steps_to_target']:g}"
        mark = "**best**" if any(r is w for w in winners) else ""
        lines.append(f"| {r['method']} | `{r['recipe']}` | {r['reached']} (of {r['concepts']}) | "
                     f"{seconds} | {steps} | {r['zero_shot_psnr']:.2f} / {r['final_psnr']:.2f} "
                     f"| {mark} |")
    return "\n".join(lines) + "\n"


def stored_rows(out: Path, recipes: list[dict]) -> list[dict]:
    """The rows ``out`` holds for the grid's recipes (rows of recipes no longer in it go)."""
    grid = {entry["name"] for entry in recipes}
    results = out / "results.json"
    return [r for r in json.loads(results.read_text())["rows"] if r["recipe"] in grid
            ] if results.is_file() else []


def write(rows: list[dict], recipes: list[dict], split: str, out: Path) -> None:
    """results.{json,md} and chosen.yaml in ``out``, rows in the registry's and the grid's order."""
    grid = [entry["name"] for entry in recipes]
    rows = sorted(rows, key=lambda r: (list(METHODS).index(r["method"]), grid.index(r["recipe"])))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", {"split": split, "rows": rows})
    atomic_write_text(out / "results.md", table(rows, recipes))
    atomic_write_text(out / "chosen.yaml",
                      "# Each method's best recipe on the validation split, for methods the whole "
                      "grid measured (run.py writes this; the configs that fine-tune with this "
                      "grid's choices copy it, and a test keeps them equal)\n"
                      + yaml.safe_dump(chosen(rows, recipes), sort_keys=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", help="default: the bench's fine-tuned methods")
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--overrides", nargs="*", default=[], help="more config overrides")
    parser.add_argument("--variant", nargs="+", action="append", metavar="NAME_THEN_OVERRIDES",
                        help="a name and overrides (repeatable): generated starts run under each")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="where results.{json,md} and chosen.yaml go (default: here)")
    parser.add_argument("--recipes", type=Path, default=HERE / "recipes.yaml")
    parser.add_argument("--table-only", action="store_true",
                        help="measure nothing; rewrite results.md and chosen.yaml")
    args = parser.parse_args()
    entries = yaml.safe_load(args.recipes.read_text())
    methods = args.methods or fine_tuned_methods(args.overrides)
    first = None
    for method in [] if args.table_only else methods:
        for entry in entries:
            measured, first = measure(method, entry, args.split, args.overrides,
                                      args.variant or [[""]], first)
            rows = [r for r in stored_rows(args.out, entries)
                    if (r["method"], r["recipe"]) != (method, entry["name"])]
            write([*rows, row(method, entry, measured, args.split)], entries, args.split, args.out)
    write(stored_rows(args.out, entries), entries, args.split, args.out)
