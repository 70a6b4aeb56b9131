"""The denoisers a weight generator can be made of: the allow-list ``generator.json`` names from.

``generator.json`` records its denoiser as ``_target_`` (the class's dotted name, as in the
``denoiser`` config group, so the file stays readable and older files keep loading) and the
constructor arguments. Loading never imports or calls what the file names: ``_target_`` must be
one of :data:`DENOISERS`, and the arguments are checked against that class's constructor
(:mod:`weightgen.utils.network_from_data`), so an edited file cannot run code
(``numpy.load`` of a pickle, ``builtins.open``) or build another network. Training builds its
denoiser through the same list, so every generator it writes can be loaded again.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.diffusion.unet1d import UNet1DDenoiser
from weightgen.utils.network_from_data import build_network, checked_arguments

DENOISERS: dict[str, type[nn.Module]] = {
    f"{cls.__module__}.{cls.__qualname__}": cls for cls in (MLPDenoiser, UNet1DDenoiser)
}


def denoiser_class(config) -> tuple[type[nn.Module], dict]:
    """(the class, its checked arguments) of a denoiser config (``_target_`` + arguments);
    ``ValueError`` naming what is wrong."""
    if not isinstance(config, Mapping):
        raise ValueError(f"the denoiser entry is not a mapping (got {type(config).__name__})")
    target = config.get("_target_")
    if target not in DENOISERS:
        raise ValueError(f"the denoiser _target_ {target!r} is not one of weightgen's denoisers "
                         f"({', '.join(DENOISERS)})")
    cls = DENOISERS[target]
    return cls, checked_arguments(cls, {k: v for k, v in config.items() if k != "_target_"})


def trained_denoiser(config, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """The denoiser ``config`` describes with its trained ``state`` loaded."""
    cls, kwargs = denoiser_class(config)
    return build_network(cls, kwargs, state)
