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
* ``generated_examples_only``  the same generator given the pairs and the empty prompt as it
                 learned it (zero tokens, all-False mask, zero pooled vector: prompt dropout's
                 condition, not the text encoder's encoding of ""): what do the pairs alone give?
* ``generated_examples_shuffled``  the concept's prompt with another held-out concept's pairs (a
                 fixed seeded derangement of the run's held-out concepts): do the pairs matter?

Controls that see what the generator sees (``weightgen.finetune.controls``; fitted once, on the
training concepts' final adapters, the rows the generator trains on):

* ``examples_nearest``  the training adapter whose example vector is nearest to the concept's
                 (the same k pairs, encoder and standardisation as ``generated_examples``; a
                 training concept's vector is the mean of its standardised bank, the pairs the
                 generator trained on, recomputed exactly as training encoded them).
* ``examples_blend``  the mean of the ``k_blend`` nearest by example vector.
* ``examples_ridge``  ridge regression from the example vector to the adapter's weights.
* ``text_ridge`` ridge regression from the pooled text vector to the adapter's weights, one row
                 per training phrasing of every training concept (the text-only counterpart);
                 the text as the generator reads it (``generator_text``: ``diffusion.text_view``).
* ``text_examples_ridge``  ridge regression from both of the generator's inputs side by side:
                 one row per training phrasing, its sentence vector beside its concept's example
                 vector, each block divided by its root-mean-square norm over the rows (so that
                 the penalty weighs the two alike); the regression that reads all the generator
                 reads.

The ridge maps choose their alpha on the run's validation concepts when it has some, else by
closed-form leave-one-concept-out; each init's ``info["fit"]`` says which, with the fit's seconds.

Choosing on the pairs the concept comes with (``weightgen.finetune.pairs_choice``):

* ``pairs_choice``  of the candidates ``bench.controls.choice.candidates`` (init kinds; not
                 ``trained``, the concept's own adapter, nor the shuffled controls) and
                 ``bench.controls.choice.samples`` more text + examples generator samples under
                 the next sampling seeds, the one whose base + adapter has the lowest fine-tune
                 reconstruction loss (L1) on the k training pairs the generator reads
                 (:meth:`InitSources.generator_pairs`), never on the concept's validation photos;
                 its seconds are the candidates' own plus the scoring's.

The generated kinds carry their generation seconds (the examples kinds the encoding of their
pairs too), the controls the seconds of their per-concept work (encoding the pairs or the prompt,
the distances or the ridge weights, the weighted sum); the others cost nothing to make.
:data:`INITS` maps each kind to the function that makes it; a benchmark method names its kind in
``weightgen.bench.methods``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np
import torch

from weightgen.concepts.spec import Concept
from weightgen.data.datamodule import images_to_tensor
from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.condition import Condition
from weightgen.diffusion.examples import PairEncoder, bank_features, fixed_choice, fixed_derangement
from weightgen.diffusion.sampler import empty_prompt
from weightgen.errors import ConfigError, IncompleteStoreError
from weightgen.finetune.controls import (
    ControlInputs,
    RidgeControl,
    TrainingAdapters,
    nearest_weights,
)
from weightgen.finetune.ensemble import average
from weightgen.finetune.init_kinds import (
    ENSEMBLE_KEYS,
    check_choice_candidates,
    check_ensemble_members,
)
from weightgen.finetune.pairs_choice import choose_on_pairs, sample_name
from weightgen.gan.pair_loss import PairLoss
from weightgen.text.base import TextEmbedding, TextEncoder
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
    the kinds that read example pairs call them (the encoder once). ``controls``: what the
    controls, the shuffled pairs and the choice on the pairs need besides
    (:class:`~weightgen.finetune.controls.ControlInputs`). ``pair_loss()`` gives the scorer of
    adapters on pairs that ``pairs_choice`` ranks its candidates with (made once, on first use).
    ``generator_text``: the text encoder as the generator reads prompts (its clauses view,
    :mod:`weightgen.text.clauses`), for the generator's inits and ``text_ridge``; by default
    ``text_encoder``, which the GAN and the text-nearest control always read.
    """

    def __init__(self, store: WeightStore, train_rows: Callable[[], list[dict]],
                 final_rows: Callable[[], list[dict]], text_encoder: TextEncoder,
                 standard_state: dict[str, torch.Tensor],
                 generator: WeightGenerator | None = None, sampling: dict | None = None,
                 example_pairs: Callable[[str], tuple[np.ndarray, np.ndarray]] | None = None,
                 pair_encoder: Callable[[], PairEncoder] | None = None,
                 controls: ControlInputs | None = None,
                 pair_loss: Callable[[], PairLoss] | None = None,
                 generator_text: TextEncoder | None = None):
        self.store, self.text_encoder = store, text_encoder
        self.generator_text = text_encoder if generator_text is None else generator_text
        self._read_train_rows, self._read_final_rows = train_rows, final_rows
        self.standard_state = standard_state
        self.generator = generator
        self.sampling = dict(sampling or {})
        self._example_pairs, self._make_pair_encoder = example_pairs, pair_encoder
        self.controls = controls
        self._make_pair_loss = pair_loss
        self._shared_vectors: dict[str, tuple[torch.Tensor, list[int]]] | None = None

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
        result = self.generator.generate(Condition.of_text(self.generator_text.encode([prompt])),
                                         **self.sampling)
        return AdapterInit(kind, result.state, result.seconds, {"prompt": prompt})

    @cached_property
    def _pair_encoder(self) -> PairEncoder:
        return self._make_pair_encoder()

    def require_examples(self, method: str | None = None) -> None:
        """A generator trained with example pairs is loaded, or an error naming the fix
        (``method``: the bench method that asks)."""
        what = method or "an init that reads example pairs"
        if self.generator is None or self.generator.example_standardiser is None:
            loaded = ("no weight generator is loaded" if self.generator is None else
                      "the weight generator was trained without example pairs")
            drop = f" or drop {method} from bench.methods" if method else ""
            raise ConfigError(
                f"{what} needs a weight generator trained with example pairs, "
                f"but {loaded}; train one with weightgen-train-generator diffusion.examples.k=8 "
                f"(and run with the same diffusion.examples.k){drop}"
            )
        if self._example_pairs is None or self._make_pair_encoder is None:
            raise ConfigError(f"{what} needs the concept's pairs and the base GAN's encoder: "
                              f"build the inits with stages.artifacts.default_inits")

    def generator_pairs(self, concept_id: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """The k of the concept's training pairs the generator reads: uint8 (sources, targets)
        and their indices among the training pairs (a fixed seeded choice: reruns are
        identical). Never its validation pairs."""
        self.require_examples()
        sources, targets = self._example_pairs(concept_id)
        picked = fixed_choice(len(sources), self.generator.examples_k,
                              int(self.sampling.get("seed", 0)))
        return sources[picked], targets[picked], picked

    def example_set(self, concept_id: str) -> tuple[torch.Tensor, list[int], float]:
        """The standardised per-pair vectors [k, F] of the k pairs the generator reads
        (:meth:`generator_pairs`), the pairs picked and the seconds their encoding took (reading
        them from the pair cache excluded; 0 for pairs already encoded inside
        :meth:`sharing_example_vectors`)."""
        if self._shared_vectors is not None and concept_id in self._shared_vectors:
            return *self._shared_vectors[concept_id], 0.0
        sources, targets, picked = self.generator_pairs(concept_id)
        start = time.perf_counter()
        pairs = self.generator.example_standardiser(self._pair_encoder.features(sources, targets))
        if self._shared_vectors is not None:
            self._shared_vectors[concept_id] = (pairs, picked)
        return pairs, picked, time.perf_counter() - start

    def example_vector(self, concept_id: str) -> tuple[torch.Tensor, list[int], float]:
        """The mean [F] of :meth:`example_set`'s vectors (what the controls and a generator
        without a set encoder read), the pairs picked and the seconds of their encoding."""
        pairs, picked, seconds = self.example_set(concept_id)
        return pairs.mean(0), picked, seconds

    @contextmanager
    def sharing_example_vectors(self) -> Iterator[None]:
        """Inside, each concept's pairs are encoded once: the first init that reads them pays the
        seconds, the others reuse the vector at 0 s (the choice on the pairs makes several
        candidates from the same pairs and counts the encoding once). Outside, every init
        encodes and pays its own, as a bench method alone would. Nested (an ensemble among a
        choice's candidates), the outermost sharing holds."""
        if self._shared_vectors is not None:
            yield
            return
        self._shared_vectors = {}
        try:
            yield
        finally:
            self._shared_vectors = None

    def _with_examples(self, kind: str, text: TextEmbedding, pairs_of: str,
                       info: dict, seed: int | None = None) -> AdapterInit:
        """The generator's adapter for ``text`` and k training pairs of the concept ``pairs_of``
        (``seed``: another sampling seed than the run's; the same pairs); the seconds include
        encoding the pairs."""
        pairs, picked, encoding = self.example_set(pairs_of)
        sampling = self.sampling | ({} if seed is None else {"seed": seed})
        result = self.generator.generate(Condition.of_text(text, pairs.unsqueeze(0)), **sampling)
        return AdapterInit(kind, result.state, encoding + result.seconds,
                           info | {"example_pairs": picked, "encoding_seconds": encoding})

    def generated_examples(self, concept: Concept, prompt: str | None = None,
                           seed: int | None = None) -> AdapterInit:
        """The generator's adapter for the concept's prompt (or ``prompt``: another wording) and
        k of its training pairs (``seed``: sampled under another seed than the run's)."""
        prompt = concept.prompt if prompt is None else prompt
        info = {"prompt": prompt} | ({} if seed is None else {"seed": seed})
        return self._with_examples("generated_examples", self.generator_text.encode([prompt]),
                                   concept.id, info, seed)

    def examples_only(self, concept: Concept) -> AdapterInit:
        """The generator's adapter for k of the concept's training pairs and no text (the empty
        prompt as the generator learned it)."""
        text = empty_prompt(self.text_encoder.max_length, self.text_encoder.dim)
        return self._with_examples("generated_examples_only", text, concept.id, {"prompt": None})

    def pairs_partner(self, concept_id: str, method: str | None = None) -> str:
        """The held-out concept whose pairs ``concept_id`` reads when pairs are shuffled: a fixed
        seeded derangement of the run's held-out concepts (a concept outside them, a seen one,
        joins the derangement for its own draw). ``method``: the bench method that asks."""
        held = sorted(set(self._controls().heldout))
        pool = held if concept_id in held else [*held, concept_id]
        if len(pool) < 2:
            drop = f", or drop {method} from bench.methods" if method else ""
            raise ConfigError(
                f"shuffled example pairs give each held-out concept another held-out concept's "
                f"pairs, but this run holds out {', '.join(held) or 'none'}: hold out at "
                f"least 2 (concepts.n_test=2){drop}"
            )
        return fixed_derangement(pool, self._controls().seed)[concept_id]

    def examples_shuffled(self, concept: Concept) -> AdapterInit:
        """The generator's adapter for the concept's prompt and another held-out concept's k
        training pairs (:meth:`pairs_partner`)."""
        partner = self.pairs_partner(concept.id)
        return self._with_examples("generated_examples_shuffled",
                                   self.generator_text.encode([concept.prompt]), partner,
                                   {"prompt": concept.prompt, "pairs_of": partner})

    def _controls(self) -> ControlInputs:
        if self.controls is None:
            raise ConfigError("the controls and the shuffled pairs need bench.controls and the "
                              "run's concepts: build the inits with "
                              "stages.artifacts.default_inits")
        return self.controls

    # --- controls that see what the generator sees (weightgen.finetune.controls) ----------------
    @cached_property
    def _training_adapters(self) -> tuple[TrainingAdapters, float]:
        """The training concepts' final adapters as one matrix, and the seconds loading took."""
        start = time.perf_counter()
        rows = self._train_rows
        adapters = TrainingAdapters.stack([r["concept"] for r in rows],
                                          [self.store.load(r) for r in rows])
        return adapters, time.perf_counter() - start

    def training_bank(self) -> torch.Tensor:
        """[C, bank, F] standardised per-pair vectors of the training concepts (in the order of
        the training adapters): the bank the generator was trained on, recomputed with its
        encoder (the base GAN's), its pairs (the first ``bank`` training pairs) and its
        standardiser."""
        self.require_examples()
        concepts = [r["concept"] for r in self._train_rows]
        features = bank_features(self._pair_encoder, map(self._example_pairs, concepts),
                                 int(self.generator.meta["examples"]["bank"]))
        return self.generator.example_standardiser(features)

    @cached_property
    def _bank_vectors(self) -> tuple[torch.Tensor, float]:
        """Each training concept's example vector [C, F] (the mean of its standardised bank, the
        pairs the generator trained on) and the seconds of the whole fit (loading included)."""
        loading = self._training_adapters[1]
        start = time.perf_counter()
        vectors = self.training_bank().mean(1)
        return vectors, loading + time.perf_counter() - start

    def _validation_states(self) -> list[dict[str, torch.Tensor]]:
        """The validation concepts' own adapters (the ridge maps' validation targets)."""
        missing = [c.id for c in self._controls().validation if c.id not in self._final_rows]
        if missing:
            raise IncompleteStoreError(
                f"the weight store at {self.store.root} has no trained adapter for the validation "
                f"concepts {', '.join(missing)}; the ridge controls choose their alpha on them: "
                f"build the store for this run's concepts (`make dataset`, weightgen-dataset "
                f"with the same concepts.* settings)")
        return [self.store.load(self._final_rows[c.id]) for c in self._controls().validation]

    def _fitted_ridge(self, inputs: torch.Tensor, row_concept: list[int],
                      validation_inputs: Callable[[], torch.Tensor]) -> RidgeControl:
        validation = self._controls().validation
        return RidgeControl.fitted(
            inputs, row_concept, self._training_adapters[0], self._controls().ridge_alphas,
            [c.id for c in validation], validation_inputs() if validation else None,
            self._validation_states() if validation else None)

    @cached_property
    def _examples_ridge(self) -> tuple[RidgeControl, float]:
        """The ridge map from example vectors (one row per training concept), and the fit's
        seconds (loading, encoding the banks, choosing alpha)."""
        vectors, seconds = self._bank_vectors
        start = time.perf_counter()
        control = self._fitted_ridge(vectors, list(range(len(vectors))), lambda: torch.stack(
            [self.example_vector(c.id)[0] for c in self._controls().validation]))
        return control, seconds + time.perf_counter() - start

    @cached_property
    def _phrasing_rows(self) -> tuple[torch.Tensor, list[int], float]:
        """The pooled sentence vector of every training phrasing [n, T], the training concept of
        each row, and the seconds of loading the adapters and encoding the phrasings."""
        adapters, seconds = self._training_adapters
        start = time.perf_counter()
        phrasings = self._controls().training_phrasings()
        texts = [text for concept in adapters.concepts for text in phrasings[concept]]
        rows = [index for index, concept in enumerate(adapters.concepts)
                for _ in phrasings[concept]]
        pooled = self.generator_text.encode(texts).pooled
        return pooled, rows, seconds + time.perf_counter() - start

    def _validation_pooled(self) -> torch.Tensor:
        return self.generator_text.encode([c.prompt for c in self._controls().validation]).pooled

    @cached_property
    def _text_ridge(self) -> tuple[RidgeControl, float]:
        """The ridge map from pooled text vectors (one row per training phrasing), and the fit's
        seconds (loading, encoding the phrasings, choosing alpha)."""
        pooled, rows, seconds = self._phrasing_rows
        start = time.perf_counter()
        control = self._fitted_ridge(pooled, rows, self._validation_pooled)
        return control, seconds + time.perf_counter() - start

    @cached_property
    def _joint_scales(self) -> tuple[float, float]:
        """The root-mean-square norms of the sentence and the example vectors over the joint
        ridge map's rows (each phrasing with its concept's example vector)."""
        pooled, rows, _ = self._phrasing_rows
        examples = self._bank_vectors[0][rows]
        return (float(pooled.pow(2).sum(1).mean().sqrt()),
                float(examples.pow(2).sum(1).mean().sqrt()))

    def _joint(self, pooled: torch.Tensor, examples: torch.Tensor) -> torch.Tensor:
        """[n, T + F]: sentence and example vectors side by side, each over its scale."""
        text_scale, examples_scale = self._joint_scales
        return torch.cat([pooled / text_scale, examples / examples_scale], dim=1)

    @cached_property
    def _text_examples_ridge(self) -> tuple[RidgeControl, float]:
        """The ridge map from the sentence and example vectors together (one row per training
        phrasing), and the fit's seconds (the text and example fits' inputs, choosing alpha)."""
        pooled, rows, seconds = self._phrasing_rows
        vectors, bank_seconds = self._bank_vectors
        start = time.perf_counter()
        control = self._fitted_ridge(self._joint(pooled, vectors[rows]), rows, lambda: self._joint(
            self._validation_pooled(), torch.stack(
                [self.example_vector(c.id)[0] for c in self._controls().validation])))
        return control, seconds + bank_seconds + time.perf_counter() - start

    def _nearest_by_examples(self, concept: Concept, k: int, kind: str) -> AdapterInit:
        """The mean of the ``k`` training adapters nearest by example vector."""
        adapters = self._training_adapters[0]
        vectors, fit_seconds = self._bank_vectors
        query, picked, encoding = self.example_vector(concept.id)
        start = time.perf_counter()
        weights, nearest, distances = nearest_weights(query, vectors, k)
        state = adapters.combine(weights)
        return AdapterInit(kind, state, encoding + time.perf_counter() - start,
                           {"concepts": [adapters.concepts[i] for i in nearest],
                            "distances": distances, "example_pairs": picked,
                            "encoding_seconds": encoding, "fit": {"seconds": fit_seconds}})

    def k_blend(self) -> int:
        """``bench.controls.k_blend``, checked against the training concepts there are."""
        k, available = int(self._controls().k_blend), len(self._train_rows)
        if not 1 <= k <= available:
            raise ConfigError(f"bench.controls.k_blend={k}: the run has {available} training "
                              f"concepts to blend; use 1..{available}")
        return k

    def examples_nearest(self, concept: Concept) -> AdapterInit:
        return self._nearest_by_examples(concept, 1, "examples_nearest")

    def examples_blend(self, concept: Concept) -> AdapterInit:
        return self._nearest_by_examples(concept, self.k_blend(), "examples_blend")

    def _ridge_init(self, kind: str, fitted: tuple[RidgeControl, float], query: torch.Tensor,
                    encoding: float, info: dict) -> AdapterInit:
        """The adapter a fitted ridge control gives ``query``; ``info`` gets the fit and the three
        training concepts of largest weight."""
        control, fit_seconds = fitted
        adapters = self._training_adapters[0]
        start = time.perf_counter()
        weights = control.concept_weights(query)
        state = adapters.combine(weights)
        seconds = encoding + time.perf_counter() - start
        heaviest = weights.abs().argsort(descending=True)[:3].tolist()
        return AdapterInit(kind, state, seconds, info | {
            "fit": control.fit | {"seconds": fit_seconds},
            "heaviest": {adapters.concepts[i]: float(weights[i]) for i in heaviest}})

    def examples_ridge(self, concept: Concept) -> AdapterInit:
        fitted = self._examples_ridge
        query, picked, encoding = self.example_vector(concept.id)
        return self._ridge_init("examples_ridge", fitted, query, encoding,
                                {"example_pairs": picked, "encoding_seconds": encoding})

    def text_ridge(self, concept: Concept) -> AdapterInit:
        fitted = self._text_ridge
        start = time.perf_counter()
        query = self.generator_text.encode([concept.prompt]).pooled[0]
        return self._ridge_init("text_ridge", fitted, query, time.perf_counter() - start,
                                {"prompt": concept.prompt})

    def text_examples_ridge(self, concept: Concept) -> AdapterInit:
        fitted = self._text_examples_ridge
        examples, picked, encoding = self.example_vector(concept.id)
        start = time.perf_counter()
        query = self._joint(self.generator_text.encode([concept.prompt]).pooled, examples[None])[0]
        return self._ridge_init("text_examples_ridge", fitted, query,
                                encoding + time.perf_counter() - start,
                                {"prompt": concept.prompt, "example_pairs": picked,
                                 "encoding_seconds": encoding})

    # --- the choice on the pairs the concept comes with (weightgen.finetune.pairs_choice) ----------
    def choice_candidates(self) -> dict[str, Callable[[InitSources, Concept], AdapterInit]]:
        """Candidate name -> what makes it: each kind of ``bench.controls.choice.candidates``
        (checked), then ``samples`` text + examples generator samples under the sampling seeds
        after the run's."""
        knobs = self._controls()
        candidates = {kind: INITS[kind] for kind in check_choice_candidates(knobs.choice_candidates)}
        first = int(self.sampling.get("seed", 0)) + 1
        for seed in range(first, first + int(knobs.choice_samples)):
            candidates[sample_name(seed)] = partial(InitSources.generated_examples, seed=seed)
        return candidates

    def require_pair_loss(self) -> None:
        """The scorer of candidates on pairs can be made, or an error naming the fix."""
        if self._make_pair_loss is None:
            raise ConfigError("choosing on the example pairs needs the base GAN to score the "
                              "candidates: build the inits with stages.artifacts.default_inits")

    @cached_property
    def _pair_loss(self) -> PairLoss:
        self.require_pair_loss()
        return self._make_pair_loss()

    def pairs_choice(self, concept: Concept) -> AdapterInit:
        """The candidate whose base + adapter edits the k pairs the generator reads best (the
        lowest fine-tune reconstruction loss; those are the concept's training pairs, never its
        validation photos); its seconds are every candidate's own plus the scoring's, the pairs'
        encoding counted once (the first candidate that reads them pays it)."""
        candidates = self.choice_candidates()
        sources, targets, picked = self.generator_pairs(concept.id)
        start = time.perf_counter()
        text = self.text_encoder.encode([concept.prompt])
        sources, targets = images_to_tensor(sources), images_to_tensor(targets)
        pair_loss = self._pair_loss
        with self.sharing_example_vectors():
            choice = choose_on_pairs(
                {name: partial(make, self, concept) for name, make in candidates.items()},
                lambda state: pair_loss(state, sources, targets, text),
                setup_seconds=time.perf_counter() - start)
        return AdapterInit("pairs_choice", choice.start.state, choice.seconds,
                           choice.info() | {"example_pairs": picked})

    # --- the mean of several starts (weightgen.finetune.ensemble) -----------------------------------
    def ensemble_members(self, kind: str) -> tuple[str, ...]:
        """The checked members of the ensemble init ``kind`` (``ensemble`` or
        ``controls_ensemble``)."""
        return check_ensemble_members(kind, self._controls().ensembles[kind])

    def _ensemble(self, kind: str, concept: Concept) -> AdapterInit:
        """The mean of the members' adapters; the pairs' encoding counted once."""
        with self.sharing_example_vectors():
            state, seconds, info = average({name: partial(INITS[name], self, concept)
                                            for name in self.ensemble_members(kind)})
        return AdapterInit(kind, state, seconds, info)

    def ensemble(self, concept: Concept) -> AdapterInit:
        return self._ensemble("ensemble", concept)

    def controls_ensemble(self, concept: Concept) -> AdapterInit:
        return self._ensemble("controls_ensemble", concept)

    def prepare(self, kind: str | None, method: str | None = None) -> None:
        """Check (and fit) what the init ``kind`` needs before any run starts from it, so a
        missing input is an error before hours of runs and a control's fit is not charged to the
        first concept; ``method``: the bench method that asks, named in the fix."""
        if kind == "generated_examples_shuffled":
            for concept_id in self._controls().heldout:
                self.pairs_partner(concept_id, method)
        if kind == "pairs_choice":
            self.require_pair_loss()
            for candidate in check_choice_candidates(self._controls().choice_candidates):
                self.prepare(candidate, method)
        if kind in ENSEMBLE_KEYS:
            for member in self.ensemble_members(kind):
                self.prepare(member, method)
        if kind in CONTROL_FITS:
            CONTROL_FITS[kind](self)

    def settings(self, kind: str | None, concept: Concept) -> dict:
        """What the init ``kind`` of ``concept`` depends on besides the base, its pairs and the
        generator (a stored bench run made with other values is run again); {} for most kinds.
        An init read from the training adapters depends on which of them (``n_concepts``, only
        when a subset is set: runs stored on the whole training set stay valid)."""
        settings = self._kind_settings(kind, concept)
        subset = self.controls.n_concepts if self.controls is not None else None
        if kind in READS_TRAINING_ADAPTERS and subset is not None:
            settings["n_concepts"] = int(subset)
        return settings

    def _kind_settings(self, kind: str | None, concept: Concept) -> dict:
        if kind == "examples_blend":
            return {"k_blend": int(self._controls().k_blend)}
        if kind in ("examples_ridge", "text_ridge", "text_examples_ridge"):
            return {"ridge_alphas": [float(a) for a in self._controls().ridge_alphas],
                    "validation_concepts": [c.id for c in self._controls().validation]}
        if kind == "generated_examples_shuffled":
            return {"pairs_of": self.pairs_partner(concept.id)}
        if kind == "pairs_choice":
            knobs = self._controls()
            return {"candidates": {c: self.settings(c, concept)
                                   for c in check_choice_candidates(knobs.choice_candidates)},
                    "samples": int(knobs.choice_samples)}
        if kind in ENSEMBLE_KEYS:
            return {"members": {m: self.settings(m, concept) for m in self.ensemble_members(kind)}}
        return {}

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
    "generated_examples_only": InitSources.examples_only,
    "generated_examples_shuffled": InitSources.examples_shuffled,
    "examples_nearest": InitSources.examples_nearest,
    "examples_blend": InitSources.examples_blend,
    "examples_ridge": InitSources.examples_ridge,
    "text_ridge": InitSources.text_ridge,
    "text_examples_ridge": InitSources.text_examples_ridge,
    "pairs_choice": InitSources.pairs_choice,
    "ensemble": InitSources.ensemble,
    "controls_ensemble": InitSources.controls_ensemble,
}


# The init kinds made from the training concepts' adapters: which of them (diffusion.data's
# subset) is part of what a stored bench run of one depends on.
READS_TRAINING_ADAPTERS = frozenset({"mean", "nearest", "examples_nearest", "examples_blend",
                                     "examples_ridge", "text_ridge", "text_examples_ridge"})


# The controls' fits, done once (InitSources.prepare runs them before any bench run).
CONTROL_FITS: dict[str, Callable[[InitSources], object]] = {
    "examples_nearest": lambda sources: sources._bank_vectors,
    "examples_blend": lambda sources: (sources.k_blend(), sources._bank_vectors),
    "examples_ridge": lambda sources: sources._examples_ridge,
    "text_ridge": lambda sources: sources._text_ridge,
    "text_examples_ridge": lambda sources: sources._text_examples_ridge,
}
