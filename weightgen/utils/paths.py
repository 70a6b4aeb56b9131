"""Checks on a path before anything is written to it."""

from __future__ import annotations

from collections.abc import Mapping
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
