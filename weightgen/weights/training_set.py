"""Which stored adapters count as weight-generator training data.

One rule serves the generator's training and the cheap initialisations built from the same data
(mean, nearest), so a control never sees adapters the generator did not: the train-split
concepts of the weight store, in the workspace's concept order, optionally only the first
``diffusion.data.n_concepts`` of them (the scaling study's knob), and of those either every
stored checkpoint or only the last (``diffusion.data.checkpoints``).
"""

from __future__ import annotations

from weightgen.errors import ConfigError, IncompleteStoreError
from weightgen.weights.freshness import check_rows_current
from weightgen.workspace import Workspace

CHECKPOINT_CHOICES = ("all", "last")


def training_concept_ids(ws: Workspace) -> list[str]:
    """Train concepts with adapters in the store: workspace order first, the rest sorted."""
    stored = {r["concept"] for r in ws.weight_store.rows() if r["split"] == "train"}
    if not stored:
        raise IncompleteStoreError("the weight store has no train adapters; run `make dataset` first")
    ordered = [c.id for c in ws.train_concepts if c.id in stored]
    ordered += sorted(stored - set(ordered))
    limit = ws.cfg.diffusion.data.get("n_concepts")
    if limit is None:
        return ordered
    if not isinstance(limit, int) or not 1 <= limit <= len(ordered):
        raise ConfigError(
            f"diffusion.data.n_concepts={limit!r}: use null or an int in 1..{len(ordered)} "
            f"(the store has {len(ordered)} train concepts)"
        )
    return ordered[:limit]


def training_rows(ws: Workspace, checkpoints: str | None = None) -> list[dict]:
    """Store rows of the training concepts, sorted by (concept, step).

    ``checkpoints`` defaults to ``diffusion.data.checkpoints``; ``last`` keeps one row per concept.
    Rows trained on another base or other pairs than the run's now are refused.
    """
    which = ws.cfg.diffusion.data.checkpoints if checkpoints is None else checkpoints
    if which not in CHECKPOINT_CHOICES:
        raise ConfigError(f"diffusion.data.checkpoints={which!r}: use one of {CHECKPOINT_CHOICES}")
    concepts = set(training_concept_ids(ws))
    store = ws.weight_store
    rows = store.rows() if which == "all" else store.final_rows()
    return check_rows_current(ws, sorted((r for r in rows if r["concept"] in concepts),
                                         key=lambda r: (r["concept"], r["step"])))
