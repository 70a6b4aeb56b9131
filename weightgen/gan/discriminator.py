"""pix2pix's PatchGAN discriminator, conditioned on the source image (source and image stacked)."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Scores overlapping patches real/fake; ``n_layers=3`` is pix2pix's 70x70 PatchGAN."""

    @staticmethod
    def smallest_side(n_layers: int = 3, **config) -> int:
        """The smallest image side it trains on: its last normalised layer sees
        ``side // 2**n_layers - 1`` positions a side, and instance norm needs at least 2."""
        return 3 * 2**n_layers

    def __init__(self, ndf: int = 32, n_layers: int = 3, channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(2 * channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = ndf
        for i in range(1, n_layers + 1):
            last = i == n_layers
            out = ndf * min(2**i, 8)
            layers += [
                nn.Conv2d(width, out, 4, stride=1 if last else 2, padding=1),
                nn.InstanceNorm2d(out, affine=True),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([source, image], dim=1))
