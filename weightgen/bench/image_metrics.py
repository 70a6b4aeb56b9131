"""FID/KID and CLIP score of the benchmark's methods on the held-out concepts' validation outputs.

Each method's final outputs on every held-out concept's validation photos form one set, scored
against the same concepts' targets (set distance) and prompts (CLIP score). The targets' own CLIP
score is the reference: what an editor that reproduced every target exactly would get.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open

from weightgen.data.datamodule import images_to_tensor
from weightgen.data.pairs import PairStore
from weightgen.finetune.finetuner import OUTPUTS
from weightgen.metrics.suite import MetricSuite
from weightgen.utils.io import load_safetensors


def has_outputs(samples_file: Path) -> bool:
    """Whether a stored run kept its validation outputs (runs stored before they were kept did not)."""
    if not samples_file.is_file():
        return False
    with safe_open(str(samples_file), framework="pt") as stored:
        return OUTPUTS in stored.keys()


def bench_image_metrics(pair_store: PairStore, suite: MetricSuite, results: list[dict],
                        methods: list[str], samples_file: Callable[[str, str], Path]) -> dict:
    """Scores per method on the pooled held-out set, and what was computed or skipped why."""
    record = suite.describe()
    unseen = [r for r in results if not r["seen"]]
    if not suite.active or not unseen:
        return record
    targets, prompts = [], []
    for result in unseen:
        val_target = pair_store.load(result["concept"]).val_target
        targets.append(images_to_tensor(val_target))
        prompts += [result["prompt"]] * len(val_target)
    targets = torch.cat(targets)
    by_method = {}
    for method in methods:
        outputs = torch.cat([
            images_to_tensor(load_safetensors(samples_file(r["concept"], method))[OUTPUTS].numpy())
            for r in unseen
        ])
        by_method[method] = suite.score(outputs, targets, prompts)
    return record | {
        "images": len(targets),
        "concepts": [r["concept"] for r in unseen],
        "by_method": by_method,
        "targets": suite.clip(targets, prompts),
    }
