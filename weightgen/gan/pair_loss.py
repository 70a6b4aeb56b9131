"""The fine-tune's reconstruction loss of any adapter state on given pairs: forward passes of the
base GAN with that adapter, no gradients.

Choosing where a new concept's adapter starts on the example pairs it comes with
(``finetune/pairs_choice.py``) ranks candidate adapters by it. The loss is the L1 term every
fine-tune minimises (``gan/module.py``: ``lambda_l1 * L1(output, target)``; without
``lambda_l1``, which ranks alike), the PSNR is given beside it for people; the generator runs in
eval mode, as every evaluation does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from weightgen.gan.adapters import Adapter
from weightgen.gan.base import BaseGAN
from weightgen.gan.evaluate import generate
from weightgen.metrics.image_quality import psnr
from weightgen.text.base import TextEmbedding


@dataclass(frozen=True)
class PairScore:
    l1: float  # the fine-tune's reconstruction loss (mean absolute error, images in [-1, 1])
    psnr: float  # dB


class PairLoss:
    """Scores adapter states of ``adapter``'s kind on a copy of ``base``'s generator."""

    def __init__(self, base: BaseGAN, adapter: Adapter):
        self.adapter = adapter
        self.generator = adapter.attach(base.fresh_copy()[0])

    @torch.no_grad()
    def __call__(self, state: dict[str, torch.Tensor], sources: torch.Tensor,
                 targets: torch.Tensor, text: TextEmbedding) -> PairScore:
        """Base + ``state`` on ``sources`` [N,3,H,W] against ``targets``, both in [-1, 1],
        edited with ``text``'s one prompt."""
        self.adapter.load_state(self.generator, state)
        outputs = generate(self.generator, sources, text.tokens[0], text.mask[0])
        return PairScore(float(F.l1_loss(outputs, targets)), psnr(outputs, targets))
