"""The ``gan`` group's training options: its loss words and keywords, its optimiser and its LR
schedule as the GAN module takes them.

Apart from the module (Lightning, peft): the config checks build them from the config alone.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

GAN_MODES = ("lsgan", "vanilla")  # gan.loss.gan_mode: least-squares or cross-entropy GAN loss


def gan_training_options(gan: DictConfig) -> dict:
    """GANModule's keyword arguments from the ``gan`` group: losses, optimiser and LR schedule."""
    return dict(gan.loss) | {
        "optimizer": instantiate(gan.optimizer, _convert_="all"),
        "lr_scheduler": instantiate(gan.lr_scheduler, _convert_="all"),
    }
