"""Example pairs as the weight generator's second condition: what k (source, target) pairs of a
concept look like to it (``diffusion.examples``).

A new concept always comes with pairs (its fine-tune needs them), and a pair shows what the edit
does (the colour of a tint, a pixelation) where the prompt only names it. One pair's vector is

    [ pool(E(target)) - pool(E(source)),  pool(E(target)),  pixel(target - source), pixel(target) ]

* ``E`` is the frozen base GAN's own encoder (``stem -> down1 -> res_in -> down2``, the layers
  before its transformer, the first place the text enters): features the base already uses to
  edit, at no training cost, and the same for every concept.
* ``pool`` is each channel's mean and standard deviation over space: a pair's crops differ in
  content, the edit is what they share, so the vector keeps statistics, not positions.
* The encoder instance-normalises every layer, which removes a global colour shift from its
  features; ``pixel`` (each RGB channel's mean and standard deviation, images in [-1, 1]) keeps
  it, cheaply.

The difference says what the edit changes, the target what the result looks like. k pairs are
one vector, the mean of theirs, so the condition does not depend on their order (a learned
encoder over the set can be added: :mod:`weightgen.diffusion.pair_set_encoder`). Each feature is
standardised with the mean and standard deviation over the training bank (the pairs encoded
before training), stored with the generator (``examples.safetensors``), so a loaded generator
reads vectors as in training. The all-zero vector is "no examples": it is what prompt (and
examples) dropout gives in training, what classifier-free guidance's unconditional branch reads
and what text-only generation passes; being the bank's average pair after standardisation, it
says nothing about this concept's edit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from copy import deepcopy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from weightgen.data.datamodule import images_to_tensor

FEATURES = "e2gan_encoder_mean_std+pixel_mean_std"  # recorded in generator.json: what F holds
ENCODE_BATCH = 64


def pooled_statistics(features: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, 2C]: each channel's mean and standard deviation over space."""
    flat = features.flatten(2)
    return torch.cat([flat.mean(-1), flat.std(-1, correction=0)], dim=1)


class PairEncoder:
    """The per-pair vectors of (source, target) crops, from a frozen copy of a base GAN's encoder."""

    def __init__(self, gan_generator: nn.Module):
        layers = [gan_generator.stem, gan_generator.down1, gan_generator.res_in, gan_generator.down2]
        self.encoder = deepcopy(nn.Sequential(*layers)).eval().requires_grad_(False)

    @torch.no_grad()
    def features(self, sources: np.ndarray, targets: np.ndarray) -> torch.Tensor:
        """uint8 [N, S, S, 3] sources and targets -> float32 [N, F], one vector per pair."""
        if sources.shape != targets.shape or len(sources) == 0:
            raise ValueError(f"need N >= 1 (source, target) pairs of one shape, got "
                             f"{sources.shape} and {targets.shape}")
        out = []
        for start in range(0, len(sources), ENCODE_BATCH):
            source = images_to_tensor(sources[start:start + ENCODE_BATCH])
            target = images_to_tensor(targets[start:start + ENCODE_BATCH])
            encoded_source = pooled_statistics(self.encoder(source))
            encoded_target = pooled_statistics(self.encoder(target))
            out.append(torch.cat([encoded_target - encoded_source, encoded_target,
                                  pooled_statistics(target - source), pooled_statistics(target)],
                                 dim=1))
        return torch.cat(out)


def bank_features(encoder: PairEncoder, pairs: Iterable[tuple[np.ndarray, np.ndarray]],
                  bank: int) -> torch.Tensor:
    """[C, bank, F] per-pair vectors of the first ``bank`` of each concept's (sources, targets)
    training pairs: the bank a generator with example pairs trains on (and the controls that see
    the same pairs recompute)."""
    return torch.stack([encoder.features(sources[:bank], targets[:bank])
                        for sources, targets in pairs])


@dataclass
class ExampleStandardiser:
    """Per-feature mean and standard deviation of the training bank's per-pair vectors."""

    mean: torch.Tensor  # [F]
    std: torch.Tensor  # [F], floored so a constant feature divides by 1, not 0

    @classmethod
    def fit(cls, features: torch.Tensor) -> ExampleStandardiser:
        """From per-pair vectors [N, F] (every training concept's bank)."""
        std = features.std(0, correction=0)
        return cls(features.mean(0), torch.where(std > 1e-6, std, torch.ones_like(std)))

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.contiguous(), "std": self.std.contiguous()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> ExampleStandardiser:
        return cls(state["mean"], state["std"])


def fixed_choice(available: int, k: int, seed: int) -> list[int]:
    """k distinct pair indices out of ``available``, the same for every call with this seed."""
    if not 1 <= k <= available:
        raise ValueError(f"cannot pick {k} example pairs out of {available}")
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(available, generator=generator)[:k].tolist())


def fixed_derangement(ids: Sequence[str], seed: int) -> dict[str, str]:
    """Each id -> another of ``ids``, a permutation with no fixed point drawn uniformly with this
    seed (the same for every call): whose pairs each concept reads when they are shuffled."""
    ordered = sorted(set(ids))
    if len(ordered) < 2:
        raise ValueError(f"a derangement needs at least 2 ids, got {ordered}")
    generator = torch.Generator().manual_seed(seed)
    while True:  # rejection: about e draws, each permutation without a fixed point equally likely
        order = torch.randperm(len(ordered), generator=generator).tolist()
        if all(index != image for index, image in enumerate(order)):
            return {ordered[index]: ordered[image] for index, image in enumerate(order)}
