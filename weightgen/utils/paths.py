"""Checks on a path before anything is written to it, and the folders writing there makes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def folder_holding(path: str | Path, folders: Mapping[str, str | Path]) -> str | None:
    """The name of the innermost of ``folders`` (name -> folder) that ``path`` is or lies in, if
    any; links and ``..`` are resolved first, so no spelling of a path slips past."""
    target = Path(path).resolve()
    holding = {name: Path(folder).resolve() for name, folder in folders.items()}
    inside = [name for name, folder in holding.items() if target.is_relative_to(folder)]
    return max(inside, key=lambda name: len(holding[name].parts), default=None)


def file_in_the_way(path: str | Path) -> Path | None:
    """The file among ``path``'s parent folders, if any: it would stop those folders from being
    made, so the check runs before the work instead of failing at the last step."""
    return next((p for p in Path(path).parents if p.is_file()), None)


def unwritable_reason(folder: str | Path) -> str | None:
    """Why no file can be created in ``folder``, found by trying: the folder is made (with its
    missing parents) and a temporary file created in it, then both are removed again; None when
    that works.

    Trying, not asking ``os.access``, covers what permission bits do not tell: read-only mounts,
    folders no one can make (``/proc/x``), and root, who writes where the bits say no.
    """
    folder = Path(folder)
    with made_folders_removed_if_empty(folder):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"cannot make {err.filename or folder} ({err.strerror or err})"
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            return f"cannot create a file in it ({err.strerror or err})"
    return None


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
