"""The paper's weight generator: a compact text-conditioned 1-D UNet over one weight block.

Layout (paper, Sec. "weight generator"), for ``channels = (c0, c1, c2)``::

    encoder   [ResBlock c0 + Transformer] -> down -> [ResBlock c1 + Transformer] -> down
              -> [ResBlock c2]
    middle    Transformer
    decoder   mirrored, each ResBlock takes the matching encoder output as a skip connection

Every level but the deepest has a Transformer (self-attention over positions, cross-attention to
the prompt's tokens); every ResBlock gets the (timestep + block-index) embedding as FiLM
scale/shift.

The condition (:mod:`weightgen.diffusion.condition_encoder`): with ``conditioning`` ``tokens``
(the paper's) the Transformers cross-attend to the token states, with a learned null token so an
empty prompt attends to it; the pooled text and the example pairs are added to the
(timestep + block-index) embedding, so they reach every ResBlock's FiLM. Without tokens
(``pooled``) the Transformers keep self-attention and their MLP but have no cross-attention.

The block is a 1-D signal of ``block_size / patch_size`` positions with ``patch_size`` values
each: patching keeps neighbouring weights together while making the sequence short enough to
train fast on a CPU. Activations stay channels-last, ``[B, positions, channels]``, and the
convolutions are written as matrix products (a kernel-3 conv is a Linear over each position and
its two neighbours; downsampling merges position pairs, upsampling splits them). At these small
sizes that is several times faster on CPU than ``nn.Conv1d`` (whose per-call overhead dominates)
and needs no transposes around the Transformers. diffusers' ``UNet1DModel`` trains ~3 steps/s
here; this network keeps diffusers only for the timestep embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.condition_encoder import ConditionEncoder
from weightgen.diffusion.conditioning import DEFAULT_CONDITIONING
from weightgen.errors import ConfigError


class Conv3(nn.Module):
    """Kernel-3, zero-padded 1-D convolution on channels-last ``[B, N, C]`` as one Linear."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(x, (0, 0, 1, 1))
        return self.linear(torch.cat([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]], dim=-1))


class Downsample(nn.Module):
    """Halves the positions: each pair of neighbours is merged by a Linear (stride-2 conv)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.reshape(x.shape[0], x.shape[1] // 2, 2 * x.shape[2]))


class Upsample(nn.Module):
    """Doubles the positions: each position is split into two by a Linear (transposed conv)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, 2 * out_channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.linear(x)
        return out.reshape(x.shape[0], 2 * x.shape[1], out.shape[2] // 2)


class ResBlock1D(nn.Module):
    """Norm-SiLU-conv twice; the conditioning embedding scales and shifts the middle norm."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(in_channels)
        self.conv1 = Conv3(in_channels, out_channels)
        self.film = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = nn.LayerNorm(out_channels)
        self.conv2 = Conv3(out_channels, out_channels)
        self.skip = (
            nn.Identity() if in_channels == out_channels else nn.Linear(in_channels, out_channels)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x [B, N, C_in], emb [B, emb_dim] (already SiLU-activated) -> [B, N, C_out]."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb).unsqueeze(1).chunk(2, dim=-1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head attention on ``F.scaled_dot_product_attention``.

    Self-attention when ``context_dim`` is None, else cross-attention from ``[B, N, dim]`` to
    ``[B, M, context_dim]``.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"attention width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.is_cross = context_dim is not None
        if self.is_cross:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(context_dim, 2 * dim, bias=False)
        else:
            self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self, x: Tensor, context: Tensor | None = None, bias: Tensor | None = None
    ) -> Tensor:
        """``bias`` [B, 1, 1, M] is added to the attention logits (-inf hides a key)."""
        if self.is_cross:
            q, (k, v) = self.to_q(x), self.to_kv(context).chunk(2, dim=-1)
        else:
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        bias = None if bias is None else bias.to(q.dtype)  # autocast may run q in bf16
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.to_out(out.transpose(1, 2).flatten(2))


class Transformer1D(nn.Module):
    """Pre-norm block over positions: self-attention, cross-attention to the text, GELU MLP.

    ``context_dim=None`` leaves the cross-attention out (``conditioning=pooled``: no tokens)."""

    def __init__(self, channels: int, context_dim: int | None, heads: int,
                 mlp_ratio: int) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(channels)
        self.self_attention = Attention(channels, heads)
        self.has_cross = context_dim is not None
        if self.has_cross:
            self.norm_cross = nn.LayerNorm(channels)
            self.cross_attention = Attention(channels, heads, context_dim)
        self.norm_mlp = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, mlp_ratio * channels),
            nn.GELU(),
            nn.Linear(mlp_ratio * channels, channels),
        )

    def forward(self, x: Tensor, context: Tensor | None, context_bias: Tensor | None) -> Tensor:
        x = x + self.self_attention(self.norm_self(x))
        if self.has_cross:
            x = x + self.cross_attention(self.norm_cross(x), context, context_bias)
        return x + self.mlp(self.norm_mlp(x))


class NoTransformer(nn.Module):
    """Stands in for the Transformer at the deepest level (the paper has a ResBlock only)."""

    def forward(self, x: Tensor, context: Tensor | None, context_bias: Tensor | None) -> Tensor:
        return x


class UNet1DDenoiser(ConditionEncoder):
    """Denoises one weight block given timestep, block index and its condition.

    Args:
        channels: width per level, shallow to deep; positions halve between levels.
        patch_size: weights per position; ``block_size`` must divide by
            ``patch_size * 2 ** (len(channels) - 1)``.
        heads: attention heads in every Transformer.
        emb_dim: width of the timestep + block-index embedding (the conditioning vector).
        context_dim: width the text tokens are projected to (cross-attention keys/values;
            unused with ``conditioning=pooled``).
        mlp_ratio: Transformer MLP expansion.
        block_size, num_blocks, text_dim, conditioning, example_dim: the condition's, as
            :class:`~weightgen.diffusion.condition_encoder.ConditionEncoder` reads them (the
            sizes from the tokenizer and the text encoder; ``example_dim`` 0: no examples).
        example_set_width: width of the learned encoder over the example pairs (0: their mean
            alone; :mod:`weightgen.diffusion.pair_set_encoder`).
    """

    def __init__(
        self,
        block_size: int,
        num_blocks: int,
        text_dim: int,
        channels: Sequence[int] = (32, 64, 96),
        patch_size: int = 16,
        heads: int = 2,
        emb_dim: int = 128,
        context_dim: int = 64,
        mlp_ratio: int = 2,
        conditioning: str = DEFAULT_CONDITIONING,
        example_dim: int = 0,
        example_set_width: int = 0,
    ) -> None:
        channels = list(channels)
        if len(channels) < 1:
            raise ConfigError("denoiser.channels must list at least one level width")
        reduction = patch_size * 2 ** (len(channels) - 1)
        if block_size % reduction:
            raise ConfigError(
                f"tokenizer.block_size={block_size} must be divisible by denoiser.patch_size * "
                f"2**(levels-1) = {reduction}; change denoiser.patch_size or the number of levels "
                f"in denoiser.channels"
            )
        super().__init__(block_size, num_blocks, text_dim, emb_dim, conditioning, context_dim)
        self.patch_size = patch_size
        deepest = len(channels) - 1
        attended = context_dim if self.uses_tokens else None  # no cross-attention without tokens
        self.input = nn.Linear(patch_size, channels[0])
        self.position = nn.Parameter(torch.randn(1, block_size // patch_size, channels[0]) * 0.02)

        def transformer(level: int) -> nn.Module:
            if level == deepest:
                return NoTransformer()
            return Transformer1D(channels[level], attended, heads, mlp_ratio)

        self.down_res = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = channels[0]
        for level, width in enumerate(channels):
            self.down_res.append(ResBlock1D(previous, width, emb_dim))
            self.down_attn.append(transformer(level))
            if level < deepest:
                self.downsample.append(Downsample(width, width))
            previous = width
        self.middle = Transformer1D(channels[-1], attended, heads, mlp_ratio)

        self.up_res = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(channels))):
            width = channels[level]
            self.up_res.append(ResBlock1D(previous + width, width, emb_dim))
            self.up_attn.append(transformer(level))
            if level > 0:
                self.upsample.append(Upsample(width, width))
            previous = width

        self.out_norm = nn.LayerNorm(channels[0])
        self.output = nn.Linear(channels[0], patch_size)
        nn.init.zeros_(self.output.weight)  # starts as the zero map: stable first steps
        nn.init.zeros_(self.output.bias)
        # last: example_dim=0 is the old network
        self.add_example_layer(example_dim, emb_dim, example_set_width)

    def forward(self, x: Tensor, timesteps: Tensor, block_index: Tensor,
                condition: Condition) -> Tensor:
        emb, context, context_bias = self.encode_condition(x, timesteps, block_index, condition)
        h = self.input(x.unflatten(1, (-1, self.patch_size))) + self.position  # [B, N, C]

        skips = []
        for level, (res, attn) in enumerate(zip(self.down_res, self.down_attn, strict=True)):
            h = attn(res(h, emb), context, context_bias)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.middle(h, context, context_bias)
        for level, (res, attn) in enumerate(zip(self.up_res, self.up_attn, strict=True)):
            h = attn(res(torch.cat([h, skips.pop()], dim=-1), emb), context, context_bias)
            if level < len(self.upsample):
                h = self.upsample[level](h)
        return self.output(F.silu(self.out_norm(h))).flatten(1)
