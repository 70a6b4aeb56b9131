"""Train and score every generator configuration in a configs file; write the table and the plot.

    .venv/bin/python experiments/generalisation/run.py [--configs FILE] [--only NAME ...]
        [--threads N] [--table-only] [--bench [--generated METHOD ...] [--reused METHOD ...]]

``--configs`` (default ``configs.yaml``, the issue-8 configurations) names the YAML list to
measure; its table goes to the folder named after the file (``configs.yaml``: this folder;
``levers.yaml``: ``levers/``). A file whose ``table`` is ``controls`` (issue 24's levers) is
tabulated against the controls that see the generator's inputs, on the new concepts of its
``bench.split`` (``weightgen.study.controls_table``); any other, by the generalisation table.

Each configuration is composed as `experiment=bench` + its overrides (the real configs), trained
by the generator stage and scored by the zero-shot table; a configuration whose folder already
holds a zero_shot.json counts as measured and is skipped (delete the file to measure it again).
With --bench it also fine-tunes from each selected configuration's generated init(s) on the
benchmark's held-out concepts (`weightgen-bench` into <generator folder>/bench), beside the
generator-free methods (``--reused``: by default every one; ``--generated``: by default the
text-only init and, with example pairs, the text + examples one). Every stored run of the main
benchmark is offered to it and reused where its settings still hold (pix2pix, E2GAN and the
ceiling always; a control only on the same training concepts), for time and steps to target and
the per-concept comparisons.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml

from weightgen.bench.methods import METHODS, REFERENCE, TEXT_ONLY, WITH_EXAMPLES
from weightgen.cli.app import compose_workspace
from weightgen.stages.bench import offer_stored_runs, run_benchmark
from weightgen.stages.train_generator import train_weight_generator
from weightgen.stages.workspace import Workspace
from weightgen.stages.zero_shot import zero_shot_report
from weightgen.study.controls_table import controls_table
from weightgen.study.generalisation import generalisation_table
from weightgen.study.scaling_curve import scaling_table

HERE = Path(__file__).resolve().parent
EXAMPLES_FILE = "examples.safetensors"
GENERATOR_FILES = ("denoiser.safetensors", "generator.json", "tokenizer.safetensors",
                   EXAMPLES_FILE)


# Every method that does not start from generated weights: by default benchmarked beside the
# generated inits, reused from the main bench where its stored run still holds.
REUSED_METHODS = tuple(m.name for m in METHODS.values() if not m.needs_generator)


def overrides(entry: dict, generated: tuple[str, ...] | None = None,
              reused: tuple[str, ...] | None = None) -> list[str]:
    """experiment=bench + the entry's overrides (after its source's, for a sampling variant);
    the bench headlines the text-only method, which the table's speed-up columns are about, or,
    where it does not run (``--generated``), the first generated one (the headline must be one of
    ``bench.methods``)."""
    source = entry.get("source", {})
    reused = REUSED_METHODS if reused is None else reused
    methods = bench_methods(entry, generated, reused)
    headline = TEXT_ONLY if TEXT_ONLY in methods else methods[len(reused)]
    return ["experiment=bench", "logger=csv", *entry.get("base", []),
            *source.get("overrides", []), *entry["overrides"],
            f"paths.generator_dir=${{paths.run_dir}}/generalisation/{entry['name']}",
            "paths.bench_dir=${paths.generator_dir}/bench",
            f"bench.methods=[{','.join(methods)}]", f"bench.headline={headline}"]


def bench_methods(entry: dict, generated: tuple[str, ...] | None = None,
                  reused: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The generator-free methods (``reused``, by default all of them) and the entry's generated
    init(s) (``generated``, or by default the text-only method and, with example pairs, the
    text + examples one)."""
    knobs = [*entry.get("source", {}).get("overrides", []), *entry["overrides"]]
    examples = [o for o in knobs if o.startswith("diffusion.examples.k=")]
    if generated is None:
        generated = (TEXT_ONLY,) + ((WITH_EXAMPLES,) if examples
                                    and examples[-1] != "diffusion.examples.k=0" else ())
    return (REUSED_METHODS if reused is None else tuple(reused)) + tuple(generated)


def workspace(entry: dict, generated: tuple[str, ...] | None = None,
              reused: tuple[str, ...] | None = None) -> Workspace:
    """The entry's workspace, composed and checked as the commands do."""
    return compose_workspace(overrides(entry, generated, reused))


def bench(entry: dict, generated: tuple[str, ...] | None = None,
          reused: tuple[str, ...] | None = None) -> None:
    """Fine-tune from the entry's generated init(s) beside the generator-free methods. Every
    stored run of the main bench is offered to this one; the bench reuses those whose settings
    still hold (pix2pix, E2GAN, the ceiling; a control on the same training set, a generated
    init of the same generator) and reruns the rest."""
    ws = workspace(entry, generated, reused)
    offer_stored_runs(Path(ws.cfg.paths.run_dir) / "bench", Path(ws.cfg.paths.bench_dir),
                      ws.cfg.bench.methods)
    run_benchmark(ws)


def folder(entry: dict) -> Path:
    return Path(workspace(entry).cfg.paths.generator_dir)


def measure(entry: dict) -> None:
    ws = workspace(entry)
    target = Path(ws.cfg.paths.generator_dir)
    if (target / "zero_shot.json").is_file():
        return  # measured already: delete its zero_shot.json (or folder) to measure again
    if "sampling_of" in entry:
        source = folder(entry["source"])
        target.mkdir(parents=True, exist_ok=True)
        for name in GENERATOR_FILES:
            if (source / name).is_file() or name != EXAMPLES_FILE:  # examples: with pairs only
                shutil.copy2(source / name, target / name)
    else:
        train_weight_generator(ws)
    zero_shot_report(ws)


def record(entry: dict) -> dict | None:
    """The configuration's measured results, or None if it was not measured yet."""
    measured = folder(entry)
    if not (measured / "zero_shot.json").is_file():
        return None
    training = json.loads((measured / "generator.json").read_text())["training"]
    bench_results = measured / "bench" / "results.json"
    return {"name": entry["name"], "note": entry["note"], "overrides": entry["overrides"],
            "sampling_of": entry.get("sampling_of"), "train_seconds": training["seconds"],
            "train_concepts": training["concepts"],
            "zero_shot": json.loads((measured / "zero_shot.json").read_text()),
            "bench": json.loads(bench_results.read_text()) if bench_results.is_file() else None}


TABLES = {"controls": controls_table, "scaling": scaling_table}


def table_of(path: Path):
    """The table a configs file is written as: ``table: controls`` (the lever table), ``table:
    scaling`` (it and the curve over training-set sizes) or the generalisation table."""
    entries = yaml.safe_load(path.read_text())
    kind = entries.get("table") if isinstance(entries, dict) else None
    return TABLES.get(kind, generalisation_table)


def read_configs(path: Path) -> list[dict]:
    """The configurations of a file; a sampling variant carries its source entry along.

    A file is a list of configurations, or ``{base: [...], configurations: [...]}``: then every
    configuration's overrides come after ``base`` (which pins the knobs the table is about, so
    that a later change of the bench preset does not change what an entry means)."""
    entries = yaml.safe_load(path.read_text())
    if isinstance(entries, dict):
        entries = [e | {"base": entries["base"]} for e in entries["configurations"]]
    by_name = {e["name"]: e for e in entries}
    return [e | {"source": by_name[e["sampling_of"]]} if "sampling_of" in e else e
            for e in entries]


def with_threads(configs: list[dict], threads: int | None) -> list[dict]:
    """Each configuration run on ``threads`` torch threads (``num_threads``, after its base):
    without it a process takes every core, and two runs side by side oversubscribe the machine,
    which inflates their seconds (their steps too can move: a thread count changes float sums)."""
    if threads is None:
        return configs
    return [e | {"base": [*e.get("base", []), f"num_threads={threads}"]} for e in configs]


def output_folder(configs: Path) -> Path:
    """Where a configs file's table goes: this folder for its configs.yaml, else a folder named
    after the file beside it (experiments/scaling/against_controls.yaml: .../against_controls/)."""
    configs = configs.resolve()
    return HERE if configs == HERE / "configs.yaml" else configs.parent / configs.stem


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, default=HERE / "configs.yaml",
                        help="the YAML list of configurations (default: configs.yaml)")
    parser.add_argument("--only", nargs="+", help="measure only these configurations")
    parser.add_argument("--bench", action="store_true",
                        help="also fine-tune from the selected configurations' generated inits")
    parser.add_argument("--generated", nargs="+",
                        help=f"with --bench: only these generated methods (default: {TEXT_ONLY} "
                             f"and, with example pairs, {WITH_EXAMPLES})")
    parser.add_argument("--reused", nargs="+", choices=REUSED_METHODS,
                        help=f"with --bench: only these generator-free methods (default: all; "
                             f"{REFERENCE} first, it sets the target)")
    parser.add_argument("--threads", type=int,
                        help="torch threads per run (default: every core; set it when two runs "
                             "share the machine)")
    parser.add_argument("--table-only", action="store_true",
                        help="measure nothing; tabulate the configurations measured so far")
    args = parser.parse_args()
    configs = with_threads(read_configs(args.configs), args.threads)
    names = set() if args.table_only else set(args.only or [e["name"] for e in configs])
    unknown = names - {e["name"] for e in configs}
    if unknown:
        parser.error(f"unknown configurations {sorted(unknown)}; see configs.yaml")
    for entry in configs:
        if entry["name"] in names:
            measure(entry)
            if args.bench:
                bench(entry, tuple(args.generated) if args.generated else None,
                      tuple(args.reused) if args.reused else None)
    records = [r for r in map(record, configs) if r is not None]
    if not records:
        parser.error(f"no configuration of {args.configs} has been measured under this artifacts "
                     f"root yet, so there is no table to write: run without --table-only first")
    out = output_folder(args.configs)
    out.mkdir(exist_ok=True)
    table_of(args.configs)(records, out)
