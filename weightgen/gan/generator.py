"""E2GAN-style text-conditioned image-to-image generator.

Layout (PAPER.md step 3): downsampling convs -> ResBlock x2 -> downsample -> one Transformer
block (self-attention + cross-attention to the concept's text tokens) -> upsample -> ResBlock ->
upsampling convs -> tanh. Upsampling is nearest-neighbour + conv (no transposed convs), so every
weight an adapter touches is a plain Conv2d or Linear that peft's LoRA can wrap.

Module names are part of the adapter contract (adapters target them by name):
``stem``, ``down1``, ``res_in.*``, ``down2``, ``transformer.*``, ``up2``, ``res_out.*``,
``up1``, ``head``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from weightgen.errors import ConfigError


def _norm(channels: int) -> nn.Module:
    # Instance norm without affine parameters, as in pix2pix's ResNet generator.
    return nn.InstanceNorm2d(channels, affine=False)


class ConvNormAct(nn.Sequential):
    """Conv -> InstanceNorm -> ReLU; ``upsample`` doubles the resolution before the conv."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False):
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
        layers += [
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2),
            _norm(cout),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1, self.norm2 = _norm(channels), _norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return x + self.norm2(self.conv2(h))


class Attention(nn.Module):
    """Multi-head attention with explicit q/k/v/out Linear layers (LoRA targets by name)."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"attention width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(context_dim, dim)
        self.v = nn.Linear(context_dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, -1, h, d // h).transpose(1, 2)

        attn_mask = None
        if mask is not None:
            # An all-padding prompt (empty text) attends to nothing: let it attend everywhere
            # instead of producing NaN; its values are then the padding embeddings.
            keep = mask | ~mask.any(dim=1, keepdim=True)
            attn_mask = keep[:, None, None, :]
        out = F.scaled_dot_product_attention(
            split(self.q(x)), split(self.k(context)), split(self.v(context)), attn_mask=attn_mask
        )
        return self.out(out.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to text tokens, and an MLP, on the feature grid."""

    def __init__(self, dim: int, text_dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, dim, heads)
        self.norm_cross = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, text_dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        normed = self.norm_self(tokens)
        tokens = tokens + self.self_attn(normed, normed)
        tokens = tokens + self.cross_attn(self.norm_cross(tokens), text, text_mask)
        tokens = tokens + self.fc2(F.gelu(self.fc1(self.norm_mlp(tokens))))
        return tokens.transpose(1, 2).reshape(b, c, hgt, wid)


class E2GANGenerator(nn.Module):
    """Text-conditioned generator; ``stride`` is the factor the input size must be divisible by.

    ``long_skip`` concatenates the input image to the last features before the output conv, so
    colour and tone edits need not rebuild image detail from the bottleneck (a U-Net-style skip
    of one level; pix2pix's U-Net has one at every level).
    """

    stride = 4

    @classmethod
    def smallest_side(cls, **config) -> int:
        """The smallest image side it trains on: the bottleneck (side / stride) needs 2x2
        positions, as instance norm cannot normalise a single one while training."""
        return 2 * cls.stride

    def __init__(
        self,
        ngf: int = 32,
        text_dim: int = 384,
        heads: int = 4,
        mlp_ratio: int = 2,
        n_res_in: int = 2,
        n_res_out: int = 1,
        long_skip: bool = True,
        channels: int = 3,
    ):
        super().__init__()
        self.long_skip = long_skip
        self.stem = ConvNormAct(channels, ngf, 7)
        self.down1 = ConvNormAct(ngf, 2 * ngf, 3, stride=2)
        self.res_in = nn.Sequential(*[ResBlock(2 * ngf) for _ in range(n_res_in)])
        self.down2 = ConvNormAct(2 * ngf, 4 * ngf, 3, stride=2)
        self.transformer = TransformerBlock(4 * ngf, text_dim, heads, mlp_ratio)
        self.up2 = ConvNormAct(4 * ngf, 2 * ngf, 3, upsample=True)
        self.res_out = nn.Sequential(*[ResBlock(2 * ngf) for _ in range(n_res_out)])
        self.up1 = ConvNormAct(2 * ngf, ngf, 3, upsample=True)
        head_in = ngf + channels if long_skip else ngf
        self.head = nn.Conv2d(head_in, channels, 7, padding=3)

    def forward(
        self, image: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        if image.shape[-1] % self.stride or image.shape[-2] % self.stride:
            raise ValueError(
                f"image size {tuple(image.shape[-2:])} is not a multiple of the generator's "
                f"stride {self.stride}; resize or crop to a multiple of {self.stride}"
            )
        h = self.res_in(self.down1(self.stem(image)))
        h = self.transformer(self.down2(h), text_tokens, text_mask)
        h = self.up1(self.res_out(self.up2(h)))
        if self.long_skip:
            h = torch.cat([h, image], dim=1)
        return torch.tanh(self.head(h))
