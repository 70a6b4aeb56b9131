"""The GAN LightningModule: pix2pix training of the E2GAN generator, full or through an adapter.

One module serves the three GAN trainings of the project, so they differ only in what is
trainable and how it starts: ``pix2pix_scratch`` (random init, every weight), the base (every
weight, many concepts mixed), and per-concept adapters (base frozen, adapter weights only).

Losses are pix2pix's: conditional PatchGAN adversarial loss + ``lambda_l1`` * L1.
``gan_weight: 0`` turns the discriminator off (L1 only) for ablations. The optimiser and the LR
schedule are Hydra partials (``gan.optimizer``, ``gan.lr_scheduler``: Adam with beta1 0.5, the
rate constant for half of training, then a linear decay to zero); generator and discriminator
each get their own instance of both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from weightgen.errors import ConfigError
from weightgen.gan.adapters import Adapter
from weightgen.gan.training_options import GAN_MODES
from weightgen.metrics.image_quality import psnr_per_image, ssim_per_image

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class GANModule(L.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        optimizer: OptimizerFactory,
        lr_scheduler: SchedulerFactory,
        adapter: Adapter | None = None,
        lambda_l1: float = 100.0,
        gan_weight: float = 1.0,
        gan_mode: str = "lsgan",
    ):
        """``optimizer(params)`` and ``lr_scheduler(optimizer=..., num_training_steps=...)`` are
        called for the generator (its adapter's parameters if it has one) and the discriminator."""
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"unknown gan.loss.gan_mode {gan_mode!r}; use lsgan or vanilla")
        if gan_weight > 0 and discriminator is None:
            raise ConfigError("gan.loss.gan_weight > 0 needs a discriminator; pass one or set "
                              "gan.loss.gan_weight=0")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.adapter = adapter
        # Text embeddings of the concepts in the data module, indexed by batch["concept"].
        self.register_buffer("text_tokens", text_tokens, persistent=False)
        self.register_buffer("text_mask", text_mask, persistent=False)
        self.lambda_l1, self.gan_weight, self.gan_mode = lambda_l1, gan_weight, gan_mode
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.last_quality: dict[str, float] = {}

    @property
    def uses_gan(self) -> bool:
        return self.gan_weight > 0

    def configure_optimizers(self):
        params = (
            self.adapter.trainable_parameters(self.generator)
            if self.adapter is not None
            else list(self.generator.parameters())
        )
        optimizers = [self.optimizer_factory(params)]
        if self.uses_gan:
            optimizers.append(self.optimizer_factory(self.discriminator.parameters()))
        total = max(0, self.trainer.max_steps or 0)
        schedulers = [self.lr_scheduler_factory(optimizer=opt, num_training_steps=total)
                      for opt in optimizers]
        return optimizers, schedulers

    def _adversarial(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.full_like(logits, 1.0 if real else 0.0)
        if self.gan_mode == "lsgan":
            return F.mse_loss(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        source, target, concept = batch["source"], batch["target"], batch["concept"]
        fake = self.generator(source, self.text_tokens[concept], self.text_mask[concept])

        logs = {}
        loss_g = self.lambda_l1 * F.l1_loss(fake, target)
        logs["train/l1"] = loss_g.detach() / self.lambda_l1
        if self.uses_gan:
            opt_d = optimizers[1]
            loss_d = 0.5 * (
                self._adversarial(self.discriminator(source, target), True)
                + self._adversarial(self.discriminator(source, fake.detach()), False)
            )
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            # Step the wrapped torch optimizer: Lightning counts every LightningOptimizer.step()
            # as a global step, and one step of this module is one generator update.
            opt_d.optimizer.step()
            adversarial = self._adversarial(self.discriminator(source, fake), True)
            loss_g = loss_g + self.gan_weight * adversarial
            logs |= {"train/loss_d": loss_d.detach(), "train/adversarial": adversarial.detach()}

        opt_g = optimizers[0]
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        for scheduler in schedulers:
            scheduler.step()
        self.log_dict(logs, prog_bar=True)

    def on_validation_epoch_start(self) -> None:
        self._val_scores: list[tuple[torch.Tensor, torch.Tensor]] = []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        source, concept = batch["source"], batch["concept"]
        fake = self.generator(source, self.text_tokens[concept], self.text_mask[concept])
        self._val_scores.append(
            (psnr_per_image(fake, batch["target"]), ssim_per_image(fake, batch["target"]))
        )

    def on_validation_epoch_end(self) -> None:
        """Mean over every validation image of every concept (equal images per concept)."""
        psnrs, ssims = (torch.cat(parts) for parts in zip(*self._val_scores, strict=True))
        self.last_quality = {"val/psnr": float(psnrs.mean()), "val/ssim": float(ssims.mean())}
        self.log_dict(self.last_quality, prog_bar=True)
