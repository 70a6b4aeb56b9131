"""Checks on a path before anything is written to it, and the folders writing there makes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def file_in_the_way(path: str | Path) -> Path | None:
    """The file among ``path``'s parent folders, if any: it would stop those folders from being
    made, so the check runs before the work instead of failing at the last step."""
    return next((p for p in Path(path).parents if p.is_file()), None)


def unwritable_reason(folder: str | Path) -> str | None:
    """Why no file can be created in ``folder`` (or, where it does not exist yet, in the
    nearest folder above it, where it would be made); None when files can be.

    ``os.access`` asks the kernel, so a read-only mount counts; root may write where the
    permission bits say no, and for root that is no reason.
    """
    existing = next(p for p in (Path(folder).absolute(), *Path(folder).absolute().parents)
                    if p.exists())
    if os.access(existing, os.W_OK | os.X_OK):
        return None
    return f"{existing} does not let this user create files"


@contextmanager
def made_folders_removed_if_empty(folder: str | Path) -> Iterator[None]:
    """Around writing into ``folder``: the folders the block makes (``folder`` and those of its
    parents that do not exist yet) are removed again if they are empty when it ends, returning
    or raising, so a command that wrote nothing leaves no empty folder behind."""
    missing = []  # deepest first
    for path in (Path(folder).absolute(), *Path(folder).absolute().parents):
        if path.exists():
            break
        missing.append(path)
    try:
        yield
    finally:
        for path in missing:
            if not path.is_dir() or any(path.iterdir()):
                break
            path.rmdir()
