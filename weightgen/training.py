"""Lightning Trainer construction and fitting shared by every stage (``trainer`` config group)."""

from __future__ import annotations

import lightning as L
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from weightgen.errors import ConfigError, InterruptedRunError
from weightgen.step_progress import StepProgressBar


def make_trainer(
    trainer_cfg: DictConfig,
    max_steps: int,
    val_every: int | None,
    callbacks: list | None = None,
    logger: list | bool = False,
    progress: bool = False,
    progress_label: str = "training",
) -> L.Trainer:
    """The configured Trainer (``conf/trainer/``) for one stage: ``max_steps`` steps, validation
    every ``val_every`` steps (None: never); ``progress`` shows one step-counting bar named
    ``progress_label``."""
    callbacks = list(callbacks or [])
    if progress:
        callbacks.append(StepProgressBar(progress_label))
    trainer = instantiate(trainer_cfg, _partial_=True)
    try:
        return trainer(
            max_steps=max_steps,
            val_check_interval=val_every if val_every else None,
            limit_val_batches=None if val_every else 0,
            callbacks=callbacks,
            logger=logger,
            enable_progress_bar=progress,
        )
    except MisconfigurationException as err:  # e.g. trainer=gpu where torch sees no GPU
        raise ConfigError(
            f"the trainer settings (accelerator={trainer_cfg.accelerator}, "
            f"devices={trainer_cfg.devices}, strategy={trainer_cfg.strategy}) cannot run on this "
            f"machine: {err}; use trainer=cpu, or install a torch build for your accelerator "
            "(make install TORCH_SPEC=...)"
        ) from err


def fit(trainer: L.Trainer, module: L.LightningModule, data: L.LightningDataModule, what: str) -> None:
    """``trainer.fit``; a run stopped by SIGTERM or Ctrl-C raises ``InterruptedRunError``.

    Lightning ends ``fit`` on SIGTERM with ``SIGTERMException``, a ``SystemExit`` without a code,
    so the process would exit 0 as if it had finished, having written nothing; after Ctrl-C it
    calls ``sys.exit(1)`` without a word. ``what`` names the work in the message.
    """
    try:
        trainer.fit(module, data)
    except SystemExit as stop:
        if not trainer.interrupted:
            raise
        raise InterruptedRunError(_interrupted_message(trainer, what)) from stop
    if trainer.received_sigterm or trainer.interrupted:
        raise InterruptedRunError(_interrupted_message(trainer, what))


def _interrupted_message(trainer: L.Trainer, what: str) -> str:
    cause = "SIGTERM" if trainer.received_sigterm else "Ctrl-C"
    return (
        f"{what} was interrupted ({cause}) at step {trainer.global_step} of {trainer.max_steps} "
        f"and wrote no result; what finished before it is kept: rerun the same command to "
        f"finish the run"
    )
