"""The training concepts' example pairs, and which of them each training item reads.

With ``diffusion.examples.k > 0`` every training concept has a bank of standardised per-pair
vectors (:mod:`weightgen.diffusion.examples`, encoded once before training). A training item
reads the mean of k of its concept's pairs, drawn without replacement from torch's global
generator (the training seed); outside training the first k, so validation is fixed. A prompt
dropped by prompt dropout drops its examples too (zeros: no text, no examples, classifier-free
guidance's unconditional), and ``drop_prob`` drops the examples alone while training, so
text-only generation (zeros) is trained as well. For a denoiser with a set encoder
(``diffusion.examples.set_width``) an item reads the k pairs themselves, [k, F], not their mean.
"""

from __future__ import annotations

import torch
from torch import nn

from weightgen.errors import ConfigError


class ExampleBank(nn.Module):
    """``vectors`` [C, bank, F]: concept c's standardised per-pair vectors; each item averages
    ``k`` of them (``sets``: reads the k themselves). A module (with no parameters) so that it
    follows the training module to its device and its train/eval mode."""

    def __init__(self, vectors: torch.Tensor, k: int, drop_prob: float = 0.0, sets: bool = False):
        super().__init__()
        if not 1 <= k <= vectors.shape[1]:
            raise ConfigError(f"diffusion.examples.k={k} is not allowed with a bank of "
                              f"{vectors.shape[1]} pairs per concept: use 1..bank")
        self.register_buffer("vectors", vectors, persistent=False)
        self.k, self.drop_prob, self.sets = int(k), float(drop_prob), bool(sets)

    def draw(self, concept: torch.Tensor, dropped: torch.Tensor | None) -> torch.Tensor:
        """[B, F]: the mean of k of each item's concept pairs (training: drawn; else the first
        k), zeros where its prompt was ``dropped`` or, while training, its examples alone;
        [B, k, F], the k pairs, with ``sets``."""
        bank = self.vectors[concept]  # [B, bank, F]
        if self.training:
            order = torch.rand(bank.shape[:2], device=bank.device).argsort(dim=1)
            picked = order[:, :self.k]
        else:
            picked = torch.arange(self.k, device=bank.device).expand(bank.shape[0], -1)
        vectors = torch.gather(bank, 1, picked[..., None].expand(-1, -1, bank.shape[2]))
        vectors = vectors if self.sets else vectors.mean(1)
        keep = torch.ones(concept.shape[0], dtype=torch.bool, device=concept.device)
        if dropped is not None:
            keep = keep & ~dropped
        if self.training and self.drop_prob > 0:
            keep = keep & (torch.rand(concept.shape[0], device=concept.device) >= self.drop_prob)
        return vectors * keep.view(-1, *(1,) * (vectors.dim() - 1)).to(vectors.dtype)
