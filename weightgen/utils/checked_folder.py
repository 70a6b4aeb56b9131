"""An artifact folder that checks itself: a meta JSON, safetensors files and their sha256.

The base GAN and the weight generator are both stored this way. ``<name>.safetensors`` holds one
state dict, the meta JSON records its sha256 as ``<name>_sha256`` and is written last, so a
folder with its meta file is complete. Loading refuses a folder made for another configuration
(``expect``: meta key -> what the caller uses) with an error naming both sides and the fix; a
meta file that is not a JSON object (truncated, edited) is a ``CorruptFileError`` naming it and
how to make the folder again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from weightgen.errors import ConfigError, CorruptFileError, MissingInputError
from weightgen.utils.differences import describe, differences
from weightgen.utils.io import (
    atomic_save_safetensors,
    atomic_write_json,
    load_safetensors,
    sha256_file,
)


def save_checked_folder(folder: str | Path, meta_name: str,
                        states: Mapping[str, Mapping[str, torch.Tensor]], meta: dict) -> dict:
    """Write each ``states[name]`` to ``<name>.safetensors``, then the meta (with the sha256s)."""
    folder = Path(folder)
    meta = dict(meta)
    for name, state in states.items():
        meta[f"{name}_sha256"] = atomic_save_safetensors(state, folder / f"{name}.safetensors")
    atomic_write_json(folder / meta_name, meta)
    return meta


def _read_meta(meta_path: Path) -> dict:
    """The meta JSON object at ``meta_path``; ``ValueError`` saying why it cannot be read."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise ValueError(f"a JSON {type(meta).__name__}, not an object")
    return meta


def read_checked_meta(folder: str | Path, meta_name: str, what: str, how_to_make: str,
                      expect: Mapping | None = None, how_to_fix: str = "") -> dict:
    """The folder's meta JSON; a missing folder or a damaged meta file names ``how_to_make``,
    a mismatch ``how_to_fix``."""
    folder = Path(folder)
    meta_path = folder / meta_name
    if not meta_path.is_file():
        raise MissingInputError(f"no {what} at {folder}; {how_to_make}")
    try:
        meta = _read_meta(meta_path)
    except ValueError as err:
        raise CorruptFileError(f"{meta_path} is damaged ({err}), so the {what} at {folder} "
                               f"cannot be read; {how_to_make}") from err
    for key, wanted in (expect or {}).items():
        if meta.get(key) != wanted:
            found = differences(meta.get(key), wanted, key)  # only what differs, not the records
            raise ConfigError(
                f"the {what} at {folder} was trained for {describe(found, 1)}, but this run "
                f"configures {describe(found, 2)}; {how_to_fix}"
            )
    return meta


def load_checked_state(folder: str | Path, meta: dict, name: str) -> dict[str, torch.Tensor]:
    """``<name>.safetensors`` of the folder, verified against the meta's ``<name>_sha256``."""
    return load_safetensors(Path(folder) / f"{name}.safetensors", meta[f"{name}_sha256"])


def intact_meta(folder: str | Path, meta_name: str,
                weight_names: Callable[[dict], Iterable[str]]) -> dict | None:
    """The folder's meta when it is readable and every weight file it lists
    (``weight_names(meta)``) is there with its sha256; None when the folder must be made again."""
    meta_path = Path(folder) / meta_name
    if not meta_path.is_file():
        return None
    try:
        meta = _read_meta(meta_path)
    except ValueError:
        return None
    return meta if states_intact(folder, meta, weight_names(meta)) else None


def states_intact(folder: str | Path, meta: Mapping, names: Iterable[str]) -> bool:
    """Whether each ``<name>.safetensors`` is in ``folder`` with the sha256 that ``meta`` lists
    (a cheap resume check that loads nothing)."""
    folder = Path(folder)
    return all((folder / f"{name}.safetensors").is_file()
               and sha256_file(folder / f"{name}.safetensors") == meta.get(f"{name}_sha256")
               for name in names)
