"""Conditioning inputs shared by the denoisers: timestep + block index, and the prompt's text.

Every denoiser follows one contract::

    forward(x [B, block_size] float32, timesteps [B] long, block_index [B] long,
            text_tokens [B, L, text_dim] float32, text_mask [B, L] bool,
            text_pooled [B, text_dim] float32 | None = None,
            examples [B, example_dim] float32 | None = None) -> [B, block_size]

``text_mask`` is True for real tokens. An all-False row (an empty prompt, e.g. dropped for
classifier-free guidance) is valid and must not produce NaN; it is the empty prompt in every
conditioning mode (a denoiser reads no pooled vector for it: it stands for zeros).
``text_pooled`` is the text encoder's sentence vector (``TextEmbedding.pooled``: MiniLM's
L2-normalised masked mean of its token states, CLIP's pooler output); only a denoiser whose
``conditioning`` uses it needs it.

Which of them a denoiser reads is its ``conditioning`` (``diffusion.conditioning``:
:mod:`weightgen.diffusion.conditioning`). ``examples`` is the example pairs' vector
(:mod:`weightgen.diffusion.examples`; zeros: no examples), read only by a denoiser built with
``example_dim > 0``.
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


def prompt_pooled(text_pooled: Tensor | None, text_mask: Tensor) -> Tensor:
    """The pooled vector a denoiser reads, [B, D]: zeros for an empty prompt (all-False mask row),
    whatever the caller passed for it, so "no prompt" is one input in every mode."""
    if text_pooled is None:
        raise ValueError("this denoiser's conditioning uses the pooled text vector: pass "
                         "text_pooled [B, text_dim] (TextEmbedding.pooled)")
    return text_pooled * text_mask.any(dim=1, keepdim=True).to(text_pooled.dtype)


def example_vectors(examples: Tensor | None, batch: int, example_dim: int) -> Tensor:
    """``examples``, checked to be [batch, example_dim]: what a denoiser built with examples reads."""
    if examples is None:
        raise ValueError("this denoiser was built with example_dim > 0: pass examples "
                         f"[B, {example_dim}] (zeros for none)")
    if tuple(examples.shape) != (batch, example_dim):
        raise ValueError(f"examples must be [{batch}, {example_dim}], got {list(examples.shape)}")
    return examples


def check_denoiser_inputs(
    x: Tensor,
    timesteps: Tensor,
    block_index: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor,
    block_size: int,
    text_dim: int,
    text_pooled: Tensor | None = None,
) -> None:
    """Shape checks with messages that say what was expected (cheap: no device sync)."""
    batch = x.shape[0]
    problems = []
    if x.dim() != 2 or x.shape[1] != block_size:
        problems.append(f"x must be [B, {block_size}], got {list(x.shape)}")
    if tuple(timesteps.shape) != (batch,):
        problems.append(f"timesteps must be [{batch}], got {list(timesteps.shape)}")
    if tuple(block_index.shape) != (batch,):
        problems.append(f"block_index must be [{batch}], got {list(block_index.shape)}")
    if text_tokens.dim() != 3 or text_tokens.shape[0] != batch or text_tokens.shape[2] != text_dim:
        problems.append(
            f"text_tokens must be [{batch}, L, {text_dim}], got {list(text_tokens.shape)}"
        )
    if tuple(text_mask.shape) != tuple(text_tokens.shape[:2]):
        problems.append(
            f"text_mask must be {list(text_tokens.shape[:2])}, got {list(text_mask.shape)}"
        )
    if text_pooled is not None and tuple(text_pooled.shape) != (batch, text_dim):
        problems.append(f"text_pooled must be [{batch}, {text_dim}], got {list(text_pooled.shape)}")
    if problems:
        raise ValueError("denoiser inputs: " + "; ".join(problems))
