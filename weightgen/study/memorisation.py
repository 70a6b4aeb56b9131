"""Does the generator copy its training data? Weight-space distances of generated adapters.

For each generated adapter (train and held-out prompts): the L2 distance to the nearest training
checkpoint and which concept that checkpoint belongs to. The yardstick is the spread of the
training data itself: for each training concept, the distance from its final adapter to the
nearest checkpoint of a *different* concept. A generated adapter far closer to one training
checkpoint than training concepts are to each other is a copy. For held-out concepts it also
scores that nearest training adapter in the GAN: is the generated adapter better than the
training adapter it sits next to?
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch

from weightgen.concepts.spec import Concept
from weightgen.finetune.inits import InitSources
from weightgen.gan.adapter_evaluator import AdapterEvaluator
from weightgen.weights.store import WeightStore


def flatten(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """An adapter as one float64 vector, tensors in sorted-name order."""
    return torch.cat([state[name].reshape(-1).double() for name in sorted(state)])


def memorisation_report(evaluator: AdapterEvaluator, inits: InitSources, store: WeightStore,
                        rows: list[dict], concepts: Sequence[Concept]) -> dict:
    """Distances of generated adapters for ``concepts`` to the training checkpoints ``rows``
    (every checkpoint of every training concept, sorted by (concept, step))."""
    checkpoints = torch.stack([flatten(store.load(r)) for r in rows])
    owners = [r["concept"] for r in rows]
    finals = {r["concept"]: i for i, r in enumerate(rows)}  # rows sorted by step: last wins
    between = []
    for concept, index in finals.items():
        others = [i for i, owner in enumerate(owners) if owner != concept]
        if others:
            between.append(float((checkpoints[others] - checkpoints[index]).norm(dim=1).min()))
    report = []
    for concept in concepts:
        state = inits.generated(concept.prompt).state
        distances = (checkpoints - flatten(state)).norm(dim=1)
        nearest = int(distances.argmin())
        row = {"concept": concept.id, "split": concept.split,
               "nearest_distance": float(distances[nearest]), "nearest_concept": owners[nearest]}
        if concept.split == "train":  # a held-out concept has no checkpoint of its own
            row["nearest_is_own"] = owners[nearest] == concept.id
        else:
            row["generated_psnr"] = evaluator.quality(concept, state).psnr
            row["nearest_checkpoint_psnr"] = evaluator.quality(concept, store.load(rows[nearest])).psnr
        report.append(row)
    between_median = statistics.median(between) if between else None
    summary = {"between_concepts_median": between_median}
    for split in ("train", "test"):
        split_rows = [r for r in report if r["split"] == split]
        if not split_rows:
            continue
        median = statistics.median(r["nearest_distance"] for r in split_rows)
        summary[f"{split}/nearest_distance_median"] = median
        summary[f"{split}/distance_ratio"] = median / between_median if between_median else None
    summary["train/nearest_is_own"] = sum(r.get("nearest_is_own", False) for r in report)
    tests = [r for r in report if r["split"] == "test"]
    summary["test/beats_nearest_checkpoint"] = sum(
        r["generated_psnr"] > r["nearest_checkpoint_psnr"] for r in tests)
    summary["test/count"] = len(tests)
    return {"summary": summary, "concepts": report}
