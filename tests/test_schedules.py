"""Learning-rate schedules and optimisers as Hydra partials: values, and switches from overrides."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from diffusers import DDPMScheduler
from helpers import compose_config
from hydra.utils import instantiate

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.diffusion.module import WeightDiffusionModule
from weightgen.errors import ConfigError
from weightgen.gan.discriminator import PatchDiscriminator
from weightgen.gan.generator import E2GANGenerator
from weightgen.gan.module import GANModule
from weightgen.gan.training_options import gan_training_options
from weightgen.utils.schedules import constant_then_decay, warmup_then_cosine


def factors(make_scheduler, total: int) -> list[float]:
    """The LR multiplier used by each of ``total`` optimiser steps (base rate 1)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, num_training_steps=total)
    used = []
    for _ in range(total):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return used


def pix2pix_factor(step: int, total: int, decay: str, decay_start: float) -> float:
    """The schedule as written down: constant, then linear or cosine to zero at ``total``."""
    start = int(total * decay_start)
    if step < start:
        return 1.0
    progress = (step - start) / max(1, total - start)
    return 1.0 - progress if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_factor(step: int, total: int, warmup_steps: int) -> float:
    warmup = max(1, min(warmup_steps, total // 2))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@pytest.mark.parametrize("decay", ["linear", "cosine"])
@pytest.mark.parametrize(("total", "decay_start"), [(100, 0.5), (7, 0.5), (10, 0.0), (4, 0.9)])
def test_constant_then_decay_gives_the_pix2pix_values(decay, total, decay_start):
    def make(optimizer, num_training_steps):
        return constant_then_decay(optimizer, num_training_steps, decay, decay_start)

    expected = [pix2pix_factor(s, total, decay, decay_start) for s in range(total)]
    assert factors(make, total) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("total", "warmup", "decay_start", "expected"), [
    (10, 4, 0.5, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]),
    (10, 4, 0.0, [0.25, 0.5, 0.75, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]),
    (10, 8, 0.5, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]),  # cut to half the run
])
def test_constant_then_decay_warms_up_before_holding_and_decaying(total, warmup, decay_start,
                                                                   expected):
    def make(optimizer, num_training_steps):
        return constant_then_decay(optimizer, num_training_steps, "linear", decay_start, warmup)

    assert factors(make, total) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ConfigError, match="warmup_steps=-1 must be >= 0"):
        factors(lambda o, num_training_steps: constant_then_decay(o, num_training_steps,
                                                                  warmup_steps=-1), 5)


def test_constant_schedule_keeps_the_rate_and_unknown_decays_are_refused():
    def make(optimizer, num_training_steps):
        return constant_then_decay(optimizer, num_training_steps, "constant")

    assert factors(make, 5) == [1.0] * 5
    with pytest.raises(ConfigError, match=r"decay='step' is unknown; use one of"):
        factors(lambda o, num_training_steps: constant_then_decay(o, num_training_steps, "step"), 5)


@pytest.mark.parametrize(("total", "warmup"), [(300, 10), (20, 100), (50, 1), (1, 100)])
def test_warmup_then_cosine_gives_the_documented_values(total, warmup):
    def make(optimizer, num_training_steps):
        return warmup_then_cosine(optimizer, num_training_steps, warmup)

    expected = [warmup_cosine_factor(s, total, warmup) for s in range(total)]
    assert factors(make, total) == pytest.approx(expected, abs=1e-12)


def test_the_default_configs_build_these_schedules():
    cfg = compose_config()
    for node, expected in [
        (cfg.gan.lr_scheduler, lambda s: pix2pix_factor(s, 40, "linear", 0.5)),
        (cfg.builder.base_lr_scheduler, lambda s: pix2pix_factor(s, 40, "cosine", 0.5)),
        (cfg.diffusion.lr_scheduler, lambda s: warmup_cosine_factor(s, 40, 100)),
    ]:
        assert factors(instantiate(node), 40) == pytest.approx([expected(s) for s in range(40)])


def configured_optimizers(module: L.LightningModule, steps: int = 10) -> tuple[list, list]:
    """What ``configure_optimizers`` builds for a Trainer of ``steps`` steps."""
    module.trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False,
                               enable_progress_bar=False, enable_model_summary=False)
    built = module.configure_optimizers()
    if isinstance(built, dict):
        return [built["optimizer"]], [built["lr_scheduler"]["scheduler"]]
    return built


def gan_module(*overrides: str) -> GANModule:
    gan = compose_config(list(overrides)).gan
    text = torch.zeros(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    return GANModule(E2GANGenerator(ngf=4, text_dim=8, heads=2), PatchDiscriminator(4, 2), *text,
                     **gan_training_options(gan))


def test_gan_optimisers_follow_the_config_for_both_networks():
    optimizers, schedulers = configured_optimizers(gan_module())
    assert [type(o) for o in optimizers] == [torch.optim.Adam, torch.optim.Adam]
    assert all(o.defaults["lr"] == 2e-4 and o.defaults["betas"] == (0.5, 0.999)
               for o in optimizers)
    assert len(schedulers) == 2


def test_gan_optimiser_and_schedule_switch_from_the_command_line():
    module = gan_module("gan.optimizer._target_=torch.optim.AdamW", "gan.optimizer.lr=1e-3",
                        "+gan.optimizer.weight_decay=0.05",
                        "gan.lr_scheduler._target_=diffusers.optimization.get_scheduler",
                        "~gan.lr_scheduler.decay", "~gan.lr_scheduler.decay_start",
                        "+gan.lr_scheduler.name=linear", "+gan.lr_scheduler.num_warmup_steps=4")
    optimizers, schedulers = configured_optimizers(module, steps=10)
    assert [type(o) for o in optimizers] == [torch.optim.AdamW, torch.optim.AdamW]
    assert all(o.defaults["weight_decay"] == 0.05 for o in optimizers)
    assert all(o.param_groups[0]["lr"] == 0.0 for o in optimizers)  # diffusers' warm-up starts at 0
    for _ in range(4):
        schedulers[0].step()
    assert optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3)  # warm: the AdamW rate


def test_denoiser_optimiser_switches_from_the_command_line():
    cfg = compose_config(["diffusion.optimizer._target_=torch.optim.Adam",
                          "diffusion.optimizer.lr=3e-3", "~diffusion.optimizer.weight_decay"])
    module = WeightDiffusionModule(
        MLPDenoiser(16, 4, 8, hidden_dim=8, depth=1), DDPMScheduler(),
        Condition(torch.zeros(1, 2, 8), torch.ones(1, 2, dtype=torch.bool)),
        optimizer=instantiate(cfg.diffusion.optimizer),
        lr_scheduler=instantiate(cfg.diffusion.lr_scheduler),
    )
    (optimizer,), (scheduler,) = configured_optimizers(module, steps=300)
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["lr"] == 3e-3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 / 100)  # first warm-up step
