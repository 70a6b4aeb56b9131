"""Lightning Trainer construction shared by every stage, from the ``trainer`` config group."""

from __future__ import annotations

import lightning as L
from omegaconf import DictConfig, OmegaConf


def make_trainer(
    trainer_cfg: DictConfig,
    max_steps: int,
    val_every: int | None,
    callbacks: list | None = None,
    logger: list | bool = False,
    progress: bool = False,
    **overrides,
) -> L.Trainer:
    """A step-based Trainer: validation every ``val_every`` steps (None: never), no checkpoints.

    Stages save their own artifacts (safetensors + manifests), so Lightning's pickled
    checkpoints are off.
    """
    kwargs = OmegaConf.to_container(trainer_cfg, resolve=True) | overrides
    return L.Trainer(
        **kwargs,
        max_steps=max_steps,
        val_check_interval=val_every if val_every else None,
        check_val_every_n_epoch=None,
        limit_val_batches=None if val_every else 0,
        num_sanity_val_steps=0,
        callbacks=callbacks or [],
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
