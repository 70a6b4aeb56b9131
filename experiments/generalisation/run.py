"""Train and score every generator configuration in configs.yaml; write the table and the plot.

    .venv/bin/python experiments/generalisation/run.py [--only NAME ...] [--table-only] [--bench]

Each configuration is composed as `experiment=bench` + its overrides (the real configs), trained
by the generator stage and scored by the zero-shot table; a configuration whose folder already
holds a zero_shot.json counts as measured and is skipped (delete the file to measure it again).
With --bench it also fine-tunes from each selected configuration's generated init on the
benchmark's held-out concepts (`weightgen-bench` with methods pix2pix_scratch, e2gan_lora,
denoised_init into <generator folder>/bench; the pix2pix and standard-init runs of the main
benchmark are reused: they do not depend on the generator), for time and steps to target.
Writes results.{json,md} and results.png beside this file.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir

from weightgen.cli.app import CONFIG_DIR, CONFIG_NAME
from weightgen.stages.bench import run_benchmark
from weightgen.stages.train_generator import train_weight_generator
from weightgen.stages.workspace import Workspace
from weightgen.stages.zero_shot import zero_shot_report
from weightgen.study.generalisation import generalisation_table

HERE = Path(__file__).resolve().parent
GENERATOR_FILES = ("denoiser.safetensors", "generator.json", "tokenizer.safetensors")


BENCH_METHODS = "bench.methods=[pix2pix_scratch,e2gan_lora,denoised_init]"
REUSED_METHODS = ("pix2pix_scratch", "e2gan_lora")


def overrides(entry: dict) -> list[str]:
    """experiment=bench + the entry's overrides (after its source's, for a sampling variant)."""
    source = next((e for e in CONFIGS if e["name"] == entry.get("sampling_of")), {})
    return ["experiment=bench", "num_threads=1", "logger=csv", *source.get("overrides", []),
            *entry["overrides"],
            f"paths.generator_dir=${{paths.run_dir}}/generalisation/{entry['name']}",
            "paths.bench_dir=${paths.generator_dir}/bench", BENCH_METHODS]


def workspace(entry: dict) -> Workspace:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return Workspace(compose(CONFIG_NAME, overrides=overrides(entry)))


def bench(entry: dict) -> None:
    """Fine-tune from the entry's generated init; reuse the main bench's generator-free runs."""
    ws = workspace(entry)
    main_runs = Path(ws.cfg.paths.run_dir) / "bench" / "runs"
    for method in REUSED_METHODS:
        for run in main_runs.glob(f"*/{method}.*"):
            target = Path(ws.cfg.paths.bench_dir) / "runs" / run.parent.name / run.name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(run, target)
    run_benchmark(ws)


def folder(entry: dict) -> Path:
    return Path(workspace(entry).cfg.paths.generator_dir)


def measure(entry: dict) -> None:
    ws = workspace(entry)
    target = Path(ws.cfg.paths.generator_dir)
    if (target / "zero_shot.json").is_file():
        return  # measured already: delete its zero_shot.json (or folder) to measure again
    if "sampling_of" in entry:
        source = folder(next(e for e in CONFIGS if e["name"] == entry["sampling_of"]))
        target.mkdir(parents=True, exist_ok=True)
        for name in GENERATOR_FILES:
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
            "zero_shot": json.loads((measured / "zero_shot.json").read_text()),
            "bench": json.loads(bench_results.read_text()) if bench_results.is_file() else None}


CONFIGS = yaml.safe_load((HERE / "configs.yaml").read_text())

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="measure only these configurations")
    parser.add_argument("--bench", action="store_true",
                        help="also fine-tune from the selected configurations' generated inits")
    parser.add_argument("--table-only", action="store_true",
                        help="measure nothing; tabulate the configurations measured so far")
    args = parser.parse_args()
    names = set() if args.table_only else set(args.only or [e["name"] for e in CONFIGS])
    unknown = names - {e["name"] for e in CONFIGS}
    if unknown:
        parser.error(f"unknown configurations {sorted(unknown)}; see configs.yaml")
    for entry in CONFIGS:
        if entry["name"] in names:
            measure(entry)
            if args.bench:
                bench(entry)
    records = [r for r in map(record, CONFIGS) if r is not None]
    generalisation_table(records, HERE)
