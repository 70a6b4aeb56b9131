"""The fast fine-tuner: start a concept's GAN from some initialisation and train it briefly.

A method's adapter (on the frozen base) starts from an
:class:`~weightgen.finetune.inits.AdapterInit` and its discriminator from the base's.
``run_method`` runs one benchmark method on one concept and returns its quality curve; a method
without an init (pix2pix from scratch) trains the full generator from random initialisation with
the same losses, data and evaluation, so every method is measured the same way. Which init each
benchmark method starts from is ``weightgen.bench.methods``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from weightgen.concepts.spec import Concept
from weightgen.data.datamodule import PairsDataModule
from weightgen.finetune.concept_fit import adapter_module, fit_on_concept
from weightgen.finetune.curve import QualityCurve, evaluation_steps
from weightgen.finetune.inits import AdapterInit, InitSources
from weightgen.gan.base import BaseGAN, build_networks, gan_module
from weightgen.gan.evaluate import Quality, evaluate, generate
from weightgen.gan.module import GANModule
from weightgen.gan.recipe import with_recipe
from weightgen.text.base import TextEncoder
from weightgen.utils.grid import to_uint8


@dataclass
class FineTuneSetup:
    """What every fine-tune of a run shares: base, inits, text encoder, config groups, data."""

    base: BaseGAN
    inits: InitSources
    text_encoder: TextEncoder
    gan: DictConfig  # the ``gan`` config group: networks (for pix2pix), loss, optimiser, schedule
    adapter: DictConfig  # the ``adapter`` config group
    trainer: DictConfig  # the ``trainer`` config group
    pairs_dir: Path  # the pair cache holding the concepts' pairs
    batch_size: int
    seed: int
    # Method -> overrides of ``gan`` for its fine-tune (``bench.recipes``: e.g. a lower learning
    # rate or a warm-up for a method that starts from good weights); absent = ``gan`` as it is.
    recipes: Mapping[str, Mapping] = field(default_factory=dict)

    def gan_for(self, method: str) -> DictConfig:
        """The ``gan`` group a method trains with: its recipe merged over the run's (a recipe may
        add keyword arguments, e.g. ``lr_scheduler.warmup_steps``)."""
        return with_recipe(self.gan, self.recipes.get(method))


# The samples key of a run's final outputs on every validation image (what image metrics score).
OUTPUTS = "outputs"


@dataclass
class MethodRun:
    method: str
    concept: str
    curve: list[dict]
    init_seconds: float = 0.0
    train_seconds: float = 0.0
    info: dict = field(default_factory=dict)
    # Outputs on the first validation images at step 0 and at the end ([k,3,H,W]), and on every
    # validation image at the end as saved images (OUTPUTS, uint8 [N,H,W,3]); not saved with the
    # JSON record.
    samples: dict[str, torch.Tensor] | None = None

    @property
    def zero_shot(self) -> dict:
        return self.curve[0]

    @property
    def final(self) -> dict:
        return self.curve[-1]


def run_method(setup: FineTuneSetup, concept: Concept, method: str, init_kind: str | None,
               steps: int, eval_every: int, target_psnr: float | None = None,
               progress: bool = False, log_eval_until: int = 0) -> tuple[MethodRun, GANModule]:
    """Run one method on one concept: its curve from step 0 to the budget or target, and the
    trained module (``module.generator`` / ``module.adapter`` for export).

    ``init_kind``: the :data:`~weightgen.finetune.inits.INITS` kind the method's adapter starts
    from; None trains pix2pix from scratch. ``method`` names the run and its recipe. The curve
    scores the run after steps 1, 2, 4, ... up to ``log_eval_until`` and every ``eval_every``
    (``weightgen.finetune.curve.evaluation_steps``).
    """
    L.seed_everything(setup.seed, workers=True)
    text = setup.text_encoder.encode([concept.prompt])
    gan = setup.gan_for(method)
    if init_kind is None:
        generator, discriminator = build_networks(gan, setup.text_encoder.dim)
        module = gan_module(gan, generator, discriminator, text)
        init = AdapterInit("scratch", {})
    else:
        init = setup.inits.get(init_kind, concept)
        module = adapter_module(setup.base, instantiate(setup.adapter), text, gan, init.state)
    data = PairsDataModule(str(setup.pairs_dir), [concept.id], setup.batch_size, seed=setup.seed)

    def score() -> Quality:
        """On every validation pair, wherever the trainer put the module; as step 0 is scored."""
        val, device = data.val_set, module.device
        return evaluate(module.generator, val.sources.to(device), val.targets[0].to(device),
                        module.text_tokens[0], module.text_mask[0])

    curve = QualityCurve(score, evaluation_steps(steps, eval_every, log_eval_until),
                         offset_seconds=init.seconds, target_psnr=target_psnr)

    def start_curve(quality: Quality) -> bool:
        curve.record(0, quality.psnr, quality.ssim)
        return not curve.reached_target

    fit = fit_on_concept(module, data, setup.trainer, steps, None, callbacks=[curve],
                         progress=progress, before_training=start_curve,
                         what=f"fine-tuning on concept {concept.id!r}",
                         progress_label=f"fine-tune {concept.id}")
    outputs = generate(module.generator, data.val_set.sources, module.text_tokens[0],
                       module.text_mask[0])
    samples = fit.samples | {OUTPUTS: torch.from_numpy(to_uint8(outputs))}
    run = MethodRun(method, concept.id, curve.as_dicts(), init.seconds, fit.seconds, init.info,
                    samples)
    return run, module
