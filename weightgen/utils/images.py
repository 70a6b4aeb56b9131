"""Reading images from disk: the one reader behind photo folders, pair folders and
``weightgen-apply``.

Images come back upright (EXIF rotation applied) as uint8 [H,W,3] RGB (alpha dropped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from weightgen.errors import CorruptFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
UNREADABLE = (UnidentifiedImageError, Image.DecompressionBombError, OSError)


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The png/jpg/webp files in ``folder`` (and below it if ``recursive``), hidden names
    skipped, sorted."""
    folder = Path(folder)
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith(".") and p.is_file())


def read_rgb(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """uint8 [H,W,3] upright; longest side shrunk to ``max_side`` if larger."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    if max_side is not None and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.LANCZOS)
    return np.asarray(image)


def read_image(path: str | Path) -> np.ndarray:
    """:func:`read_rgb`, where a file that is not a readable image is an error naming it."""
    try:
        return read_rgb(path)
    except UNREADABLE as err:
        raise CorruptFileError(f"{path}: not a readable image ({err}); replace or remove it") from err
