"""The block diffusion LightningModule: learns to denoise weight blocks given their condition.

Noise schedule and forward process come from diffusers' ``DDPMScheduler``. The prediction type is
config: ``sample`` (the clean block, the default: one-step generation from pure noise needs it) or
``epsilon``. With probability ``cond_drop_prob`` a training prompt is replaced by the empty
prompt, so the same network also learns the unconditional model that classifier-free guidance
needs at sampling time. A concept with several phrasings is conditioned on one of them drawn per
training item (``diffusion.data.phrasings=all``); validation always uses the first, its prompt.
The optimiser and LR schedule are Hydra partials (``diffusion.optimizer``,
``diffusion.lr_scheduler``: AdamW, linear warm-up then cosine decay), stepped every step.

Each item's condition (:class:`~weightgen.diffusion.condition.Condition`) is built here, once per
batch, from its concept: the token states, mask and pooled vector of one of its texts and, with
example pairs, their vector; the denoiser reads what its ``conditioning``
(``diffusion.conditioning``) and ``example_dim`` use. With ``text_noise = s > 0``
(``diffusion.text_noise``) every training text vector v (each token state and the pooled vector)
becomes ``v + s * rms(v) * n`` with n ~ N(0, I) and rms(v) = sqrt(mean(v**2)) over its features:
noise whose norm is about ``s * |v|``, the same relative size for MiniLM's unit-norm pooled vector
and its larger token states. The noise is drawn from torch's global generator, which the
training seed (``seed``, through ``L.seed_everything``) sets, like the diffusion noise; it is
added before prompt dropout (an emptied prompt stays exactly empty) and never outside training
(validation, sampling). ``text_noise = 0`` draws nothing: training is as before the knob.

With ``examples`` (an :class:`~weightgen.diffusion.example_bank.ExampleBank`,
``diffusion.examples.k > 0``) every item also reads k of its concept's example pairs, drawn after
the text's draws; a dropped prompt drops them too. No bank draws nothing.
With a ``task_loss`` (``diffusion.task_loss``, :mod:`weightgen.diffusion.task_loss`) every
``every``-th step also generates whole adapters, runs them through the frozen base GAN and
optimises ``diffusion_weight * diffusion + weight * task`` (the task term logged as
``train/task_l1``). Its texts are drawn like the diffusion batch's (a training phrasing, text
noise) but never emptied: prompt dropout would ask an empty prompt to make a concept's edit.
Without one (the default) training is exactly the diffusion loss, as before the option.
With a ``prior`` (``diffusion.prior``, :mod:`weightgen.diffusion.prior`) the clean sample is the
item's block minus its out-of-fold prior on the item's own condition (drawn phrasing, text noise,
dropout and example pairs included): the denoiser learns the correction to the regression.
Without one nothing is drawn or computed differently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.example_bank import ExampleBank
from weightgen.diffusion.prior import OutOfFoldPrior
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
        texts: Condition,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        lr_scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler],
        cond_drop_prob: float = 0.0,
        phrasings: torch.Tensor | None = None,
        text_noise: float = 0.0,
        examples: ExampleBank | None = None,
        task_loss: TaskLoss | None = None,
        prior: OutOfFoldPrior | None = None,
    ):
        """``texts``: every text a concept may be conditioned on, T rows of tokens and mask (and
        pooled vectors: None calls the denoiser without them, fine for ``conditioning=tokens``).
        ``phrasings`` [C, P] long: concept c's texts are rows ``phrasings[c, :k]`` of them (its
        prompt first, -1 pads); None = one text per concept, text c for concept c.
        ``text_noise``: the relative noise on training texts (module docstring). ``examples``:
        the training concepts' example pairs (None: no examples). ``task_loss``: the objective
        through the GAN mixed in while training (None: the diffusion loss alone). ``prior``:
        the regression whose residual the denoiser learns (None: it learns the blocks).
        ``optimizer(params)`` and ``lr_scheduler(optimizer=..., num_training_steps=...)`` build
        the denoiser's optimiser and its per-step schedule when training starts."""
        super().__init__()
        if scheduler.config.prediction_type not in ("sample", "epsilon"):
            raise ConfigError(
                f"diffusion.scheduler.prediction_type={scheduler.config.prediction_type!r}: use sample "
                f"or epsilon"
            )
        if isinstance(text_noise, bool) or not text_noise >= 0:
            raise ConfigError(f"diffusion.text_noise={text_noise!r} is not allowed: use a "
                              f"number >= 0 (0: no noise)")
        if texts.tokens is None or texts.mask is None or texts.examples is not None:
            raise ValueError("texts must hold the tokens and mask of every training text (and "
                             "their pooled vectors), no examples: those come from `examples`")
        if prior is not None and task_loss is not None:
            raise ConfigError("diffusion.task_loss does not add diffusion.prior's prediction to "
                              "the adapters it scores: set diffusion.task_loss.weight=0 or "
                              "diffusion.prior=null")
        problems = texts.problems(len(texts), texts.tokens.shape[-1], 0)
        if problems:
            raise ValueError("texts: " + "; ".join(problems))
        self.denoiser = denoiser
        self.scheduler = scheduler
        # Every training text, reached from batch["concept"] through `phrasings`; buffers so
        # that they follow the module to its device, not part of the checkpoint.
        self.register_buffer("text_tokens", texts.tokens, persistent=False)
        self.register_buffer("text_mask", texts.mask, persistent=False)
        self.register_buffer("text_pooled", texts.pooled, persistent=False)
        if phrasings is None:
            phrasings = torch.arange(len(texts)).unsqueeze(1)
        if phrasings.ndim != 2 or not (phrasings[:, 0] >= 0).all():
            raise ValueError("phrasings must be [concepts, P] text indices, each row starting "
                             f"with the concept's prompt; got {tuple(phrasings.shape)}")
        self.register_buffer("phrasings", phrasings.long(), persistent=False)
        self.register_buffer("phrasing_counts", (phrasings >= 0).sum(1), persistent=False)
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.cond_drop_prob = cond_drop_prob
        self.text_noise = float(text_noise)
        self.examples = examples
        self.task_loss = task_loss  # not a submodule: the frozen GAN is no part of the checkpoint
        self.prior = prior

    @property
    def texts(self) -> Condition:
        """Every training text (on the module's device)."""
        return Condition(self.text_tokens, self.text_mask, self.text_pooled)

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

    def condition(self, concept: torch.Tensor, dropout: bool = True) -> Condition:
        """Each item's condition, from its concept: its text (while training a drawn phrasing with
        its text noise and, with ``dropout``, prompt dropout to the empty condition) and, with a
        bank, its example pairs (dropped with the prompt, or alone)."""
        condition = self.texts[self._text_index(concept)]
        if self.training and self.text_noise > 0:
            tokens = with_text_noise(condition.tokens, self.text_noise)  # the tokens' draws first
            pooled = (None if condition.pooled is None
                      else with_text_noise(condition.pooled, self.text_noise))
            condition = replace(condition, tokens=tokens, pooled=pooled)
        dropped = None
        if self.training and dropout and self.cond_drop_prob > 0:
            dropped = torch.rand(concept.shape[0], device=concept.device) < self.cond_drop_prob
            condition = condition.dropped(dropped)
        if self.examples is None:
            return condition
        return condition.with_examples(self.examples.draw(concept, dropped))

    def task_condition(self, concept: torch.Tensor) -> Condition:
        """What the task loss's adapters are generated from: the concepts' text, never emptied
        (prompt dropout would ask an empty prompt for a concept's edit), and their examples."""
        return self.condition(concept, dropout=False)

    def diffusion_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        clean, block_index = batch["blocks"], batch["block_index"]
        noise = torch.randn_like(clean)
        timesteps = torch.randint(
            0, self.scheduler.config.num_train_timesteps, (clean.shape[0],), device=clean.device
        )
        condition = self.condition(batch["concept"])  # add_noise draws nothing: the same draws
        if self.prior is not None:
            clean = clean - self.prior(condition, batch["concept"], block_index)
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        prediction = self.denoiser(noisy, timesteps, block_index, condition)
        target = clean if self.scheduler.config.prediction_type == "sample" else noise
        return F.mse_loss(prediction, target)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.diffusion_loss(batch)
        self.log("train/diffusion_loss", loss, prog_bar=True)
        if self.task_loss is None:
            return loss
        total = self.task_loss.diffusion_weight * loss
        if self.task_loss.applies_at(self.global_step):
            task = self.task_loss(self.denoiser, self.task_condition)
            self.log("train/task_l1", task, prog_bar=True)
            total = total + self.task_loss.weight * task
        return total

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/diffusion_loss", self.diffusion_loss(batch), sync_dist=True)
