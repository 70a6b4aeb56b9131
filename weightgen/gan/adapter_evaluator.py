"""GAN quality of any adapter state on any concept: base + adapter, no training.

Zero-shot figures (generated vs mean vs nearest vs trained adapters), the weight generator's
validation and the benchmark's step-0 numbers all go through this one object.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from weightgen.concepts.spec import Concept
from weightgen.data.datamodule import images_to_tensor
from weightgen.data.pairs import PairStore
from weightgen.gan.adapters import Adapter
from weightgen.gan.base import BaseGAN
from weightgen.gan.evaluate import Quality, evaluate, generate
from weightgen.text.base import TextEncoder


class AdapterEvaluator:
    """Scores adapter states of ``adapter``'s kind on ``base``, on ``pair_store``'s validation
    pairs, with prompts encoded by ``text_encoder``."""

    def __init__(self, base: BaseGAN, adapter: Adapter, pair_store: PairStore,
                 text_encoder: TextEncoder):
        generator, _ = base.fresh_copy()
        self.adapter = adapter
        self.generator = adapter.attach(generator)
        self.pair_store, self.text_encoder = pair_store, text_encoder

    @property
    def standard_state(self) -> dict[str, torch.Tensor]:
        return self.adapter.standard_state()

    @lru_cache(maxsize=64)  # noqa: B019 (one evaluator per run; concepts are few)
    def _validation(self, concept_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = self.pair_store.load(concept_id)
        return images_to_tensor(pairs.val_source), images_to_tensor(pairs.val_target)

    def quality(self, concept: Concept, state: dict[str, torch.Tensor]) -> Quality:
        self.adapter.load_state(self.generator, state)
        sources, targets = self._validation(concept.id)
        text = self.text_encoder.encode([concept.prompt])
        return evaluate(self.generator, sources, targets, text.tokens[0], text.mask[0])

    def samples(self, concept: Concept, state: dict[str, torch.Tensor],
                count: int) -> list[torch.Tensor]:
        """[sources, targets, outputs] of the first ``count`` validation crops (for pictures)."""
        self.adapter.load_state(self.generator, state)
        sources, targets = (t[:count] for t in self._validation(concept.id))
        text = self.text_encoder.encode([concept.prompt])
        return [sources, targets, generate(self.generator, sources, text.tokens[0], text.mask[0])]
