"""Source photos: the ones that ship inside scikit-image and scikit-learn, or a user folder.

Crops are drawn from whole photos; validation photos are held out whole, so no crop of a
validation photo ever appears in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.transform import resize

from weightgen.errors import ConfigError, MissingInputError
from weightgen.utils.images import IMAGE_SUFFIXES, ImageReader, image_files

SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
    "immunohistochemistry", "retina", "stereo_motorcycle",
)
SKLEARN_PHOTOS = ("china", "flower")


@dataclass(frozen=True)
class Photo:
    name: str
    pixels: np.ndarray  # uint8 [H, W, 3]


def _load_skimage(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    return image[0] if isinstance(image, tuple) else image


def _load_sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(f"{name}.jpg")


def bundled_photos() -> list[Photo]:
    """The colour photos shipped in the scikit-image and scikit-learn wheels (no download)."""
    photos = [Photo(n, _load_skimage(n)) for n in SKIMAGE_PHOTOS]
    photos += [Photo(n, _load_sklearn(n)) for n in SKLEARN_PHOTOS]
    return photos


def folder_photos(folder: str | Path, min_side: int, alpha_background: str) -> list[Photo]:
    """Every png/jpg/webp under ``folder`` (recursive); unreadable or tiny files are errors.

    Transparent pixels become ``alpha_background`` (``weightgen.utils.images``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"image folder {folder} does not exist; pass data.folder=<a folder>")
    files = image_files(folder, recursive=True)
    if not files:
        raise ConfigError(
            f"image folder {folder} holds no {'/'.join(IMAGE_SUFFIXES)} files; add photos to it"
        )
    reader = ImageReader(alpha_background)
    photos = []
    for path in files:
        pixels = reader.read_checked(path)
        if min(pixels.shape[:2]) < min_side:
            raise ConfigError(
                f"{path}: {pixels.shape[1]}x{pixels.shape[0]} is smaller than the crop size "
                f"{min_side}; remove it or lower data.size"
            )
        photos.append(Photo(str(path.relative_to(folder)), pixels))
    return photos


def split_photos(photos: list[Photo], val_photos: list[str]) -> tuple[list[Photo], list[Photo]]:
    """Hold whole photos out for validation; names not found are an error naming the choices."""
    names = {p.name for p in photos}
    unknown = sorted(set(val_photos) - names)
    if unknown:
        raise ConfigError(f"validation photos {unknown} not among the sources {sorted(names)}")
    train = [p for p in photos if p.name not in val_photos]
    val = [p for p in photos if p.name in val_photos]
    if not train or not val:
        raise ConfigError(
            "need at least one training and one validation photo; adjust data.val_photos"
        )
    return train, val


def random_crops(
    photos: list[Photo], count: int, size: int, rng: np.random.Generator, max_zoom: float = 3.0
) -> np.ndarray:
    """``count`` crops of side ``size``: a random square of side size..size*max_zoom, resized.

    Zooming out gives crops that show whole objects as well as texture; photos are visited in
    turn so each contributes equally.
    """
    crops = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        pixels = photos[i % len(photos)].pixels
        height, width = pixels.shape[:2]
        side = int(rng.uniform(size, min(size * max_zoom, height, width)))
        top = rng.integers(0, height - side + 1)
        left = rng.integers(0, width - side + 1)
        crop = pixels[top : top + side, left : left + side]
        if side != size:
            crop = resize(crop, (size, size), anti_aliasing=True, preserve_range=True)
        crops[i] = np.clip(np.rint(crop), 0, 255).astype(np.uint8)
    return crops
