"""Where a concept's adapter starts: every initialisation the benchmark compares, in one place.

* ``standard``   the adapter's own initialisation (LoRA B = 0, full delta = 0): the base output;
                 ``e2gan_lora`` fine-tunes from it.
* ``mean``       the mean of the training concepts' final adapters (a cheap control).
* ``nearest``    the final adapter of the training concept whose prompt is closest to this one
                 (cosine of pooled text embeddings; a cheap control).
* ``trained``    the concept's own trained adapter from the weight store: the ceiling, the best
                 any generator can do with this data (the store trains held-out concepts too;
                 only the generator's training data leaves them out).
* ``generated``  one-step output of the weight generator for the concept's prompt (ours).
* ``shuffled``   the generator's output for another concept's prompt (does the text matter?).
* ``generated_examples``  the output of a generator trained with example pairs
                 (``diffusion.examples.k > 0``) for the concept's prompt and k of the pairs its
                 fine-tune trains on (a fixed seeded choice: reruns are identical).
                 ``generated`` stays text only (the paper's setting), so both can be compared.

``generated``/``shuffled``/``generated_examples`` carry their generation seconds (for
``generated_examples`` the encoding of its pairs too); the others cost nothing to make.
:data:`INITS` maps each kind to the function that makes it; a benchmark method names its kind in
``weightgen.bench.methods``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from weightgen.concepts.spec import Concept
from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.condition import Condition
from weightgen.diffusion.examples import PairEncoder, fixed_choice
from weightgen.errors import ConfigError, IncompleteStoreError
from weightgen.text.base import TextEncoder
from weightgen.weights.store import WeightStore


@dataclass
class AdapterInit:
    kind: str
    state: dict[str, torch.Tensor]
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


class InitSources:
    """Builds any :data:`INITS` initialisation for a concept.

    ``train_rows`` returns the final store rows of the generator's training concepts (the
    controls' data), ``final_rows`` the last row of every concept in the store; both only rows
    trained on the run's base and pairs of now. They are called on first use, so inits that need
    no store work without one. ``example_pairs(concept_id)`` gives the uint8 (sources, targets)
    a concept's fine-tune trains on and ``pair_encoder()`` the base GAN's encoder of them; only
    ``generated_examples`` calls them (the encoder once).
    """

    def __init__(self, store: WeightStore, train_rows: Callable[[], list[dict]],
                 final_rows: Callable[[], list[dict]], text_encoder: TextEncoder,
                 standard_state: dict[str, torch.Tensor],
                 generator: WeightGenerator | None = None, sampling: dict | None = None,
                 example_pairs: Callable[[str], tuple[np.ndarray, np.ndarray]] | None = None,
                 pair_encoder: Callable[[], PairEncoder] | None = None):
        self.store, self.text_encoder = store, text_encoder
        self._read_train_rows, self._read_final_rows = train_rows, final_rows
        self.standard_state = standard_state
        self.generator = generator
        self.sampling = dict(sampling or {})
        self._example_pairs, self._make_pair_encoder = example_pairs, pair_encoder

    @cached_property
    def _final_rows(self) -> dict[str, dict]:
        """The last checkpoint of every concept in the store (trained on the run's base and pairs)."""
        return {row["concept"]: row for row in self._read_final_rows()}

    @cached_property
    def _train_rows(self) -> list[dict]:
        """Final adapters of the generator's training concepts: the controls' data."""
        return self._read_train_rows()

    @cached_property
    def _mean(self) -> dict[str, torch.Tensor]:
        states = [self.store.load(r) for r in self._train_rows]
        return {k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]}

    def nearest_train_concept(self, concept: Concept) -> tuple[str, float]:
        """(concept id, cosine) of the training prompt closest to ``concept``'s, itself excluded."""
        rows, similarity = self._similarities(concept)
        best = int(similarity.argmax())
        return rows[best]["concept"], float(similarity[best])

    def require_trained(self, concepts: list[Concept], method: str | None = None) -> None:
        """Every concept has its own adapter in the store, or an error listing those without
        (``method``: the bench method that asks, named in the fix)."""
        missing = [c.id for c in concepts if c.id not in self._final_rows]
        if missing:
            drop = f" or drop {method} from bench.methods" if method else ""
            raise IncompleteStoreError(
                f"the weight store at {self.store.root} has no trained adapter for "
                f"{', '.join(missing)}; the 'trained' init (the bench's ceiling) needs each "
                f"concept's own adapter: build the store for this run's concepts (`make dataset`, "
                f"weightgen-dataset with the same concepts.* settings){drop}"
            )

    def _similarities(self, concept: Concept) -> tuple[list[dict], torch.Tensor]:
        """Other train concepts and the cosine of their prompts to ``concept``'s."""
        rows = [r for r in self._train_rows if r["concept"] != concept.id]
        if not rows:
            raise ConfigError(
                f"nearest/shuffled inits need a train concept other than {concept.id!r}; "
                f"the store has none"
            )
        pooled = self.text_encoder.encode([r["prompt"] for r in rows] + [concept.prompt]).pooled
        return rows, torch.nn.functional.cosine_similarity(pooled[:-1], pooled[-1:], dim=-1)

    def shuffled_prompt(self, concept: Concept) -> str:
        """A fixed wrong prompt: that of the training concept least similar to this one."""
        rows, similarity = self._similarities(concept)
        return rows[int(similarity.argmin())]["prompt"]

    def generated(self, prompt: str, kind: str = "generated") -> AdapterInit:
        """The generator's adapter for any prompt, sampled with this run's sampling settings."""
        if self.generator is None:
            raise ConfigError(
                f"init '{kind}' needs a trained weight generator; train one with `make generator`"
            )
        result = self.generator.generate(Condition.of_text(self.text_encoder.encode([prompt])),
                                         **self.sampling)
        return AdapterInit(kind, result.state, result.seconds, {"prompt": prompt})

    @cached_property
    def _pair_encoder(self) -> PairEncoder:
        return self._make_pair_encoder()

    def require_examples(self, method: str | None = None) -> None:
        """A generator trained with example pairs is loaded, or an error naming the fix
        (``method``: the bench method that asks)."""
        if self.generator is None or self.generator.example_standardiser is None:
            what = ("no weight generator is loaded" if self.generator is None else
                    "the weight generator was trained without example pairs")
            drop = f" or drop {method} from bench.methods" if method else ""
            raise ConfigError(
                f"init 'generated_examples' needs a weight generator trained with example pairs, "
                f"but {what}; train one with weightgen-train-generator diffusion.examples.k=8 "
                f"(and run with the same diffusion.examples.k){drop}"
            )
        if self._example_pairs is None or self._make_pair_encoder is None:
            raise ConfigError("init 'generated_examples' needs the concept's pairs and the base "
                              "GAN's encoder: build the inits with stages.artifacts.default_inits")

    def generated_examples(self, concept: Concept, prompt: str | None = None) -> AdapterInit:
        """The generator's adapter for the concept's prompt (or ``prompt``: another wording) and
        k of its training pairs; the seconds include encoding the pairs (reading them from the
        pair cache excluded)."""
        prompt = concept.prompt if prompt is None else prompt
        self.require_examples()
        sources, targets = self._example_pairs(concept.id)
        k = self.generator.examples_k
        picked = fixed_choice(len(sources), k, int(self.sampling.get("seed", 0)))
        start = time.perf_counter()
        features = self._pair_encoder.features(sources[picked], targets[picked])
        vector = self.generator.example_standardiser.example_vector(features)
        encoding = time.perf_counter() - start
        condition = Condition.of_text(self.text_encoder.encode([prompt]), vector.unsqueeze(0))
        result = self.generator.generate(condition, **self.sampling)
        return AdapterInit("generated_examples", result.state, encoding + result.seconds,
                           {"prompt": prompt, "example_pairs": picked,
                            "encoding_seconds": encoding})

    def standard(self, concept: Concept) -> AdapterInit:
        return AdapterInit("standard", {k: v.clone() for k, v in self.standard_state.items()})

    def mean(self, concept: Concept) -> AdapterInit:
        return AdapterInit("mean", {k: v.clone() for k, v in self._mean.items()},
                           info={"concepts": len(self._train_rows)})

    def nearest(self, concept: Concept) -> AdapterInit:
        nearest, cosine = self.nearest_train_concept(concept)
        return AdapterInit("nearest", self.store.load(self._final_rows[nearest]),
                           info={"concept": nearest, "cosine": cosine})

    def trained(self, concept: Concept) -> AdapterInit:
        self.require_trained([concept])
        return AdapterInit("trained", self.store.load(self._final_rows[concept.id]))

    def shuffled(self, concept: Concept) -> AdapterInit:
        return self.generated(self.shuffled_prompt(concept), "shuffled")

    def get(self, kind: str, concept: Concept) -> AdapterInit:
        """The init ``kind`` of :data:`INITS` for ``concept``."""
        if kind not in INITS:
            raise ConfigError(f"unknown init {kind!r}; use one of {', '.join(INITS)}")
        return INITS[kind](self, concept)


# Init kind -> what makes it for a concept. A new kind is one entry here; the bench method that
# starts from it is one entry in weightgen/bench/methods.py.
INITS: dict[str, Callable[[InitSources, Concept], AdapterInit]] = {
    "standard": InitSources.standard,
    "mean": InitSources.mean,
    "nearest": InitSources.nearest,
    "trained": InitSources.trained,
    "generated": lambda sources, concept: sources.generated(concept.prompt),
    "shuffled": InitSources.shuffled,
    "generated_examples": InitSources.generated_examples,
}
