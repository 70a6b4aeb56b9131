"""Reading a user's images from disk: the one reader behind photo folders, pair folders and
``weightgen-apply``.

Every image comes back upright (EXIF rotation applied) as uint8 [H,W,3] RGB, whatever it was
stored as:

* **16-bit greyscale** (PNG; Pillow's ``I;16``/``I`` modes) is scaled to 8 bits (65535 -> 255).
  Pillow's own ``convert("RGB")`` clips it at 255 instead, which turns almost every pixel white.
  16-bit colour PNGs Pillow already reads as their high byte, which is the same scaling.
* **Palette, greyscale, bilevel and CMYK** images are converted to RGB.
* **Transparency** (an alpha channel, or a palette/greyscale/RGB transparency entry) is
  composited over the ``alpha_background`` colour (``white`` or ``black``), and the reader says so
  once per command in a log line; ``refuse`` makes such an image an error naming the file and the
  knob. An alpha channel that is opaque everywhere changes nothing and is dropped without a word.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from weightgen.errors import ConfigError, CorruptFileError, TransparentImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
UNREADABLE = (UnidentifiedImageError, Image.DecompressionBombError, OSError)
# The grey value transparent pixels are composited over; None refuses them.
ALPHA_BACKGROUNDS = {"white": 255, "black": 0, "refuse": None}
SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The png/jpg/webp files in ``folder`` (and below it if ``recursive``), hidden names
    skipped, sorted."""
    folder = Path(folder)
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith(".") and p.is_file())


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale scaled to 8-bit ``L`` (``LA`` when a grey value is marked transparent);
    any other image as it is."""
    if image.mode not in SIXTEEN_BIT_GREY:
        return image
    values = np.asarray(image).astype(np.float64)
    grey = Image.fromarray(np.round(values / 257).clip(0, 255).astype(np.uint8), "L")
    transparent = image.info.get("transparency")
    if not isinstance(transparent, int):
        return grey
    alpha = Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8), "L")
    return Image.merge("LA", (grey, alpha))


def rgb_or_rgba(image: Image.Image) -> np.ndarray:
    """uint8 [H,W,4] for an image that has transparency, else uint8 [H,W,3]."""
    image = eight_bit(image)
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        return np.asarray(image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def composite(pixels: np.ndarray, background: int) -> np.ndarray:
    """uint8 [H,W,4] over a uniform grey ``background`` (0-255) -> uint8 [H,W,3]."""
    alpha = pixels[..., 3:].astype(np.float32) / 255
    rgb = pixels[..., :3] * alpha + background * (1 - alpha)
    return np.round(rgb).astype(np.uint8)


def shrunk(pixels: np.ndarray, max_side: int | None) -> np.ndarray:
    """The longest side shrunk to ``max_side`` (Lanczos) if larger."""
    if max_side is None or max(pixels.shape[:2]) <= max_side:
        return pixels
    image = Image.fromarray(pixels)
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.LANCZOS))


class ImageReader:
    """One command's reader of a user's images (see the module policy); it says once, at the
    first image with transparent pixels, what it does with them."""

    def __init__(self, alpha_background: str, max_side: int | None = None):
        if alpha_background not in ALPHA_BACKGROUNDS:
            raise ConfigError(
                f"alpha_background={alpha_background!r} is not allowed: use one of "
                f"{list(ALPHA_BACKGROUNDS)} (what an image's transparent pixels become)"
            )
        self.alpha_background = alpha_background
        self.max_side = max_side
        self.said_so = False  # the line about compositing, once per reader

    def read(self, path: str | Path) -> np.ndarray:
        """uint8 [H,W,3]; a file Pillow cannot read raises one of ``UNREADABLE``."""
        with Image.open(path) as image:
            pixels = rgb_or_rgba(ImageOps.exif_transpose(image))
        if pixels.shape[-1] == 4:
            pixels = self._flattened(pixels, Path(path))
        return shrunk(pixels, self.max_side)

    def read_checked(self, path: str | Path) -> np.ndarray:
        """:meth:`read`, where a file that is not a readable image is an error naming it."""
        try:
            return self.read(path)
        except UNREADABLE as err:
            raise CorruptFileError(
                f"{path}: not a readable image ({err}); replace or remove it"
            ) from err

    def _flattened(self, pixels: np.ndarray, path: Path) -> np.ndarray:
        if pixels[..., 3].min() == 255:  # an alpha channel with nothing transparent
            return pixels[..., :3]
        background = ALPHA_BACKGROUNDS[self.alpha_background]
        if background is None:
            raise TransparentImageError(
                f"{path} has transparent pixels and alpha_background=refuse; flatten it "
                f"yourself, or pass alpha_background=white or alpha_background=black to "
                f"composite its transparent pixels on that colour"
            )
        if not self.said_so:
            self.said_so = True
            log.warning(
                "%s has transparent pixels: composited on %s (alpha_background=%s), as is every "
                "such image of this command; pass alpha_background=refuse to refuse them "
                "instead", path, self.alpha_background, self.alpha_background,
            )
        return composite(pixels, background)
