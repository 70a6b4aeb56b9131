"""Which stored adapters, and which texts, count as weight-generator training data.

One rule serves the generator's training and the cheap initialisations built from the same data
(mean, nearest), so a control never sees adapters the generator did not: the train-split
concepts of the weight store, in the order the run's selection picks them
(``Workspace.train_pick_order``: spread over ops and parts), optionally only the first
``n_concepts`` of them (``diffusion.data.n_concepts``, the scaling study's knob: the train set
of ``concepts.n_train=n_concepts``, not a catalogue prefix of single ops), and of those
either every stored checkpoint or only the last (``diffusion.data.checkpoints``). A concept that
is held out in this run never counts, whatever split its store rows carry: the store trains
held-out concepts' adapters too (the bench's ceiling), and they must not reach the generator.

The texts (``diffusion.data.phrasings``): ``canonical`` conditions each concept on its prompt
alone; ``all`` on any of the training phrasings its store rows record (one drawn per step). A
held-out phrasing, or any text of a held-out concept, is never a training text.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from weightgen.concepts.spec import HELD_OUT_SPLITS, Concept
from weightgen.errors import ConfigError, IncompleteStoreError, StaleArtifactError
from weightgen.weights.store import WeightStore

CHECKPOINT_CHOICES = ("all", "last")
PHRASING_CHOICES = ("canonical", "all")


def training_concept_ids(store: WeightStore, run_order: Sequence[str],
                         held_out: Collection[str] = (),
                         n_concepts: int | None = None) -> list[str]:
    """Train concepts with adapters in the store, ``held_out`` ids excluded: ``run_order``
    first, the rest sorted."""
    stored = {r["concept"] for r in store.rows()
              if r["split"] == "train" and r["concept"] not in held_out}
    if not stored:
        raise IncompleteStoreError("the weight store has no train adapters; run `make dataset` first")
    ordered = [c for c in run_order if c in stored]
    ordered += sorted(stored - set(ordered))
    if n_concepts is None:
        return ordered
    if not isinstance(n_concepts, int) or not 1 <= n_concepts <= len(ordered):
        raise ConfigError(
            f"diffusion.data.n_concepts={n_concepts!r}: use null or an int in 1..{len(ordered)} "
            f"(the store has {len(ordered)} train concepts)"
        )
    return ordered[:n_concepts]


def training_rows(store: WeightStore, run_order: Sequence[str], held_out: Collection[str] = (),
                  n_concepts: int | None = None, checkpoints: str = "all") -> list[dict]:
    """Store rows of the training concepts, sorted by (concept, step).

    ``checkpoints``: ``all`` stored checkpoints, or ``last`` (one row per concept).
    """
    if checkpoints not in CHECKPOINT_CHOICES:
        raise ConfigError(
            f"diffusion.data.checkpoints={checkpoints!r}: use one of {CHECKPOINT_CHOICES}"
        )
    concepts = set(training_concept_ids(store, run_order, held_out, n_concepts))
    rows = store.rows() if checkpoints == "all" else store.final_rows()
    return sorted((r for r in rows if r["concept"] in concepts),
                  key=lambda r: (r["concept"], r["step"]))


def held_out_texts(concepts: Sequence[Concept], store: WeightStore) -> set[str]:
    """Texts no training concept may be conditioned on: every held-out phrasing and every text
    of a held-out concept, of the run's ``concepts`` and the store's rows alike."""
    texts = {c.heldout_phrasing for c in concepts if c.heldout_phrasing is not None}
    for concept in concepts:
        if concept.held_out:
            texts |= set(concept.phrasings)
    for row in store.rows():
        if row.get("heldout_phrasing"):
            texts.add(row["heldout_phrasing"])
        if row["split"] in HELD_OUT_SPLITS:
            texts |= {row["prompt"], *row.get("phrasings", ())}
    return texts


def training_texts(rows: list[dict], phrasings: str, held_out: set[str],
                   store_root: str) -> dict[str, tuple[str, ...]]:
    """Each training concept of ``rows`` -> the texts the generator may see for it, prompt first.

    ``phrasings`` (``diffusion.data.phrasings``) picks the prompt alone (``canonical``) or every
    training phrasing its store rows record (``all``); a text in ``held_out`` is an error.
    """
    if phrasings not in PHRASING_CHOICES:
        raise ConfigError(
            f"diffusion.data.phrasings={phrasings!r}: use one of {', '.join(PHRASING_CHOICES)}"
        )
    texts: dict[str, tuple[str, ...]] = {}
    for row in rows:
        if phrasings == "canonical":
            texts[row["concept"]] = (row["prompt"],)
        elif "phrasings" not in row:
            raise StaleArtifactError(
                f"the weight store at {store_root} records no phrasings for "
                f"{row['concept']!r} (it was built before stores recorded them); rebuild the store "
                f"(`make dataset`) or train with diffusion.data.phrasings=canonical"
            )
        else:
            texts[row["concept"]] = tuple(row["phrasings"])
    leaked = sorted((concept, text) for concept, texts_of in texts.items()
                    for text in texts_of if text in held_out)
    if leaked:
        concept, text = leaked[0]
        raise ConfigError(
            f"training concept {concept!r} has the phrasing {text!r}, which is a held-out "
            f"phrasing or a held-out concept's text ({len(leaked)} such texts); remove it from "
            f"that concept's phrasings in the concept file, so held-out wording stays unseen"
        )
    return texts
