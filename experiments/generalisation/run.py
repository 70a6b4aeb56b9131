"""Train and score every generator configuration in configs.yaml; write the table and the plot.

    .venv/bin/python experiments/generalisation/run.py [--only NAME ...] [--table-only]

Each configuration is composed as `experiment=bench` + its overrides (the real configs), trained
by the generator stage (skipped when its folder already holds the same trained generator) and
scored by the zero-shot table (skipped when its zero_shot.json exists: delete it to rescore).
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
from weightgen.diffusion.train import train_weight_generator
from weightgen.diffusion.zero_shot import zero_shot_report
from weightgen.study.generalisation import generalisation_table
from weightgen.workspace import Workspace

HERE = Path(__file__).resolve().parent
GENERATOR_FILES = ("denoiser.safetensors", "generator.json", "tokenizer.safetensors")


def overrides(entry: dict) -> list[str]:
    """experiment=bench + the entry's overrides (after its source's, for a sampling variant)."""
    source = next((e for e in CONFIGS if e["name"] == entry.get("sampling_of")), {})
    return ["experiment=bench", "num_threads=1", "logger=csv", *source.get("overrides", []),
            *entry["overrides"],
            f"paths.generator_dir=${{paths.run_dir}}/generalisation/{entry['name']}"]


def workspace(entry: dict) -> Workspace:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return Workspace(compose(CONFIG_NAME, overrides=overrides(entry)))


def folder(entry: dict) -> Path:
    return Path(workspace(entry).cfg.paths.generator_dir)


def measure(entry: dict) -> None:
    ws = workspace(entry)
    target = Path(ws.cfg.paths.generator_dir)
    if "sampling_of" in entry:
        source = folder(next(e for e in CONFIGS if e["name"] == entry["sampling_of"]))
        target.mkdir(parents=True, exist_ok=True)
        for name in GENERATOR_FILES:
            shutil.copy2(source / name, target / name)
    else:
        train_weight_generator(ws)
    if not (target / "zero_shot.json").is_file():
        zero_shot_report(ws)


def record(entry: dict) -> dict | None:
    """The configuration's measured results, or None if it was not measured yet."""
    measured = folder(entry)
    if not (measured / "zero_shot.json").is_file():
        return None
    training = json.loads((measured / "generator.json").read_text())["training"]
    return {"name": entry["name"], "note": entry["note"], "overrides": entry["overrides"],
            "sampling_of": entry.get("sampling_of"), "train_seconds": training["seconds"],
            "zero_shot": json.loads((measured / "zero_shot.json").read_text())}


CONFIGS = yaml.safe_load((HERE / "configs.yaml").read_text())

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="measure only these configurations")
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
    records = [r for r in map(record, CONFIGS) if r is not None]
    generalisation_table(records, HERE)
