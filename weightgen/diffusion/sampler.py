"""Sampling weight blocks: one denoising step by default, DDIM with k steps as the option.

All blocks of an adapter are denoised in one batch. DDIM with ``timestep_spacing="trailing"``
starts at the last training timestep (pure noise), so ``steps=1`` is the paper's one-step
generation: the network's clean-sample prediction from noise at t = T-1. With
``guidance_scale != 1`` classifier-free guidance mixes the conditional and the empty-prompt
prediction (the module learns both when trained with ``cond_drop_prob > 0``); the unconditional
one reads the empty condition (``Condition.null``: zero tokens, an all-False mask, a zero pooled
vector and a zero example vector: no text, no examples), as in training. Sampling never adds
``diffusion.text_noise`` (that is a training-only augmentation).

A generator with a prior (``diffusion.prior``, :mod:`weightgen.diffusion.prior`) denoises the
residual from the condition's prior, and the unconditional branch's prior (the null condition's,
the training targets' mean) is another one: ``null_offset`` (the null prior minus the
condition's) moves the latent into the unconditional branch's coordinates (a noised residual at
timestep t is the noised adapter minus sqrt(alpha_bar_t) times its prior) and a clean-sample
prediction back, so guidance mixes whole adapters; an epsilon prediction is the same in both.
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
    null_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """[num_blocks, block_size] clean blocks for one ``condition`` (one row: a prompt's text and,
    for a denoiser with example pairs, their vector), read by every block. ``null_offset``
    [num_blocks, block_size]: with a prior, the null condition's prior minus this condition's
    (module docstring); the blocks are then the residual from this condition's prior."""
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
            unconditional = _unconditional(denoiser, scheduler, sample, t, timesteps,
                                           block_index, empty, null_offset)
            prediction = unconditional + guidance_scale * (prediction - unconditional)
        sample = scheduler.step(prediction, t, sample).prev_sample
    denoiser.train(was_training)
    return sample


def _unconditional(denoiser: nn.Module, scheduler: DDIMScheduler, sample: torch.Tensor,
                   t: torch.Tensor, timesteps: torch.Tensor, block_index: torch.Tensor,
                   empty: Condition, null_offset: torch.Tensor | None) -> torch.Tensor:
    """Guidance's unconditional prediction in the coordinates of the condition's prior."""
    if null_offset is None:
        return denoiser(sample, timesteps, block_index, empty)
    offset = null_offset.to(sample.device)
    scale = scheduler.alphas_cumprod[int(t)].sqrt().to(sample.device)
    prediction = denoiser(sample - scale * offset, timesteps, block_index, empty)
    return prediction + offset if scheduler.config.prediction_type == "sample" else prediction
