"""Learning-rate schedules composed from torch's schedulers, for Hydra ``lr_scheduler`` partials.

A LightningModule calls its ``lr_scheduler`` partial as ``lr_scheduler(optimizer=...,
num_training_steps=trainer.max_steps)``: the step count is only known when training starts.
diffusers' ``get_scheduler`` takes the same keywords, so it is a drop-in ``_target_`` as well
(``name: cosine``, ``num_warmup_steps: ...``).
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
)

from weightgen.errors import ConfigError

DECAYS = ("constant", "linear", "cosine")


def constant_then_decay(optimizer: Optimizer, num_training_steps: int, decay: str = "linear",
                        decay_start: float = 0.5, warmup_steps: int = 0) -> LRScheduler:
    """pix2pix's schedule: the base rate for the first ``decay_start`` of the steps, then a
    ``linear`` or ``cosine`` decay to zero at the last step (``constant``: no decay).

    ``warmup_steps`` > 0 first ramps the rate linearly from 1/warmup of it to all of it at step
    ``warmup - 1`` (cut to half of a short run; the decay still starts at ``decay_start``): a
    fine-tune that starts from good weights can be kept from washing them out (``bench.recipes``).
    """
    if decay not in DECAYS:
        raise ConfigError(f"the learning-rate schedule's decay={decay!r} is unknown; use one of "
                          f"{list(DECAYS)}")
    if warmup_steps < 0:
        raise ConfigError(f"the learning-rate schedule's warmup_steps={warmup_steps} must be >= 0 "
                          f"(0: none)")
    phases: list[tuple[LRScheduler, int]] = []  # (scheduler, the step it starts at)
    total = max(0, num_training_steps)
    warmup = min(warmup_steps, total // 2)
    if warmup > 0:
        ramp = LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0,
                        total_iters=warmup - 1)
        phases.append((ramp, 0))
    start = max(int(total * decay_start), warmup)
    if decay == "constant" or total <= 0:
        phases.append((ConstantLR(optimizer, factor=1.0, total_iters=0), warmup))
    else:
        if start > warmup:  # hold the base rate until the decay
            phases.append((ConstantLR(optimizer, factor=1.0, total_iters=0), warmup))
        length = max(1, total - start)
        tail = (LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=length)
                if decay == "linear" else CosineAnnealingLR(optimizer, T_max=length))
        phases.append((tail, start))
    if len(phases) == 1:
        return phases[0][0]
    return SequentialLR(optimizer, [phase for phase, _ in phases],
                        milestones=[begin for _, begin in phases[1:]])


def warmup_then_cosine(optimizer: Optimizer, num_training_steps: int,
                       num_warmup_steps: int = 100) -> LRScheduler:
    """A linear warm-up reaching the base rate at step ``warmup - 1``, then a cosine decay to zero
    at the last step; the warm-up is cut to half of a short run."""
    total = max(1, num_training_steps)
    warmup = max(1, min(num_warmup_steps, total // 2))
    ramp = LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1)
    decay = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
    return SequentialLR(optimizer, [ramp, decay], milestones=[warmup])
