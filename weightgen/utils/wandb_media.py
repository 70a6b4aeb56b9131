"""W&B dashboards of the stages: sample images, tables, curves and summary figures.

Stages hand their Lightning loggers to these functions; each does nothing unless one of them is
a ``WandbLogger`` (``logger=csv`` or ``logger=none`` turn W&B off), so no picture is rendered for
a dashboard that is not there. Sample images are strips: one sample a row, source | target |
output(s) side by side. Everything lands in the run's folder (``files/media``), so an offline run
keeps its pictures until ``wandb sync`` uploads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from weightgen.utils.grid import to_uint8

# Columns of one strip: each [k,3,H,W] in [-1, 1] (the networks' range) or uint8 [k,H,W,3].
Columns = Sequence[torch.Tensor | np.ndarray]


def wandb_loggers(loggers: Sequence | bool | None) -> list[WandbLogger]:
    """The W&B loggers among a stage's loggers (none when W&B is off)."""
    if not isinstance(loggers, Sequence):
        return []
    return [logger for logger in loggers if isinstance(logger, WandbLogger)]


def wandb_on(loggers: Sequence | bool | None) -> bool:
    return bool(wandb_loggers(loggers))


def sample_strip(columns: Columns) -> np.ndarray:
    """One uint8 [k*H, n*W, 3] image: sample i is row i, column j is ``columns[j][i]``."""
    arrays = [c if isinstance(c, np.ndarray) else to_uint8(c) for c in columns]
    count = min(len(a) for a in arrays)
    return np.concatenate([np.concatenate([a[i] for a in arrays], axis=1)
                           for i in range(count)], axis=0)


def log_strips(loggers, key: str, strips: Mapping[str, Columns], step: int | None = None) -> None:
    """One image per entry of ``strips`` (its caption: the key, e.g. a concept id) under ``key``."""
    if not strips:
        return
    for logger in wandb_loggers(loggers):
        logger.log_image(key, [sample_strip(c) for c in strips.values()], step=step,
                         caption=list(strips))


def log_pictures(loggers, key: str, paths: Sequence[Path], step: int | None = None) -> None:
    """PNG files a stage wrote (figures, grids), each under ``key/<file stem>`` (pictures of
    different sizes in one panel would be drawn at one size)."""
    for logger in wandb_loggers(loggers):
        for path in paths:
            logger.log_image(f"{key}/{path.stem}", [str(path)], step=step, caption=[path.name])


def log_table(loggers, key: str, columns: list[str], rows: list[list],
              step: int | None = None) -> None:
    """A ``wandb.Table`` of numbers and text.

    No pictures in tables: W&B keeps a table's images in an artifact outside the run folder, so
    an offline run would lose them; pictures go to image panels (``log_strips``, ``log_pictures``).
    """
    for logger in wandb_loggers(loggers):
        logger.log_table(key, columns=columns, data=rows, step=step)


def log_line_series(loggers, key: str, lines: Mapping[str, tuple[list, list]], title: str,
                    xname: str) -> None:
    """One chart, one line per entry of ``lines`` (name -> (xs, ys))."""
    for logger in wandb_loggers(loggers):
        import wandb  # only runs that log to W&B pay for its import

        chart = wandb.plot.line_series(
            xs=[list(xs) for xs, _ in lines.values()], ys=[list(ys) for _, ys in lines.values()],
            keys=list(lines), title=title, xname=xname,
        )
        logger.experiment.log({key: chart})


def flatten(values: Mapping, prefix: str = "") -> dict:
    """Nested dicts as ``a/b`` keys; None (a figure that does not exist) is left out."""
    flat = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{key}/")
        elif value is not None:
            flat[key] = value
    return flat


def update_summary(loggers, values: Mapping, prefix: str = "") -> None:
    """The run's headline figures (W&B's run table and summary), nested keys as ``a/b``."""
    for logger in wandb_loggers(loggers):
        logger.experiment.summary.update(flatten(values, prefix))


class ValidationImages(L.Callback):
    """At the end of each validation, log ``make_strips(module)`` under ``key`` to W&B.

    ``make_strips`` runs only when the trainer has a W&B logger, and on rank 0 only.
    """

    def __init__(self, key: str, make_strips: Callable[[L.LightningModule], Mapping[str, Columns]]):
        self.key, self.make_strips = key, make_strips

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if wandb_on(trainer.loggers):
            log_strips(trainer.loggers, self.key, self.make_strips(module), step=trainer.global_step)
