"""Which stored adapters, and which texts, count as weight-generator training data.

One rule serves the generator's training and the cheap initialisations built from the same data
(mean, nearest), so a control never sees adapters the generator did not: the train-split
concepts of the weight store, in the workspace's concept order, optionally only the first
``diffusion.data.n_concepts`` of them (the scaling study's knob), and of those either every
stored checkpoint or only the last (``diffusion.data.checkpoints``). A concept that is held out
in this run never counts, whatever split its store rows carry: the store trains held-out
concepts' adapters too (the bench's ceiling), and they must not reach the generator.

The texts (``diffusion.data.phrasings``): ``canonical`` conditions each concept on its prompt
alone; ``all`` on any of the training phrasings its store rows record (one drawn per step). A
held-out phrasing, or any text of a held-out concept, is never a training text.
"""

from __future__ import annotations

from weightgen.errors import ConfigError, IncompleteStoreError, StaleArtifactError
from weightgen.stages.workspace import Workspace
from weightgen.weights.freshness import check_rows_current

CHECKPOINT_CHOICES = ("all", "last")
PHRASING_CHOICES = ("canonical", "all")


def training_concept_ids(ws: Workspace) -> list[str]:
    """Train concepts with adapters in the store: workspace order first, the rest sorted."""
    held_out = {c.id for c in ws.test_concepts}
    stored = {r["concept"] for r in ws.weight_store.rows()
              if r["split"] == "train" and r["concept"] not in held_out}
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


def _held_out_texts(ws: Workspace) -> set[str]:
    """Texts no training concept may be conditioned on: every held-out phrasing and every text
    of a held-out concept, of the workspace's concepts and the store's rows alike."""
    texts = {c.heldout_phrasing for c in ws.concepts if c.heldout_phrasing is not None}
    for concept in ws.test_concepts:
        texts |= set(concept.phrasings)
    for row in ws.weight_store.rows():
        if row.get("heldout_phrasing"):
            texts.add(row["heldout_phrasing"])
        if row["split"] == "test":
            texts |= {row["prompt"], *row.get("phrasings", ())}
    return texts


def training_texts(ws: Workspace, rows: list[dict]) -> dict[str, tuple[str, ...]]:
    """Each training concept of ``rows`` -> the texts the generator may see for it, prompt first.

    ``diffusion.data.phrasings`` picks the prompt alone (``canonical``) or every training
    phrasing its store rows record (``all``).
    """
    mode = ws.cfg.diffusion.data.get("phrasings", "canonical")
    if mode not in PHRASING_CHOICES:
        raise ConfigError(
            f"diffusion.data.phrasings={mode!r}: use one of {', '.join(PHRASING_CHOICES)}"
        )
    texts: dict[str, tuple[str, ...]] = {}
    for row in rows:
        if mode == "canonical":
            texts[row["concept"]] = (row["prompt"],)
        elif "phrasings" not in row:
            raise StaleArtifactError(
                f"the weight store at {ws.weight_store.root} records no phrasings for "
                f"{row['concept']!r} (it was built before stores recorded them); rebuild the store "
                f"(`make dataset`) or train with diffusion.data.phrasings=canonical"
            )
        else:
            texts[row["concept"]] = tuple(row["phrasings"])
    held_out = _held_out_texts(ws)
    leaked = sorted((concept, text) for concept, phrasings in texts.items()
                    for text in phrasings if text in held_out)
    if leaked:
        concept, text = leaked[0]
        raise ConfigError(
            f"training concept {concept!r} has the phrasing {text!r}, which is a held-out "
            f"phrasing or a held-out concept's text ({len(leaked)} such texts); remove it from "
            f"that concept's phrasings in the concept file, so held-out wording stays unseen"
        )
    return texts
