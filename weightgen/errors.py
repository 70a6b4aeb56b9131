"""The errors a user can cause and fix: each message names the problem and the fix.

The command-line entry points print a ``WeightgenError`` as one line and exit non-zero (the
traceback comes back with ``HYDRA_FULL_ERROR=1`` or ``debug=true``); any other exception is a bug
and keeps its traceback. The subclasses also derive from the built-in error they refine, so code
that catches ``ValueError`` or ``RuntimeError`` keeps working.
"""

from __future__ import annotations


class WeightgenError(Exception):
    """Something the user can fix: bad input, a damaged or mismatched artifact, a busy run."""


class ConfigError(WeightgenError, ValueError):
    """A config value that cannot work (a negative count, an unknown option, a missing path)."""


class CorruptFileError(WeightgenError, ValueError):
    """A weight or data file that is missing, truncated or fails its checksum."""


class IncompleteStoreError(WeightgenError, RuntimeError):
    """Some concepts of the build have no (or not all) checkpoints in the store."""


class StaleArtifactError(WeightgenError, RuntimeError):
    """An artifact built from other inputs than this run's (another base, store or pair set)."""


class RunBusyError(WeightgenError, RuntimeError):
    """Another process holds this run's lock (it is building the same stores)."""


class InterruptedRunError(WeightgenError, RuntimeError):
    """The run was stopped (SIGTERM, Ctrl-C) before it wrote its results."""


class MissingInputError(WeightgenError, FileNotFoundError):
    """A file or folder the command reads does not exist (an input, or an earlier stage's output)."""


class OutputExistsError(WeightgenError, FileExistsError):
    """An output is in the way: writing would replace or mix with files the user already has."""


class UnknownConceptError(WeightgenError, KeyError):
    """A concept id that the run, its pair cache or its weight store does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # KeyError would print the message quoted


class MissingDependencyError(WeightgenError, ImportError):
    """An optional package the requested feature needs is not installed."""


class TransparentImageError(WeightgenError, ValueError):
    """An image with transparent pixels where the config refuses them (``alpha_background``)."""


class OutputNotWritableError(WeightgenError, PermissionError):
    """The folder a command writes into does not let this user create files there."""


class ImageTooSmallError(WeightgenError, ValueError):
    """An image too small for the editor's network (its bottleneck would hold one position)."""
