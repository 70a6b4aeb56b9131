"""Quality of a generator on fixed validation pairs: the one measure every stage reports."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from weightgen.metrics.image_quality import psnr, ssim


@dataclass(frozen=True)
class Quality:
    psnr: float
    ssim: float


@torch.no_grad()
def generate(
    generator: nn.Module,
    sources: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor,
    batch_size: int = 64,
) -> torch.Tensor:
    """Edit ``sources`` [N,3,H,W] with one prompt's tokens [L,D] / mask [L]; eval mode, restored."""
    was_training = generator.training
    generator.eval()
    outputs = []
    for start in range(0, sources.shape[0], batch_size):
        chunk = sources[start : start + batch_size]
        n = chunk.shape[0]
        outputs.append(
            generator(chunk, text_tokens.expand(n, -1, -1), text_mask.expand(n, -1))
        )
    generator.train(was_training)
    return torch.cat(outputs)


def evaluate(
    generator: nn.Module,
    sources: torch.Tensor,
    targets: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor,
) -> Quality:
    """Mean PSNR (dB) and SSIM of the generator's edits against the exact targets."""
    outputs = generate(generator, sources, text_tokens, text_mask)
    return Quality(psnr(outputs, targets), ssim(outputs, targets))
