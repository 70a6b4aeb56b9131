"""A learned encoder over a concept's k example pairs (``diffusion.examples.set_width``).

The default reading of k pairs is their mean vector through one Linear: linear in each pair, so
it cannot tell a set whose pairs agree from one whose pairs disagree with the same mean, nor
weight a pair by what it shows. This encoder is a DeepSets sum,

    set_vector = mean_i phi(x_i),   phi = Linear(F, w) -> SiLU -> Linear(w, dim)

over the k standardised per-pair vectors ``x_i`` (:mod:`weightgen.diffusion.examples`): free of the
pairs' order and of k, nonlinear in each pair before the pooling. It is added to the mean
reading, not put in its place, and its last layer starts at zero, so a generator with it starts
as exactly the one without and learns only what the mean loses. Trained with the generator; each
training item draws a fresh k-subset of its concept's bank
(:class:`~weightgen.diffusion.example_bank.ExampleBank`), the augmentation that keeps it from
memorising one set per concept. "No examples" is the all-zero set, as for the mean reading.
"""

from __future__ import annotations

from torch import Tensor, nn


class PairSetEncoder(nn.Module):
    """[B, k, F] standardised per-pair vectors -> [B, dim], mean over the pairs of a per-pair MLP."""

    def __init__(self, example_dim: int, width: int, dim: int) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"a pair set encoder needs width >= 1, got {width}")
        self.pair = nn.Sequential(nn.Linear(example_dim, width), nn.SiLU(), nn.Linear(width, dim))
        nn.init.zeros_(self.pair[-1].weight)  # starts at zero: the mean reading alone
        nn.init.zeros_(self.pair[-1].bias)

    def forward(self, pairs: Tensor) -> Tensor:
        if pairs.dim() != 3:
            raise ValueError(f"pairs must be [B, k, F], got {list(pairs.shape)}")
        return self.pair(pairs).mean(1)
