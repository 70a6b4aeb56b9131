"""Where pretrained weights come from: a local folder or a model-hub id.

A typo in a folder name should fail here, naming the folder, instead of turning into a hub
lookup that fails offline with an unrelated message.
"""

from __future__ import annotations

from pathlib import Path

from weightgen.errors import MissingInputError


def check_model_source(model: str, what: str) -> str:
    """Return `model` if it is an existing folder or a plausible hub id ("owner/name")."""
    model = str(model)
    path = Path(model).expanduser()
    looks_like_path = path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1
    if looks_like_path and not path.is_dir():
        raise MissingInputError(
            f"{what} folder {model!r} does not exist; pass a folder written with "
            "save_pretrained, or a hub id such as 'owner/name'"
        )
    return str(path) if looks_like_path else model


def load_error(model: str, what: str, err: Exception) -> FileNotFoundError:
    """The error for a source that exists as a name but could not be loaded."""
    return MissingInputError(
        f"{what} {model!r} could not be loaded ({err}); pass a folder written with "
        "save_pretrained, or a hub id with network access (or a filled Hugging Face cache)"
    )
