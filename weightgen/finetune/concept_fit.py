"""Training a GAN on one concept's pairs: the one loop every adapter run goes through.

The dataset builder trains each concept's adapter from the standard init; the fine-tuner trains
from any init (and pix2pix from scratch). Both score the concept's validation pairs before
training, keep the outputs for the first validation sources before and after (for the grids),
and train with the step-based Trainer; only the callbacks differ (store checkpoints, or record a
quality curve and stop at a target).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightning as L
import torch
from omegaconf import DictConfig

from weightgen.data.datamodule import PairsDataModule
from weightgen.gan.adapters import Adapter
from weightgen.gan.base import BaseGAN, gan_module
from weightgen.gan.evaluate import Quality, evaluate, generate
from weightgen.gan.module import GANModule
from weightgen.text.base import TextEmbedding
from weightgen.training import fit, make_trainer


def adapter_module(base: BaseGAN, adapter: Adapter, text: TextEmbedding, gan: DictConfig,
                   state: dict[str, torch.Tensor] | None = None, **overrides) -> GANModule:
    """A fresh copy of the base with ``adapter`` attached (loaded from ``state`` if given); the
    discriminator starts from the base's; losses, optimiser and schedule from the ``gan`` group."""
    generator, discriminator = base.fresh_copy()
    generator = adapter.attach(generator)
    if state is not None:
        adapter.load_state(generator, state)
    return gan_module(gan, generator, discriminator, text, adapter=adapter, **overrides)


@dataclass
class ConceptFit:
    """What a run on one concept measured besides its callbacks' records."""

    start: Quality  # on all validation pairs, before training
    samples: dict[str, torch.Tensor]  # "start" / "end": outputs for the first validation sources
    seconds: float  # wall seconds of ``trainer.fit`` (0 when training was skipped)


def fit_on_concept(
    module: GANModule,
    data: PairsDataModule,
    trainer: DictConfig,
    steps: int,
    val_every: int | None,
    callbacks: Sequence[L.Callback] = (),
    n_samples: int = 4,
    progress: bool = False,
    before_training: Callable[[Quality], bool] | None = None,
    what: str = "training",
    progress_label: str = "training",
) -> ConceptFit:
    """Score step 0, train ``steps`` steps (``val_every``: validation interval), sample again.

    ``before_training`` gets the step-0 quality (e.g. to start a curve); returning False skips
    training (an init already at the target). ``module``'s text row 0 is the concept's prompt;
    ``what`` names the run if it is interrupted, ``progress_label`` its progress bar.
    """
    data.setup()
    tokens, mask = module.text_tokens[0], module.text_mask[0]
    start = evaluate(module.generator, data.val_set.sources, data.val_set.targets[0], tokens, mask)
    shown = data.val_set.sources[:n_samples]
    samples = {"start": generate(module.generator, shown, tokens, mask)}
    seconds = 0.0
    wanted = before_training(start) if before_training is not None else True
    if wanted and steps > 0:
        fitter = make_trainer(trainer, steps, val_every=val_every, callbacks=list(callbacks),
                              progress=progress, progress_label=progress_label)
        begin = time.perf_counter()
        fit(fitter, module, data, what)
        seconds = time.perf_counter() - begin
    samples["end"] = generate(module.generator, shown, tokens, mask)
    return ConceptFit(start, samples, seconds)
