"""The run folder is made first, here, so a bad artifacts root is one clear error.

Hydra makes its output folder (``${paths.run_dir}/hydra/...``) before the task runs; with
``WEIGHTGEN_ARTIFACTS`` pointing at a file or at a place no folder can be made, that ends in a
raw ``NotADirectoryError`` or a chain of logging tracebacks. ``RunFolderCheck`` (a Hydra callback
in ``conf/hydra/default.yaml``) makes the folder before Hydra does and names the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from weightgen.cli.user_errors import user_errors_reported
from weightgen.errors import ConfigError
from weightgen.utils.paths import file_in_the_way


def _problem_and_fix(folder: Path, artifacts: Path) -> tuple[str, str]:
    """Which setting put the folder there, and how to change it, for the message."""
    if folder == artifacts or folder.is_relative_to(artifacts):
        return (
            f"the artifacts root {artifacts} (WEIGHTGEN_ARTIFACTS, or paths.artifacts=...) "
            f"cannot hold the run folder {folder}",
            "point WEIGHTGEN_ARTIFACTS (or paths.artifacts=...) at a writable folder, e.g. "
            "WEIGHTGEN_ARTIFACTS=$HOME/weightgen-artifacts",
        )
    return f"the run folder paths.run_dir={folder} cannot be made", (
        "point paths.run_dir at a writable folder"
    )


def make_run_folder(folder: str | Path, artifacts: str | Path) -> Path:
    """Make ``folder`` (a run folder under ``artifacts``) or raise a ``ConfigError`` naming why."""
    folder, artifacts = Path(folder).absolute(), Path(artifacts).absolute()
    problem, fix = _problem_and_fix(folder, artifacts)
    blocking_file = folder if folder.is_file() else file_in_the_way(folder)
    if blocking_file is not None:
        raise ConfigError(f"{problem}: {blocking_file} is a file, not a folder; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"{problem}: making it failed ({err.strerror}: {err.filename}); {fix}"
        ) from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{problem}: it is not writable; {fix}")
    return folder


class RunFolderCheck(Callback):
    """Make the run folder (a multirun: the artifacts root) before Hydra writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with user_errors_reported(config.debug):
            make_run_folder(config.paths.run_dir, config.paths.artifacts)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with user_errors_reported(config.debug):
            make_run_folder(config.paths.artifacts, config.paths.artifacts)
