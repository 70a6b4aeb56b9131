"""Stored adapters are only served while the base, pairs and texts they were trained from are
the run's.

A concept edited under the same id gets new pairs (``weightgen-pairs``) or new texts (its prompt
or phrasings in the concept file); until ``weightgen-dataset`` trains its adapter again, the
store still holds the adapter (and the texts) of the old concept. Stages that read the store
(generator training, the mean/nearest/trained inits) refuse such rows instead of serving them
under the new prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from weightgen.errors import StaleArtifactError
from weightgen.weights.store import inputs_mismatch


def check_rows_current(rows: list[dict], base_sha256: str,
                       pair_fingerprints: Mapping[str, str | None],
                       text_fingerprints: Mapping[str, str],
                       store_root: str | Path) -> list[dict]:
    """``rows`` unchanged if each records the run's base (``base_sha256``, its generator's), its
    concept's pairs of now (``pair_fingerprints``: concept -> the pair store's fingerprint) and
    its concept's texts of now (``text_fingerprints``: concept -> the run's concept's; a concept
    the run does not hold is not judged on its texts)."""
    by_concept: dict[str, list[dict]] = {}
    for row in rows:
        by_concept.setdefault(row["concept"], []).append(row)
    stale = {}
    for concept, concept_rows in by_concept.items():
        inputs = {"base_sha256": base_sha256, "pairs_sha256": pair_fingerprints.get(concept)}
        if concept in text_fingerprints:
            inputs["texts_sha256"] = text_fingerprints[concept]
        why = inputs_mismatch(concept_rows, inputs)
        if why:
            stale[concept] = why
    if stale:
        sample = dict(list(sorted(stale.items()))[:5])
        raise StaleArtifactError(
            f"the weight store {store_root} holds adapters of {len(stale)} concepts "
            f"trained on another base GAN, other pairs or other texts than this run's now "
            f"(concept: what differs, e.g. {sample}); rerun weightgen-dataset: it trains them "
            f"again"
        )
    return rows
