"""The task loss: a generated adapter judged by what it does in the frozen base GAN.

Text-to-LoRA trained its generator better end to end (through the task) than by reconstructing
stored adapters. Here each applying step draws ``concepts`` training concepts, generates every
block of each one's adapter with the denoiser, decodes the blocks differentiably
(:meth:`BlockTokenizer.detokenize_differentiable`), runs the frozen base generator with base
weights + that delta (``torch.func.functional_call``: no copy of the network per step) on
``pairs`` of the concept's training sources, and takes the mean L1 to their targets. Only the
denoiser receives gradients: the base generator is in eval mode with ``requires_grad`` off.

Where the adapter is generated from (``timestep``):

* ``last``: pure noise x_T ~ N(0, I) at t = T-1, the denoiser's clean-sample prediction: exactly
  the one-step generation the benchmark samples (the DDIM step from T-1 returns it unchanged).
* ``random``: one of the concept's training adapters noised at a uniformly drawn timestep (one
  per concept, all its blocks alike), the diffusion loss's kind of input.

Both need ``prediction_type: sample`` (the prediction is the adapter); ``epsilon`` is refused.
Only full-delta adapters: the decoded tensors must be deltas of the base generator's own
parameters (a LoRA factor is not one, and is refused). The denoiser reads the condition its
module gives (:meth:`~weightgen.diffusion.module.WeightDiffusionModule.task_condition`: a drawn
training phrasing with its text noise, never an emptied prompt, and the example pairs); the GAN
reads each concept's prompt, as when an adapter is scored. Concepts, pairs, noise and timesteps
come from torch's global generator (the training seed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDPMScheduler
from torch import nn
from torch.func import functional_call

from weightgen.diffusion.condition import Condition
from weightgen.errors import ConfigError
from weightgen.weights.tokenizer import BlockTokenizer

TIMESTEPS = ("last", "random")

# concept indices [k] -> the denoiser's condition for them (k rows)
ConditionFor = Callable[[torch.Tensor], Condition]


class TaskLoss:
    """L1 of generated adapters on their concepts' training pairs, through the frozen base GAN.

    Concept c (an index into the module's concept list) is edited by the GAN with
    ``gan_text_tokens[c]``/``gan_text_mask[c]`` [C, L, D]/[C, L]; its pairs are the shared
    ``sources`` [P, 3, H, W] and its ``targets[c]`` [C, P, 3, H, W] (in [-1, 1]). Its training
    adapters are the rows of ``blocks`` [R, num_blocks, block_size] whose ``concept_index`` is c
    (read for ``timestep: random``). ``weight``, ``diffusion_weight`` and ``every`` say how the
    module mixes it with the diffusion loss.
    """

    def __init__(self, generator: nn.Module, tokenizer: BlockTokenizer, scheduler: DDPMScheduler,
                 gan_text_tokens: torch.Tensor, gan_text_mask: torch.Tensor,
                 sources: torch.Tensor, targets: torch.Tensor, blocks: torch.Tensor,
                 concept_index: torch.Tensor, *, weight: float, diffusion_weight: float = 1.0,
                 concepts: int = 2, pairs: int = 4, timestep: str = "last", every: int = 1):
        if scheduler.config.prediction_type != "sample":
            raise ConfigError(
                f"diffusion.task_loss needs diffusion.scheduler.prediction_type=sample (the "
                f"prediction is then the adapter it scores), not "
                f"{scheduler.config.prediction_type!r}; set "
                f"diffusion.scheduler.prediction_type=sample or diffusion.task_loss.weight=0")
        if timestep not in TIMESTEPS:
            raise ConfigError(f"diffusion.task_loss.timestep={timestep!r} is not allowed: use "
                              f"one of {', '.join(TIMESTEPS)}")
        parameters = dict(generator.named_parameters())
        foreign = [name for name, shape in tokenizer.layout
                   if name not in parameters or tuple(parameters[name].shape) != shape]
        if foreign:
            raise ConfigError(
                f"diffusion.task_loss needs full-delta adapters (adapter=full), whose tensors are "
                f"deltas of the base generator's parameters; {foreign[:3]} are not (LoRA "
                f"factors?): use adapter=full or diffusion.task_loss.weight=0")
        self.generator = generator.requires_grad_(False).eval()
        self.tokenizer, self.scheduler = tokenizer, scheduler
        self.gan_text_tokens, self.gan_text_mask = gan_text_tokens, gan_text_mask
        self.sources, self.targets = sources, targets
        self.blocks, self.concept_index = blocks, concept_index
        self.weight, self.diffusion_weight = float(weight), float(diffusion_weight)
        self.concepts = min(concepts, targets.shape[0])
        self.pairs = min(pairs, sources.shape[0])
        self.timestep, self.every = timestep, every
        self._device = torch.device("cpu")

    def applies_at(self, step: int) -> bool:
        return step % self.every == 0

    def _to(self, device: torch.device) -> None:
        """Follow the denoiser to its device (the module does not own these tensors)."""
        if device != self._device:
            self.generator.to(device)
            for name in ("gan_text_tokens", "gan_text_mask", "sources", "targets", "blocks",
                         "concept_index"):
                setattr(self, name, getattr(self, name).to(device))
            self._device = device

    def _noisy_adapters(self, concepts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The denoiser's input [k, num_blocks, block_size] and timestep [k] per concept."""
        k, device = concepts.shape[0], concepts.device
        shape = (k, self.tokenizer.num_blocks, self.tokenizer.block_size)
        last = self.scheduler.config.num_train_timesteps - 1
        if self.timestep == "last":
            return (torch.randn(shape, device=device),
                    torch.full((k,), last, device=device, dtype=torch.long))
        rows = [self._one_row_of(concept) for concept in concepts.tolist()]
        clean = self.blocks[torch.stack(rows)]
        timesteps = torch.randint(0, last + 1, (k,), device=device)
        return self.scheduler.add_noise(clean, torch.randn_like(clean), timesteps), timesteps

    def _one_row_of(self, concept: int) -> torch.Tensor:
        rows = (self.concept_index == concept).nonzero().reshape(-1)
        return rows[torch.randint(rows.numel(), (), device=rows.device)]

    def __call__(self, denoiser: nn.Module, condition_for: ConditionFor) -> torch.Tensor:
        """The mean L1 over this step's drawn concepts and pairs; differentiable in the
        denoiser's parameters only."""
        device = next(denoiser.parameters()).device
        self._to(device)
        concepts = torch.randperm(self.targets.shape[0], device=device)[: self.concepts]
        noisy, timesteps = self._noisy_adapters(concepts)
        k, num_blocks, block_size = noisy.shape
        adapters = denoiser(noisy.reshape(k * num_blocks, block_size),
                            timesteps.repeat_interleave(num_blocks),
                            torch.arange(num_blocks, device=device).repeat(k),
                            condition_for(concepts).repeat_interleave(num_blocks),
                            ).reshape(k, num_blocks, block_size)
        losses = []
        for concept, adapter in zip(concepts.tolist(), adapters, strict=True):
            picked = torch.randperm(self.sources.shape[0], device=device)[: self.pairs]
            losses.append((self._edit(concept, adapter, self.sources[picked])
                           - self.targets[concept, picked]).abs().mean())
        return torch.stack(losses).mean()

    def _edit(self, concept: int, adapter: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """The base generator with base weights + ``adapter``'s deltas, on ``sources``."""
        base = dict(self.generator.named_parameters())
        weights = {name: base[name] + delta
                   for name, delta in self.tokenizer.detokenize_differentiable(adapter).items()}
        n = sources.shape[0]
        return functional_call(self.generator, weights, (
            sources, self.gan_text_tokens[concept].expand(n, -1, -1),
            self.gan_text_mask[concept].expand(n, -1)))
