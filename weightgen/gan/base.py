"""The base GAN: the frozen starting point of every adapter and fine-tune, and its folder.

Folder layout (``paths.base_dir``)::

    generator.safetensors       generator weights
    discriminator.safetensors   discriminator weights
    base.json                   architecture (generator config, text encoder, image size),
                                train concepts, steps, seconds, validation PSNR/SSIM, sha256s

The architecture is what a set of weights is only valid for: it is recorded with the base and
with every weight generator, and loading either for another one is an error naming both.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from weightgen.gan.adapters import Adapter
from weightgen.gan.module import GANModule
from weightgen.gan.training_options import gan_training_options
from weightgen.text.base import TextEmbedding
from weightgen.utils.checked_folder import (
    intact_meta,
    load_checked_state,
    read_checked_meta,
    save_checked_folder,
)

META_FILE = "base.json"


@dataclass
class BaseGAN:
    """The frozen starting point of every adapter (and of every fine-tune)."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    meta: dict

    def fresh_copy(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        return deepcopy(self.generator), deepcopy(self.discriminator)


def build_networks(gan: DictConfig, text_dim: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Generator and discriminator of the ``gan`` config group, randomly initialised (seeded by
    the caller)."""
    return instantiate(gan.generator, text_dim=text_dim), instantiate(gan.discriminator)


def gan_module(gan: DictConfig, generator, discriminator, text: TextEmbedding,
               adapter: Adapter | None = None, **overrides) -> GANModule:
    """The GAN module over ``text``'s prompts with the ``gan`` group's losses, optimiser and LR
    schedule (``overrides`` win)."""
    return GANModule(generator, discriminator, text.tokens, text.mask, adapter=adapter,
                     **(gan_training_options(gan) | overrides))


def architecture(generator: DictConfig, text_encoder: dict, image_size: int) -> dict:
    """What a set of weights is only valid for: generator config, text encoder, image size."""
    return {
        "generator": OmegaConf.to_container(generator, resolve=True),
        "text_encoder": text_encoder,
        "image_size": int(image_size),
    }


def save_base(base_dir: str | Path, generator: torch.nn.Module, discriminator: torch.nn.Module,
              meta: dict) -> BaseGAN:
    """Write the base folder (weights first, ``base.json`` last) and return the base."""
    meta = save_checked_folder(
        base_dir, META_FILE,
        {"generator": generator.state_dict(), "discriminator": discriminator.state_dict()}, meta,
    )
    return BaseGAN(generator, discriminator, meta)


def base_files_intact(base_dir: str | Path) -> bool:
    """Whether ``base.json`` is readable and both weight files it lists are there with their
    sha256 (else the dataset stage trains the base again)."""
    return intact_meta(base_dir, META_FILE, lambda meta: ("generator", "discriminator")) is not None


def read_base_meta(base_dir: str | Path, expect: dict | None = None) -> dict:
    """The folder's ``base.json`` (what the base was trained for and from, its files' sha256);
    ``expect``: meta key -> what the caller uses (a mismatch names both)."""
    return read_checked_meta(
        base_dir, META_FILE, "base GAN",
        "train it with `weightgen-dataset builder.stage=base`", expect,
        "use the same gan/text_encoder/data.size or another run_name",
    )


def load_base(base_dir: str | Path, meta: dict, gan: DictConfig, text_dim: int) -> BaseGAN:
    """The trained base whose ``meta`` (:func:`read_base_meta`, checked by the caller) lists it."""
    generator, discriminator = build_networks(gan, text_dim)
    generator.load_state_dict(load_checked_state(base_dir, meta, "generator"))
    discriminator.load_state_dict(load_checked_state(base_dir, meta, "discriminator"))
    return BaseGAN(generator, discriminator, meta)
