"""The block diffusion LightningModule: learns to denoise weight blocks given text + block index.

Noise schedule and forward process come from diffusers' ``DDPMScheduler``. The prediction type is
config: ``sample`` (the clean block, the default: one-step generation from pure noise needs it) or
``epsilon``. With probability ``cond_drop_prob`` a training prompt is replaced by the empty
prompt, so the same network also learns the unconditional model that classifier-free guidance
needs at sampling time. A concept with several phrasings is conditioned on one of them drawn per
training item (``diffusion.data.phrasings=all``); validation always uses the first, its prompt.
The optimiser and LR schedule are Hydra partials (``diffusion.optimizer``,
``diffusion.lr_scheduler``: AdamW, linear warm-up then cosine decay), stepped every step.

Each item's text is its token states, their mask and the encoder's pooled vector; the denoiser
reads what its ``conditioning`` (``diffusion.conditioning``) uses. With ``text_noise = s > 0``
(``diffusion.text_noise``) every training text vector v (each token state and the pooled vector)
becomes ``v + s * rms(v) * n`` with n ~ N(0, I) and rms(v) = sqrt(mean(v**2)) over its features:
noise whose norm is about ``s * |v|``, the same relative size for MiniLM's unit-norm pooled vector
and its larger token states. The noise is drawn from torch's global generator, which the
training seed (``seed``, through ``L.seed_everything``) sets, like the diffusion noise; it is
added before prompt dropout (an emptied prompt stays exactly empty) and never outside training
(validation, sampling). ``text_noise = 0`` draws nothing: training is as before the knob.

With an ``example_bank`` (``diffusion.examples.k > 0``: standardised per-pair vectors of each
training concept, :mod:`weightgen.diffusion.examples`) every training item also reads the mean
of ``examples_k`` of its concept's pairs, drawn without replacement from torch's global generator
after the text's draws (validation: the first k). A dropped prompt drops them too (zeros: no
text, no examples, classifier-free guidance's unconditional); ``examples_drop_prob`` drops the
examples alone, so text-only generation is trained as well. No bank draws nothing.
With a ``task_loss`` (``diffusion.task_loss``, :mod:`weightgen.diffusion.task_loss`) every
``every``-th step also generates whole adapters, runs them through the frozen base GAN and
optimises ``diffusion_weight * diffusion + weight * task`` (the task term logged as
``train/task_l1``). Its texts are drawn like the diffusion batch's (a training phrasing, text
noise) but never emptied: prompt dropout would ask an empty prompt to make a concept's edit.
Without one (the default) training is exactly the diffusion loss, as before the option.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from weightgen.diffusion.task_loss import TaskLoss
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


def with_text_noise(vectors: torch.Tensor, scale: float) -> torch.Tensor:
    """``vectors`` [..., D] plus Gaussian noise of ``scale`` times each vector's RMS over D."""
    rms = vectors.square().mean(dim=-1, keepdim=True).sqrt()
    return vectors + scale * rms * torch.randn_like(vectors)


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
        text_pooled: torch.Tensor | None = None,
        text_noise: float = 0.0,
        example_bank: torch.Tensor | None = None,
        examples_k: int = 0,
        examples_drop_prob: float = 0.0,
        task_loss: TaskLoss | None = None,
    ):
        """``text_tokens``/``text_mask`` [T, L, D]/[T, L]: every text a concept may be conditioned
        on; ``text_pooled`` [T, D] their pooled vectors (``TextEmbedding.pooled``; None: the
        denoiser is called without one, fine for ``conditioning=tokens``). ``phrasings`` [C, P]
        long: concept c's texts are rows ``phrasings[c, :k]`` of them (its prompt first, -1
        pads); None = one text per concept, text c for concept c. ``text_noise``: the relative
        noise on training texts (module docstring). ``task_loss``: the objective through the GAN
        mixed in while training (None: the diffusion loss alone). ``optimizer(params)`` and
        ``lr_scheduler(optimizer=..., num_training_steps=...)`` build the denoiser's optimiser
        and its per-step schedule when training starts. ``example_bank`` [C, bank, F]: concept c's
        standardised per-pair vectors, ``examples_k`` of which each item averages (module
        docstring); None: no examples."""
        super().__init__()
        if scheduler.config.prediction_type not in ("sample", "epsilon"):
            raise ConfigError(
                f"diffusion.scheduler.prediction_type={scheduler.config.prediction_type!r}: use sample "
                f"or epsilon"
            )
        if isinstance(text_noise, bool) or not text_noise >= 0:
            raise ConfigError(f"diffusion.text_noise={text_noise!r} is not allowed: use a "
                              f"number >= 0 (0: no noise)")
        if text_pooled is not None and tuple(text_pooled.shape) != (text_tokens.shape[0],
                                                                     text_tokens.shape[2]):
            raise ValueError(f"text_pooled must be [{text_tokens.shape[0]}, "
                             f"{text_tokens.shape[2]}], got {list(text_pooled.shape)}")
        self.denoiser = denoiser
        self.scheduler = scheduler
        # Every training text, reached from batch["concept"] through `phrasings`; not part of the
        # checkpoint.
        self.register_buffer("text_tokens", text_tokens, persistent=False)
        self.register_buffer("text_mask", text_mask, persistent=False)
        self.register_buffer("text_pooled", text_pooled, persistent=False)
        if phrasings is None:
            phrasings = torch.arange(text_tokens.shape[0]).unsqueeze(1)
        if phrasings.ndim != 2 or not (phrasings[:, 0] >= 0).all():
            raise ValueError("phrasings must be [concepts, P] text indices, each row starting "
                             f"with the concept's prompt; got {tuple(phrasings.shape)}")
        self.register_buffer("phrasings", phrasings.long(), persistent=False)
        self.register_buffer("phrasing_counts", (phrasings >= 0).sum(1), persistent=False)
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.cond_drop_prob = cond_drop_prob
        self.text_noise = float(text_noise)
        if example_bank is not None and not 1 <= examples_k <= example_bank.shape[1]:
            raise ConfigError(f"diffusion.examples.k={examples_k} is not allowed with a bank of "
                              f"{example_bank.shape[1]} pairs per concept: use 1..bank")
        self.register_buffer("example_bank", example_bank, persistent=False)
        self.examples_k, self.examples_drop_prob = int(examples_k), float(examples_drop_prob)
        self.task_loss = task_loss  # not a submodule: the frozen GAN is no part of the checkpoint

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

    def _text(self, concept: torch.Tensor, dropout: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(tokens, mask, pooled or None) of each item: while training with its text noise and
        (``dropout``) prompt dropout (an emptied prompt: zero tokens, all-False mask, zero pooled
        vector)."""
        return self._text_and_drop(concept, dropout)[:3]

    def _text_and_drop(self, concept: torch.Tensor, dropout: bool = True) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """:meth:`_text` and which prompts it dropped ([B] bool; None: none could be)."""
        text = self._text_index(concept)
        tokens, mask = self.text_tokens[text], self.text_mask[text]
        pooled = None if self.text_pooled is None else self.text_pooled[text]
        if self.training and self.text_noise > 0:
            tokens = with_text_noise(tokens, self.text_noise)
            pooled = None if pooled is None else with_text_noise(pooled, self.text_noise)
        drop = None
        if self.training and dropout and self.cond_drop_prob > 0:
            drop = torch.rand(concept.shape[0], device=concept.device) < self.cond_drop_prob
            tokens = torch.where(drop[:, None, None], torch.zeros_like(tokens), tokens)
            mask = mask & ~drop[:, None]
            if pooled is not None:
                pooled = torch.where(drop[:, None], torch.zeros_like(pooled), pooled)
        return tokens, mask, pooled, drop

    def _examples(self, concept: torch.Tensor, dropped: torch.Tensor | None) -> torch.Tensor:
        """[B, F]: the mean of k of each item's concept pairs (training: drawn; else the first
        k), zeros where its prompt was ``dropped`` or, while training, its examples alone."""
        bank = self.example_bank[concept]  # [B, bank, F]
        if self.training:
            order = torch.rand(bank.shape[:2], device=bank.device).argsort(dim=1)
            picked = order[:, :self.examples_k]
        else:
            picked = torch.arange(self.examples_k, device=bank.device).expand(bank.shape[0], -1)
        vectors = torch.gather(bank, 1, picked[..., None].expand(-1, -1, bank.shape[2])).mean(1)
        keep = torch.ones(concept.shape[0], dtype=torch.bool, device=concept.device)
        if dropped is not None:
            keep = keep & ~dropped
        if self.training and self.examples_drop_prob > 0:
            keep = keep & (torch.rand(concept.shape[0], device=concept.device)
                           >= self.examples_drop_prob)
        return vectors * keep[:, None].to(vectors.dtype)

    def diffusion_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        clean, block_index = batch["blocks"], batch["block_index"]
        noise = torch.randn_like(clean)
        timesteps = torch.randint(
            0, self.scheduler.config.num_train_timesteps, (clean.shape[0],), device=clean.device
        )
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        tokens, mask, pooled, dropped = self._text_and_drop(batch["concept"])
        vectors = {} if pooled is None else {"text_pooled": pooled}
        if self.example_bank is not None:
            vectors["examples"] = self._examples(batch["concept"], dropped)
        prediction = self.denoiser(noisy, timesteps, block_index, tokens, mask, **vectors)
        target = clean if self.scheduler.config.prediction_type == "sample" else noise
        return F.mse_loss(prediction, target)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.diffusion_loss(batch)
        self.log("train/diffusion_loss", loss, prog_bar=True)
        if self.task_loss is None:
            return loss
        total = self.task_loss.diffusion_weight * loss
        if self.task_loss.applies_at(self.global_step):
            task = self.task_loss(self.denoiser, self._task_condition)
            self.log("train/task_l1", task, prog_bar=True)
            total = total + self.task_loss.weight * task
        return total

    def _task_condition(self, concept: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """What the task loss's adapters are generated from: the concepts' text (never emptied)
        and, with a bank, k of their example pairs (dropped alone like the diffusion batch's)."""
        tokens, mask, pooled = self._text(concept, dropout=False)
        vectors = {} if pooled is None else {"text_pooled": pooled}
        if self.example_bank is not None:
            vectors["examples"] = self._examples(concept, None)
        return tokens, mask, vectors

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/diffusion_loss", self.diffusion_loss(batch), sync_dist=True)
