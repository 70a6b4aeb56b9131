"""A training recipe: overrides of the ``gan`` group (optimiser, LR schedule, loss) for one kind of
GAN training, merged over the run's group.

Two places take one: ``bench.recipes`` (per fine-tune method) and ``builder.adapter_recipe`` (the
weight store's adapters, e.g. a higher rate for fewer steps). A weight-store row records
:func:`recipe_fingerprint` of the settings its adapter was trained with, so a build resumed with
another recipe or step count trains those adapters again instead of mixing the two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

from weightgen.errors import ConfigError
from weightgen.utils.io import sha256_bytes

# The parts of the ``gan`` group that decide how a GAN trains (the networks are the base's).
TRAINING_KEYS = ("optimizer", "lr_scheduler", "loss")


def check_recipe(recipe: Mapping | DictConfig | None, gan: DictConfig, where: str) -> dict:
    """``recipe`` as a plain dict, or a :class:`ConfigError` naming ``where`` when it is not a
    mapping of the ``gan`` group's keys (a typo would otherwise be ignored)."""
    if recipe is None:
        return {}
    plain = OmegaConf.to_container(recipe, resolve=True) if isinstance(recipe, DictConfig) else recipe
    strange = sorted(set(plain) - set(gan)) if isinstance(plain, Mapping) else []
    if not isinstance(plain, Mapping) or strange:
        raise ConfigError(f"{where} does not fit the gan group (unknown keys: "
                          f"{', '.join(strange) if strange else repr(plain)}): give overrides of its groups, "
                          f"e.g. {{optimizer: {{lr: 1.0e-4}}, lr_scheduler: {{warmup_steps: 20}}}}")
    return dict(plain)


def with_recipe(gan: DictConfig, recipe: Mapping | None) -> DictConfig:
    """The ``gan`` group a training uses: ``recipe`` merged over it (a recipe may add keyword
    arguments, e.g. ``lr_scheduler.warmup_steps``); ``gan`` itself when there is none."""
    if not recipe:
        return gan
    return OmegaConf.merge(OmegaConf.to_container(gan, resolve=True), recipe)


def recipe_fingerprint(gan: DictConfig, steps: int) -> str:
    """sha256 of how a GAN is trained: the ``gan`` group's :data:`TRAINING_KEYS` (recipe merged)
    and the step count (a schedule decays over it)."""
    training = {key: OmegaConf.to_container(gan[key], resolve=True) for key in TRAINING_KEYS}
    return sha256_bytes(json.dumps({"steps": int(steps), **training}, sort_keys=True).encode())
