"""Sampling weight blocks: one denoising step by default, DDIM with k steps as the option.

All blocks of an adapter are denoised in one batch. DDIM with ``timestep_spacing="trailing"``
starts at the last training timestep (pure noise), so ``steps=1`` is the paper's one-step
generation: the network's clean-sample prediction from noise at t = T-1. With
``guidance_scale != 1`` classifier-free guidance mixes the conditional and the empty-prompt
prediction (the module learns both when trained with ``cond_drop_prob > 0``); the unconditional
one reads the empty condition (``Condition.null``: zero tokens, an all-False mask, a zero pooled
vector and a zero example vector: no text, no examples), as in training. Sampling never adds
``diffusion.text_noise`` (that is a training-only augmentation).
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler
from torch import nn

from weightgen.diffusion.condition import Condition
from weightgen.errors import ConfigError
from weightgen.text.base import TextEmbedding


def ddim_from(train_scheduler_config: dict) -> DDIMScheduler:
    """A DDIM sampler on the same noise schedule as the training scheduler."""
    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type")
    return DDIMScheduler(
        **{k: train_scheduler_config[k] for k in keys},
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )


def empty_prompt(length: int, dim: int) -> TextEmbedding:
    """The empty prompt as the generator learned it (prompt dropout, guidance's unconditional
    branch), one row: zero token states, an all-False mask, a zero pooled vector. Not what a text
    encoder gives for "" (its start and end tokens, unmasked, and a non-zero pooled vector)."""
    return TextEmbedding(torch.zeros(1, length, dim), torch.zeros(1, length, dtype=torch.bool),
                         torch.zeros(1, dim))


@torch.no_grad()
def sample_blocks(
    denoiser: nn.Module,
    scheduler: DDIMScheduler,
    condition: Condition,
    num_blocks: int,
    block_size: int,
    steps: int = 1,
    guidance_scale: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """[num_blocks, block_size] clean blocks for one ``condition`` (one row: a prompt's text and,
    for a denoiser with example pairs, their vector), read by every block."""
    if steps < 1:
        raise ConfigError(f"steps={steps}: sampling needs at least one denoising step")
    was_training = denoiser.training
    denoiser.eval()
    device = next(denoiser.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    sample = torch.randn(num_blocks, block_size, generator=generator).to(device)
    block_index = torch.arange(num_blocks, device=device)
    condition = condition.to(device).expand(num_blocks)
    empty = condition.null()
    scheduler.set_timesteps(steps, device=device)
    for t in scheduler.timesteps:
        timesteps = torch.full((num_blocks,), int(t), device=device, dtype=torch.long)
        prediction = denoiser(sample, timesteps, block_index, condition)
        if guidance_scale != 1.0:
            unconditional = denoiser(sample, timesteps, block_index, empty)
            prediction = unconditional + guidance_scale * (prediction - unconditional)
        sample = scheduler.step(prediction, t, sample).prev_sample
    denoiser.train(was_training)
    return sample
