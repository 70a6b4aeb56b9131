"""A residual MLP denoiser over a whole weight block: the fast baseline beside the paper's UNet.

It sees the block as one vector (no locality prior) and the prompt only as vectors, so it is
cheaper than the UNet but cannot attend to individual words. The conditioning vector (timestep +
block-index embedding + the projected text) is added, through its own projection, inside every
residual block. The text, by ``conditioning`` (``diffusion.conditioning``):

* ``tokens`` (the default; the behaviour from before the knob): the masked mean of the raw token
  states, through a Linear. The MLP cannot attend, so "tokens" is their average; for MiniLM that
  is the sentence vector before its L2 normalisation.
* ``pooled``: the text encoder's sentence vector (``TextEmbedding.pooled``), through a Linear.
* ``tokens+pooled``: the sum of both projections (two Linears). For MiniLM the two vectors differ
  only in scale, so this mostly adds a length-normalised copy; for CLIP (pooled = the EOS
  state) they carry different information.

An empty prompt (all-False mask) gives a zero masked mean and a zero pooled vector: each
projection's bias is what "no prompt" means.

With ``example_dim = F > 0`` (``diffusion.examples.k > 0``) the example pairs' vector
(:mod:`weightgen.diffusion.examples`, [B, F]; zeros: no examples) is projected by one more
Linear and added to the conditioning vector like the pooled text.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from weightgen.diffusion.conditioning import DEFAULT_CONDITIONING, uses_pooled, uses_tokens
from weightgen.diffusion.embeddings import (
    TimestepBlockEmbedding,
    check_denoiser_inputs,
    example_vectors,
    masked_mean,
    prompt_pooled,
)
from weightgen.errors import ConfigError


class ResidualMLPBlock(nn.Module):
    """h + MLP(LayerNorm(h) + project(cond)): pre-norm residual with additive conditioning."""

    def __init__(self, hidden_dim: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden_dim)
        self.condition = nn.Linear(hidden_dim, hidden_dim)
        self.fc1 = nn.Linear(hidden_dim, mlp_ratio * hidden_dim)
        self.fc2 = nn.Linear(mlp_ratio * hidden_dim, hidden_dim)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        return h + self.fc2(F.silu(self.fc1(self.norm(h) + self.condition(cond))))


class MLPDenoiser(nn.Module):
    """Denoises one weight block given timestep, block index and the prompt as vectors.

    Args:
        block_size, num_blocks, text_dim: set from the tokenizer and the text encoder.
        hidden_dim: width of the residual stream. depth: number of residual blocks.
        mlp_ratio: expansion inside each residual block.
        conditioning: ``tokens`` | ``pooled`` | ``tokens+pooled`` (``diffusion.conditioning``,
            set by the generator's training; see the module docstring).
        example_dim: width of the example pairs' vector (0: none, the default).
    """

    def __init__(
        self,
        block_size: int,
        num_blocks: int,
        text_dim: int,
        hidden_dim: int = 384,
        depth: int = 4,
        mlp_ratio: int = 2,
        conditioning: str = DEFAULT_CONDITIONING,
        example_dim: int = 0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"depth must be >= 1, got {depth}")
        self.block_size, self.text_dim = block_size, text_dim
        self.conditioning = conditioning
        self.uses_tokens, self.uses_pooled = uses_tokens(conditioning), uses_pooled(conditioning)
        # Created in this order so that `tokens` initialises exactly as before the knob.
        self.condition = TimestepBlockEmbedding(num_blocks, hidden_dim)
        self.text = nn.Linear(text_dim, hidden_dim) if self.uses_tokens else None
        self.pooled = nn.Linear(text_dim, hidden_dim) if self.uses_pooled else None
        self.input = nn.Linear(block_size, hidden_dim)
        self.blocks = nn.ModuleList(ResidualMLPBlock(hidden_dim, mlp_ratio) for _ in range(depth))
        self.out_norm = nn.LayerNorm(hidden_dim)
        self.output = nn.Linear(hidden_dim, block_size)
        nn.init.zeros_(self.output.weight)  # starts as the zero map: stable first steps
        nn.init.zeros_(self.output.bias)
        # Created last, so that example_dim=0 initialises exactly as before the knob.
        self.example_dim = example_dim
        self.examples = nn.Linear(example_dim, hidden_dim) if example_dim else None

    def forward(
        self,
        x: Tensor,
        timesteps: Tensor,
        block_index: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        text_pooled: Tensor | None = None,
        examples: Tensor | None = None,
    ) -> Tensor:
        check_denoiser_inputs(x, timesteps, block_index, text_tokens, text_mask,
                              self.block_size, self.text_dim, text_pooled)
        cond = self.condition(timesteps, block_index)
        if self.uses_tokens:
            cond = cond + self.text(masked_mean(text_tokens, text_mask))
        if self.uses_pooled:
            cond = cond + self.pooled(prompt_pooled(text_pooled, text_mask))
        if self.examples is not None:
            cond = cond + self.examples(example_vectors(examples, x.shape[0], self.example_dim))
        cond = F.silu(cond)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.output(self.out_norm(h))
