"""The one way entry points start: compose ``conf/weightgen.yaml`` with Hydra, check it, hand a
Workspace on. Scripts that call stages in their own process (``experiments/``) start the same way
through :func:`compose_workspace`.

This module and the ``cli`` modules import Hydra and OmegaConf only: the checks, the Workspace and
the stage (torch, Lightning, peft, diffusers, transformers: seconds of imports) are imported once
the config is composed, so ``--help`` and a bad run folder answer without them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import resource
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from weightgen.cli.user_errors import in_multirun, user_errors_reported

if TYPE_CHECKING:
    from weightgen.stages.workspace import Workspace


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
CONFIG_NAME = "weightgen"


def command_help(command: str) -> str:
    """The docstring of ``weightgen.cli.<command>``: the ``--help`` header (conf/hydra/help)."""
    return inspect.getdoc(importlib.import_module(f"{__package__}.{command}")) or command


if not OmegaConf.has_resolver("weightgen.command_help"):
    OmegaConf.register_new_resolver("weightgen.command_help", command_help)


def checked_workspace(cfg: DictConfig) -> Workspace:
    """The composed config checked (:func:`check_config`, a ``ConfigError`` on the first knob
    that cannot work), then its Workspace: how every command starts."""
    from weightgen.config_checks import check_config

    check_config(cfg)
    from weightgen.stages.workspace import Workspace

    return Workspace(cfg)


def stage_task(path: str) -> Callable[[Workspace], dict | None]:
    """The stage function ``"weightgen.stages.<module>:<function>"``, imported now."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def compose_workspace(overrides: Sequence[str] = (), config_name: str = CONFIG_NAME) -> Workspace:
    """The Workspace a command would get for ``overrides``, for a script that runs stages in its
    own process: the config composed as the command's Hydra app composes it, and checked."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides))
    return checked_workspace(cfg)


def print_json(ws: Workspace, summary: dict) -> None:
    print(json.dumps(summary, indent=2, default=str))


def entry_point(
    task: str,
    command: str,
    config_name: str = CONFIG_NAME,
    present: Callable[[Workspace, dict], None] = print_json,
) -> Callable[[], None]:
    """Wrap the stage ``task`` (``"weightgen.stages.<module>:<function>"``, a function
    ``workspace -> summary``) as a Hydra app that hands the summary (with the peak RSS) to
    ``present``: printed as JSON unless the entry point says otherwise. The stage is imported
    after the config checks (:func:`stage_task`).

    ``command`` is the calling ``weightgen.cli`` module's ``__name__``: Hydra names the job
    after it (``hydra.job.name``: its log file, and its ``--help``, which shows the module's
    docstring).

    A user error (``WeightgenError``) ends the app with its one-line message and status 1; a
    multirun job lets it through to Hydra, which fails that job and runs the others.
    """

    def main(cfg: DictConfig) -> dict | None:
        with user_errors_reported(cfg.debug or in_multirun()):
            ws = checked_workspace(cfg)
            summary = stage_task(task)(ws)
        if summary is not None:
            summary["peak_rss_mib"] = round(peak_rss_mib(), 1)
            present(ws, summary)
        return summary  # a multirun job's return value (the study callback gathers it)

    main.__module__ = command
    return hydra.main(config_path=CONFIG_DIR, config_name=config_name, version_base="1.3")(main)
