"""The committed bench results (run before issue 23's protocol) split by kind of held-out concept.

    .venv/bin/python experiments/bench/old_split/add_by_kind.py experiments/bench/old_split/results.json

Each concept's row is rebuilt with today's ``bench.summary.concept_result`` from the curves the
old bench stored, its kind (new or paraphrase) taken from the built-in catalogue, and today's
``summarise`` writes ``summary.by_kind``, ``heldout_kinds`` and ``headline_kind`` into the file.
The old summary's other figures stay as the old bench wrote them. The stored curves come from the
old clock (evaluations every 10 steps, no controls, recipes chosen on these concepts), so these
figures are the old runs split apart, not a run of the new protocol: ``summary.by_kind_source``
says so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from weightgen.bench.methods import WITH_EXAMPLES
from weightgen.bench.summary import concept_result, summarise
from weightgen.concepts.catalog import builtin_concepts
from weightgen.finetune.finetuner import MethodRun
from weightgen.utils.io import atomic_write_json

HEADLINE = WITH_EXAMPLES  # the old bench preset's best measured method
SOURCE = ("the committed runs of the bench before issue 23 (evaluations every 10 steps, no "
          "controls, recipes chosen on these concepts), rows rebuilt by "
          "experiments/bench/old_split/add_by_kind.py with today's summary code")


def rebuilt_row(row: dict, concept) -> dict:
    """A concept's row from its stored runs, with today's figures (kind, one-step floor)."""
    runs = {method: MethodRun(method, row["concept"], run["curve"], run["init_seconds"],
                              run["train_seconds_total"], run["info"])
            for method, run in row["methods"].items()}
    return concept_result(concept, runs, row["target_psnr"], row["pix2pix_plateau"],
                          tuple(float(t) for t in next(iter(row["methods"].values()))
                                ["psnr_at_seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    path = parser.parse_args().results
    payload = json.loads(path.read_text())
    concepts = {concept.id: concept for concept in builtin_concepts()}
    rows = [rebuilt_row(row, concepts[row["concept"]]) for row in payload["concepts"]]
    split = summarise(rows, payload["config"]["methods"], HEADLINE)
    payload["summary"] |= {key: split[key] for key in ("headline_kind", "heldout_kinds", "by_kind")}
    payload["summary"]["by_kind_source"] = SOURCE
    atomic_write_json(path, payload)
    for kind, figures in split["by_kind"].items():
        print(f"{kind} ({split['heldout_kinds'][kind]}): {HEADLINE} "
              f"{figures['speedup_vs_e2gan']} vs E2GAN, {figures['speedup_vs_pix2pix']} vs "
              f"pix2pix, zero-shot {figures['zero_shot_psnr'][HEADLINE]:.2f} dB")


if __name__ == "__main__":
    main()
