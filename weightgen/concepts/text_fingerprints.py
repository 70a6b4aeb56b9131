"""Fingerprints of the texts a model learns from, recorded beside the pairs' fingerprint.

The pairs' fingerprint (:func:`weightgen.data.pairs.concept_fingerprint`) covers what a concept's
targets depend on, its recipe or instruction; the texts are another input. The base GAN and each
adapter are conditioned on a concept's prompt; a weight-store row also hands the concept's
phrasings and held-out phrasing to the weight generator, which learns from the phrasings and
must never see the held-out one. Each artifact records a fingerprint of the texts it learned
from, so a prompt or phrasing edited under the same concept id is refused or trained again like
an edited recipe, without rendering the pairs again:

* the base GAN, per train concept, of :data:`PROMPT` (it reads nothing else, so a new phrasing
  does not retrain it);
* each store row, of :data:`CONCEPT_TEXTS` (the prompt its adapter learned from and the texts
  the row serves);
* the weight generator, its training rows' fingerprints (``identity.texts_sha256``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from weightgen.concepts.spec import Concept
from weightgen.utils.io import sha256_bytes

PROMPT = ("prompt",)
CONCEPT_TEXTS = ("prompt", "phrasings", "heldout_phrasing")


def texts_fingerprint(concept: Concept, fields: tuple[str, ...] = CONCEPT_TEXTS) -> str:
    """sha256 of the concept's ``fields`` (texts): equal exactly when those texts are."""
    texts = {name: getattr(concept, name) for name in fields}
    return sha256_bytes(json.dumps(texts, sort_keys=True).encode())


def texts_fingerprints(concepts: Iterable[Concept],
                       fields: tuple[str, ...] = CONCEPT_TEXTS) -> dict[str, str]:
    """Concept id -> :func:`texts_fingerprint` of each of ``concepts``."""
    return {concept.id: texts_fingerprint(concept, fields) for concept in concepts}


def changed_texts(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """The concepts whose ``recorded`` texts fingerprint differs from ``now`` (a concept the
    run no longer has is not judged here: the run holds no texts to compare with)."""
    return sorted(c for c, sha in recorded.items() if c in now and now[c] != sha)
