"""Checks on a path before anything is written to it."""

from __future__ import annotations

from pathlib import Path


def file_in_the_way(path: str | Path) -> Path | None:
    """The file among ``path``'s parent folders, if any: it would stop those folders from being
    made, so the check runs before the work instead of failing at the last step."""
    return next((p for p in Path(path).parents if p.is_file()), None)
