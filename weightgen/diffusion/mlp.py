"""A residual MLP denoiser over a whole weight block: the fast baseline beside the paper's UNet.

It sees the block as one vector (no locality prior) and the prompt only as vectors, so it is
cheaper than the UNet but cannot attend to individual words: with ``conditioning`` ``tokens`` it
reads the token states' masked mean (for MiniLM: the sentence vector before its L2
normalisation). The conditioning vector (timestep + block-index embedding + the projected text
and example pairs, :mod:`weightgen.diffusion.condition_encoder`) is added, through its own
projection, inside every residual block.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.condition_encoder import ConditionEncoder
from weightgen.diffusion.conditioning import DEFAULT_CONDITIONING
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


class MLPDenoiser(ConditionEncoder):
    """Denoises one weight block given timestep, block index and its condition as vectors.

    Args:
        hidden_dim: width of the residual stream and of the conditioning vector.
        depth: number of residual blocks. mlp_ratio: expansion inside each residual block.
        block_size, num_blocks, text_dim, conditioning, example_dim: the condition's, as
            :class:`~weightgen.diffusion.condition_encoder.ConditionEncoder` reads them (the
            sizes from the tokenizer and the text encoder; ``example_dim`` 0: no examples).
        example_set_width: width of the learned encoder over the example pairs (0: their mean
            alone; :mod:`weightgen.diffusion.pair_set_encoder`).
    """

    def __init__(self, block_size: int, num_blocks: int, text_dim: int, hidden_dim: int = 384,
                 depth: int = 4, mlp_ratio: int = 2, conditioning: str = DEFAULT_CONDITIONING,
                 example_dim: int = 0, example_set_width: int = 0) -> None:
        if depth < 1:
            raise ConfigError(f"depth must be >= 1, got {depth}")
        super().__init__(block_size, num_blocks, text_dim, hidden_dim, conditioning)
        self.input = nn.Linear(block_size, hidden_dim)
        self.blocks = nn.ModuleList(ResidualMLPBlock(hidden_dim, mlp_ratio) for _ in range(depth))
        self.out_norm = nn.LayerNorm(hidden_dim)
        self.output = nn.Linear(hidden_dim, block_size)
        nn.init.zeros_(self.output.weight)  # starts as the zero map: stable first steps
        nn.init.zeros_(self.output.bias)
        # last: example_dim=0 is the old network
        self.add_example_layer(example_dim, hidden_dim, example_set_width)

    def forward(self, x: Tensor, timesteps: Tensor, block_index: Tensor,
                condition: Condition) -> Tensor:
        cond = self.encode_condition(x, timesteps, block_index, condition).vector
        h = self.input(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.output(self.out_norm(h))
