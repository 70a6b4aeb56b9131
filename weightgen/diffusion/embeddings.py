"""The denoisers' conditioning layers: timestep + block index, and the prompt's token states.

:mod:`weightgen.diffusion.condition_encoder` combines them with the pooled text and the example
pairs into what a denoiser reads.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import Tensor, nn


class TimestepBlockEmbedding(nn.Module):
    """Sinusoidal timestep embedding (diffusers) through an MLP, plus a learned block-index
    embedding added to it: the paper feeds this sum to every ResBlock, so each block of the
    flattened weights is denoised knowing both the noise level and *which* weights it holds."""

    def __init__(self, num_blocks: int, dim: int, frequency_dim: int = 128) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        self.num_blocks = num_blocks
        self.frequencies = Timesteps(frequency_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.timestep_mlp = TimestepEmbedding(frequency_dim, dim)
        self.block_embedding = nn.Embedding(num_blocks, dim)

    def forward(self, timesteps: Tensor, block_index: Tensor) -> Tensor:
        return self.timestep_mlp(self.frequencies(timesteps)) + self.block_embedding(block_index)


class TextContext(nn.Module):
    """Projects text tokens to the denoiser's context width and prepends a learned null token.

    The null token is always attendable, so cross-attention over an all-False mask (an empty
    prompt) attends to it alone instead of to nothing (a softmax over no keys is NaN), and the
    model learns what "no prompt" means.
    """

    def __init__(self, text_dim: int, context_dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(text_dim, context_dim)
        self.null_token = nn.Parameter(torch.randn(1, 1, context_dim) * 0.02)

    def forward(self, text_tokens: Tensor, text_mask: Tensor) -> tuple[Tensor, Tensor]:
        """-> (context [B, L+1, context_dim], mask [B, L+1] bool, True = attend)."""
        batch = text_tokens.shape[0]
        context = torch.cat([self.null_token.expand(batch, -1, -1), self.project(text_tokens)], 1)
        always = torch.ones(batch, 1, dtype=torch.bool, device=text_mask.device)
        return context, torch.cat([always, text_mask.bool()], dim=1)


def masked_mean(text_tokens: Tensor, text_mask: Tensor) -> Tensor:
    """Mean over the real tokens, [B, L, D] -> [B, D]; an all-False row gives zeros, not NaN."""
    weights = text_mask.to(text_tokens.dtype).unsqueeze(-1)
    return (text_tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)
