"""The block diffusion LightningModule: learns to denoise weight blocks given text + block index.

Noise schedule and forward process come from diffusers' ``DDPMScheduler``. The prediction type is
config: ``sample`` (the clean block, the default: one-step generation from pure noise needs it) or
``epsilon``. With probability ``cond_drop_prob`` a training prompt is replaced by the empty
prompt, so the same network also learns the unconditional model that classifier-free guidance
needs at sampling time. A concept with several phrasings is conditioned on one of them drawn per
training item (``diffusion.data.phrasings=all``); validation always uses the first, its prompt.
The optimiser and LR schedule are Hydra partials (``diffusion.optimizer``,
``diffusion.lr_scheduler``: AdamW, linear warm-up then cosine decay), stepped every step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from weightgen.errors import ConfigError


def phrasing_table(phrasings: list[tuple[str, ...]]) -> tuple[list[str], torch.Tensor]:
    """Concept c's texts ``phrasings[c]`` -> (every text once, in order; [C, P] indices into it,
    -1 padded): the inputs ``WeightDiffusionModule`` draws a concept's text from."""
    texts = list(dict.fromkeys(text for concept in phrasings for text in concept))
    width = max(len(concept) for concept in phrasings)
    table = torch.full((len(phrasings), width), -1, dtype=torch.long)
    for row, concept in enumerate(phrasings):
        table[row, : len(concept)] = torch.tensor([texts.index(text) for text in concept])
    return texts, table


class WeightDiffusionModule(L.LightningModule):
    def __init__(
        self,
        denoiser: nn.Module,
        scheduler: DDPMScheduler,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        lr_scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler],
        cond_drop_prob: float = 0.0,
        phrasings: torch.Tensor | None = None,
    ):
        """``text_tokens``/``text_mask`` [T, L, D]/[T, L]: every text a concept may be conditioned
        on. ``phrasings`` [C, P] long: concept c's texts are rows ``phrasings[c, :k]`` of them
        (its prompt first, -1 pads); None = one text per concept, text c for concept c.
        ``optimizer(params)`` and ``lr_scheduler(optimizer=..., num_training_steps=...)`` build the
        denoiser's optimiser and its per-step schedule when training starts."""
        super().__init__()
        if scheduler.config.prediction_type not in ("sample", "epsilon"):
            raise ConfigError(
                f"prediction_type={scheduler.config.prediction_type!r}: use sample or epsilon"
            )
        self.denoiser = denoiser
        self.scheduler = scheduler
        # Every training text, reached from batch["concept"] through `phrasings`; not part of the
        # checkpoint.
        self.register_buffer("text_tokens", text_tokens, persistent=False)
        self.register_buffer("text_mask", text_mask, persistent=False)
        if phrasings is None:
            phrasings = torch.arange(text_tokens.shape[0]).unsqueeze(1)
        if phrasings.ndim != 2 or not (phrasings[:, 0] >= 0).all():
            raise ValueError("phrasings must be [concepts, P] text indices, each row starting "
                             f"with the concept's prompt; got {tuple(phrasings.shape)}")
        self.register_buffer("phrasings", phrasings.long(), persistent=False)
        self.register_buffer("phrasing_counts", (phrasings >= 0).sum(1), persistent=False)
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.cond_drop_prob = cond_drop_prob

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.denoiser.parameters())
        scheduler = self.lr_scheduler_factory(optimizer=optimizer,
                                              num_training_steps=self.trainer.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _text_index(self, concept: torch.Tensor) -> torch.Tensor:
        """Which text each item is conditioned on: a drawn phrasing while training, else the prompt."""
        if not self.training or self.phrasings.shape[1] == 1:
            return self.phrasings[concept, 0]
        draw = torch.rand(concept.shape[0], device=concept.device) * self.phrasing_counts[concept]
        return self.phrasings[concept, draw.long()]

    def _text(self, concept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        text = self._text_index(concept)
        tokens, mask = self.text_tokens[text], self.text_mask[text]
        if self.training and self.cond_drop_prob > 0:
            drop = torch.rand(concept.shape[0], device=concept.device) < self.cond_drop_prob
            tokens = torch.where(drop[:, None, None], torch.zeros_like(tokens), tokens)
            mask = mask & ~drop[:, None]
        return tokens, mask

    def diffusion_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        clean, block_index = batch["blocks"], batch["block_index"]
        noise = torch.randn_like(clean)
        timesteps = torch.randint(
            0, self.scheduler.config.num_train_timesteps, (clean.shape[0],), device=clean.device
        )
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        tokens, mask = self._text(batch["concept"])
        prediction = self.denoiser(noisy, timesteps, block_index, tokens, mask)
        target = clean if self.scheduler.config.prediction_type == "sample" else noise
        return F.mse_loss(prediction, target)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.diffusion_loss(batch)
        self.log("train/diffusion_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/diffusion_loss", self.diffusion_loss(batch), sync_dist=True)
