"""Which starts to average (issue 24): every equal-weight mean of the generator's adapter and the
controls', and of the controls' alone, zero-shot on the new concepts of each configuration.

    WEIGHTGEN_ARTIFACTS=... .venv/bin/python experiments/scaling/ensemble.py \
        [--configs experiments/scaling/speedups.yaml] [--only NAME ...] [--combos GRB RB ...]
        [--threads N] [--table-only]

Each configuration of the configs file (run.py's entries: a trained generator and its split) is
scored on the new concepts of its ``bench.split``: the members (the text + examples generator,
the ridge map and the knn blend on the pairs, the ridge map on the sentence vector, the mean),
each made once as its init makes it, then every subset of two or more averaged
(``weightgen.finetune.ensemble.mean_state``; ``--combos``: only these, e.g. the two chosen on
the validation split, on the test split). The generator's subsets and the controls' alone get
the same grid, so each side's best is chosen with the same budget. One JSON per
configuration in ``ensemble/``; the table pools each training-set size's seeds (the mean of the
seeds' medians; "above": concept-seeds above the ridge map, the knn blend and the mean at once,
issue 24's bar).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import statistics
from pathlib import Path

from weightgen.finetune.ensemble import mean_state
from weightgen.stages.artifacts import scoring_tools
from weightgen.stages.bench import split_concepts
from weightgen.utils.io import atomic_write_json, atomic_write_text

HERE = Path(__file__).resolve().parent
OUT = HERE / "ensemble"
# Short names of the members (table columns), generator first.
MEMBERS = {"G": "generated_examples", "R": "examples_ridge", "B": "examples_blend",
           "T": "text_ridge", "M": "mean"}
AVERAGED = "GRBT"  # the mean is a member only as a control of the bar, never averaged
BAR = ("R", "B", "M")  # issue 24: above the ridge map, the knn blend and the mean at once


def combinations() -> list[str]:
    """Every subset of two or more of the averaged members, the generator's first."""
    subsets = ["".join(c) for n in range(2, len(AVERAGED) + 1)
               for c in itertools.combinations(AVERAGED, n)]
    return sorted(subsets, key=lambda c: ("G" not in c, len(c), c))


def run_module():
    """experiments/generalisation/run.py (its configuration reading and workspaces)."""
    spec = importlib.util.spec_from_file_location(
        "generalisation_run", HERE.parent / "generalisation" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def score(entry: dict, run, combos: list[str]) -> list[dict]:
    """One row per new concept of the entry's split: each member's PSNR and each of ``combos``'."""
    ws = run.workspace(entry)
    evaluator, inits = scoring_tools(ws)
    rows = []
    for concept in split_concepts(ws):
        if concept.kind != "new":
            continue
        states = {short: inits.get(kind, concept).state for short, kind in MEMBERS.items()}
        row = {"concept": concept.id, "split": concept.split}
        row |= {short: evaluator.quality(concept, state).psnr for short, state in states.items()}
        for combo in combos:
            row[combo] = evaluator.quality(concept, mean_state([states[m] for m in combo])).psnr
        rows.append(row)
    return rows


def table(records: dict[str, dict]) -> str:
    """Per split and training-set size (seeds pooled): each member's and mean's median and its
    count above the bar's controls."""
    by_size: dict[tuple[str, int], list[list[dict]]] = {}
    for record in records.values():
        by_size.setdefault((record["split"], record["train_concepts"]), []).append(record["rows"])
    columns = [*MEMBERS, *[c for c in combinations()
                           if any(c in r for rec in records.values() for r in rec["rows"])]]
    lines = ["# Ensembles of starts, zero-shot on new concepts", "",
             "Median GAN PSNR (dB; the mean of the seeds' medians), then the concept-seeds "
             "above the ridge map (R), the knn blend (B) and the mean (M) at once. G: the text + "
             "8 pairs generator; T: the ridge map on the sentence vector; a name of several "
             "letters: the mean of those adapters.", "",
             "| split | train concepts | seeds | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for (split, size), seeds in sorted(by_size.items()):
        rows = [r for seed in seeds for r in seed]
        cells = []
        for c in columns:
            if not all(c in r for r in rows):
                cells.append("—")
                continue
            median = statistics.mean(statistics.median(r[c] for r in seed) for seed in seeds)
            above = sum(r[c] > max(r[b] for b in BAR) for r in rows)
            cells.append(f"{median:.2f} ({above}/{len(rows)})")
        lines.append(f"| {split} | {size} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, default=HERE / "speedups.yaml")
    parser.add_argument("--only", nargs="+", help="score only these configurations")
    parser.add_argument("--combos", nargs="+", choices=combinations(),
                        help="score only these means (default: every one)")
    parser.add_argument("--threads", type=int, help="torch threads (default: every core)")
    parser.add_argument("--table-only", action="store_true", help="score nothing; tabulate")
    args = parser.parse_args()
    run = run_module()
    entries = run.with_threads(run.read_configs(args.configs), args.threads)
    if not args.table_only:
        for entry in entries:
            path = OUT / f"{entry['name']}.json"
            if (args.only and entry["name"] not in args.only) or path.is_file():
                continue
            ws = run.workspace(entry)
            atomic_write_json(path, {"split": str(ws.cfg.bench.split),
                                     "train_concepts": len(ws.train_concepts)
                                     if ws.cfg.diffusion.data.n_concepts is None
                                     else int(ws.cfg.diffusion.data.n_concepts),
                                     "rows": score(entry, run, args.combos or combinations())})
            print(f"{entry['name']}: scored", flush=True)
    records = {p.stem: json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))}
    atomic_write_text(OUT / "results.md", table(records))
    print(OUT / "results.md")
