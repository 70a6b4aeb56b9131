"""How an entry point ends on a user error: ``error: <message>`` on stderr and exit status 1.

A ``WeightgenError`` is a problem the user can fix, and its message says how; Hydra's traceback
in front of it only hides that line. ``HYDRA_FULL_ERROR=1`` or the ``debug=true`` config key let
the error through, so its traceback shows. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode

from weightgen.errors import WeightgenError


def in_multirun() -> bool:
    """Inside a Hydra multirun, where Hydra records a job's exception as that job's failure and
    still runs the other jobs (exiting from one job would end the whole sweep)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def user_error(err: BaseException) -> WeightgenError | None:
    """The ``WeightgenError`` behind ``err``: itself, or the one that Hydra's ``instantiate``
    wrapped in an ``InstantiationException`` (a config value refused by a constructor)."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err if isinstance(err, WeightgenError) else None


@contextmanager
def user_errors_reported(debug: bool = False) -> Iterator[None]:
    """Turn a ``WeightgenError`` raised inside into one line on stderr and ``SystemExit(1)``.

    Use it inside a ``hydra.main`` function: Hydra catches exceptions around it and prints them
    with a traceback, but lets ``SystemExit`` through. ``debug`` (or ``HYDRA_FULL_ERROR=1``)
    lets the error through instead.
    """
    try:
        yield
    except Exception as err:
        reported = user_error(err)
        if reported is None or debug or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {reported}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
