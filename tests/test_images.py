"""The one image reader (photo folders, pair folders, weightgen-apply): every format read right.

Issue 21: a 16-bit PNG was clipped to 8 bits (99.8% of its pixels white) and an image with alpha
lost it silently. Each test image is written here, with Pillow where Pillow can write it.
"""

from __future__ import annotations

import logging
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from weightgen.data.pair_folder import read_pair_folder
from weightgen.data.sources import folder_photos
from weightgen.errors import ConfigError, TransparentImageError
from weightgen.utils.images import ImageReader

RNG = np.random.default_rng(0)
# Half-transparent red, opaque green, fully transparent blue.
RGBA = np.array([[[255, 0, 0, 128], [0, 255, 0, 255], [0, 0, 255, 0]]] * 4, np.uint8)
ON_WHITE = np.array([[[255, 127, 127], [0, 255, 0], [255, 255, 255]]] * 4, np.uint8)
ON_BLACK = np.array([[[128, 0, 0], [0, 255, 0], [0, 0, 0]]] * 4, np.uint8)


def grey16(height=24, width=32) -> np.ndarray:
    """A 16-bit ramp over the whole range: most values are above 255."""
    return np.linspace(0, 65535, height * width).round().astype(np.uint16).reshape(height, width)


def write_png16_rgb(path, pixels: np.ndarray) -> None:
    """A 16-bit RGB PNG (Pillow reads these but cannot write them): IHDR, one IDAT, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_16_bit_greyscale_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    values = grey16()
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"  # the case Pillow clips
    pixels = ImageReader("white").read(tmp_path / "deep.png")
    expected = np.round(values / 257).astype(np.uint8)
    assert pixels.shape == (24, 32, 3) and pixels.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(pixels[..., channel], expected)
    assert (pixels == 255).mean() < 0.01  # clipped, 99% of this ramp was white


def test_a_16_bit_colour_png_keeps_its_colours(tmp_path):
    values = RNG.integers(0, 65536, (12, 10, 3)).astype(np.uint16)
    write_png16_rgb(tmp_path / "deep_rgb.png", values)
    pixels = ImageReader("white").read(tmp_path / "deep_rgb.png")
    assert np.abs(pixels.astype(int) - np.round(values / 257)).max() <= 1


def test_palette_greyscale_and_bilevel_images_become_rgb(tmp_path):
    indices = RNG.integers(0, 3, (8, 9)).astype(np.uint8)
    palette = np.array([[200, 10, 30], [5, 150, 90], [0, 0, 250]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.flatten().tolist())
    image.save(tmp_path / "palette.png")
    grey = RNG.integers(0, 256, (8, 9)).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey).save(tmp_path / "grey.jpg", quality=100)
    Image.fromarray(grey > 127).save(tmp_path / "bilevel.png")
    reader = ImageReader("white")
    np.testing.assert_array_equal(reader.read(tmp_path / "palette.png"), palette[indices])
    np.testing.assert_array_equal(reader.read(tmp_path / "grey.png"), np.stack([grey] * 3, -1))
    jpeg = reader.read(tmp_path / "grey.jpg")
    assert jpeg.shape == (8, 9, 3) and np.abs(jpeg.astype(int) - grey[..., None]).max() <= 3
    np.testing.assert_array_equal(reader.read(tmp_path / "bilevel.png")[..., 0],
                                  np.where(grey > 127, 255, 0))


@pytest.mark.parametrize(("background", "expected"), [("white", ON_WHITE), ("black", ON_BLACK)])
def test_transparent_pixels_are_composited_on_the_stated_background(tmp_path, background,
                                                                    expected):
    Image.fromarray(RGBA).save(tmp_path / "rgba.png")
    Image.fromarray(RGBA).save(tmp_path / "rgba.webp", lossless=True)
    reader = ImageReader(background)
    np.testing.assert_array_equal(reader.read(tmp_path / "rgba.png"), expected)
    np.testing.assert_array_equal(reader.read(tmp_path / "rgba.webp"), expected)


def test_every_kind_of_transparency_is_composited(tmp_path):
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.save(tmp_path / "palette.png", transparency=bytes([255, 0]))  # blue is transparent
    Image.fromarray(np.array([[[10, 255], [10, 0]]], np.uint8), "LA").save(tmp_path / "la.png")
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "grey16.png",
                                                             transparency=0)
    reader = ImageReader("white")
    np.testing.assert_array_equal(reader.read(tmp_path / "palette.png"), [[[255, 0, 0]] + [[255] * 3]])
    np.testing.assert_array_equal(reader.read(tmp_path / "la.png"), [[[10] * 3, [255] * 3]])
    np.testing.assert_array_equal(reader.read(tmp_path / "grey16.png"), [[[255] * 3, [255] * 3]])
    black = ImageReader("black")
    np.testing.assert_array_equal(black.read(tmp_path / "grey16.png"), [[[0] * 3, [255] * 3]])


def test_compositing_is_said_once_per_reader_and_an_opaque_alpha_is_silent(tmp_path, caplog):
    Image.fromarray(RGBA).save(tmp_path / "a.png")
    Image.fromarray(RGBA).save(tmp_path / "b.png")
    opaque = RGBA.copy()
    opaque[..., 3] = 255
    Image.fromarray(opaque).save(tmp_path / "opaque.png")
    caplog.set_level(logging.WARNING, logger="weightgen.utils.images")
    reader = ImageReader("white")
    np.testing.assert_array_equal(reader.read(tmp_path / "opaque.png"), opaque[..., :3])
    assert not caplog.records
    reader.read(tmp_path / "a.png")
    reader.read(tmp_path / "b.png")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "a.png has transparent pixels: composited on white" in message
    assert "alpha_background=refuse" in message


def test_refuse_names_the_image_and_the_knob(tmp_path):
    Image.fromarray(RGBA).save(tmp_path / "rgba.png")
    with pytest.raises(TransparentImageError, match=r"rgba.png has transparent pixels and "
                                                    r"alpha_background=refuse.*alpha_background=white"):
        ImageReader("refuse").read(tmp_path / "rgba.png")
    with pytest.raises(ConfigError, match="alpha_background='grey' is not allowed"):
        ImageReader("grey")


def _pair(root, name, source: Image.Image, target: Image.Image) -> None:
    for side, image in (("source", source), ("target", target)):
        (root / side).mkdir(parents=True, exist_ok=True)
        image.save(root / side / f"{name}.png")


def test_pair_folders_read_16_bit_and_transparent_images_like_apply(tmp_path):
    deep = grey16(20, 20)
    rgba = np.tile(RGBA, (5, 7, 1))[:20, :20]
    _pair(tmp_path, "deep", Image.fromarray(deep), Image.fromarray(65535 - deep))
    _pair(tmp_path, "clear", Image.fromarray(rgba), Image.fromarray(rgba))
    pairs = read_pair_folder(tmp_path, min_side=16, alpha_background="black")
    assert pairs.names == ["clear", "deep"]
    np.testing.assert_array_equal(pairs.sources[1][..., 0], np.round(deep / 257))
    np.testing.assert_array_equal(pairs.targets[1][..., 0], np.round((65535 - deep) / 257))
    np.testing.assert_array_equal(pairs.sources[0], ImageReader("black").read(
        tmp_path / "source" / "clear.png"))
    assert pairs.sources[0][0, 2].tolist() == [0, 0, 0]  # transparent blue on black
    with pytest.raises(TransparentImageError, match=r"source/clear.png has transparent pixels"):
        read_pair_folder(tmp_path, min_side=16, alpha_background="refuse")


def test_photo_folders_read_16_bit_images_scaled(tmp_path):
    Image.fromarray(grey16(20, 24)).save(tmp_path / "deep.png")
    (photo,) = folder_photos(tmp_path, min_side=16, alpha_background="white")
    np.testing.assert_array_equal(photo.pixels[..., 1], np.round(grey16(20, 24) / 257))
