"""A network rebuilt from what a file says: a class the caller chose, checked arguments, and
weights that fit it.

Artifacts are data, never code. A metadata file (``generator.json``, ``model_card.json``) may
say which of the project's own classes its weights belong to, and with which constructor
arguments; the caller maps that name to a class through its own allow-list, and this module
checks every argument against the constructor's annotations and the weights against the network
before anything real is built. So an edited file can neither run a callable it names nor build a
network its weights do not fit (nor one too large for memory: the shapes are compared on torch's
``meta`` device, which allocates nothing). Problems are a plain ``ValueError`` describing them;
the caller names the file and the fix.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence

import torch
from torch import nn


def _fits(value, hint) -> bool:
    """Whether a JSON value is of the annotated type (bool is not an int here)."""
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin in (Sequence, list, tuple):
        return isinstance(value, list | tuple) and all(_fits(item, args[0]) for item in value)
    raise TypeError(f"{hint} is not a type a metadata file can hold; annotate the constructor "
                    f"with int, float, bool, str, a Sequence of them or None")


def _type_name(hint) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("collections.abc.", "")


def checked_arguments(cls: type, arguments) -> dict:
    """``arguments`` (read from a file) as keyword arguments of ``cls``: a mapping of its
    constructor's parameters, each of its annotated type, every required one present."""
    if not isinstance(arguments, Mapping):
        raise ValueError(f"the arguments of {cls.__name__} are not a mapping "
                         f"(got {type(arguments).__name__})")
    hints = typing.get_type_hints(cls.__init__)
    parameters = {name: p for name, p in inspect.signature(cls.__init__).parameters.items()
                  if name != "self"}
    unknown = sorted(set(arguments) - set(parameters))
    if unknown:
        raise ValueError(f"{cls.__name__} takes no argument {unknown[0]!r} (its arguments: "
                         f"{', '.join(parameters)})")
    missing = [name for name, p in parameters.items()
               if p.default is inspect.Parameter.empty and name not in arguments]
    if missing:
        raise ValueError(f"the argument {missing[0]!r} of {cls.__name__} is missing")
    for name, value in arguments.items():
        if not _fits(value, hints[name]):
            raise ValueError(f"the argument {name!r} of {cls.__name__} must be "
                             f"{_type_name(hints[name])}, got {value!r}")
    return dict(arguments)


def state_mismatch(expected: Mapping[str, torch.Tensor],
                   found: Mapping[str, torch.Tensor]) -> str | None:
    """How the weights ``found`` differ from the ``expected`` state dict's names and shapes
    (the first difference), or None when they fit."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing:
        return f"the weights lack {missing[0]!r} ({len(missing)} tensors missing)"
    if unexpected:
        return f"the weights hold {unexpected[0]!r}, which the network has not"
    for name, tensor in expected.items():
        if tuple(found[name].shape) != tuple(tensor.shape):
            return (f"{name!r} is {tuple(found[name].shape)} in the weights but "
                    f"{tuple(tensor.shape)} in the network")
    return None


def build_network(cls: type[nn.Module], arguments, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """``cls(**arguments)`` with ``state`` loaded, after checking both (``ValueError``: what does
    not fit); the class is the caller's choice, never a name read from a file."""
    kwargs = checked_arguments(cls, arguments)
    try:
        with torch.device("meta"):
            shell = cls(**kwargs)
    except (ValueError, TypeError, ArithmeticError, RuntimeError) as err:  # e.g. heads=0, depth=-1
        raise ValueError(f"{cls.__name__} cannot be built with these arguments: {err}") from err
    problem = state_mismatch(shell.state_dict(), state)
    if problem:
        raise ValueError(problem)
    network = cls(**kwargs)
    network.load_state_dict(state, strict=True)
    return network
