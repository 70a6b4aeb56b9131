"""How an editor trained on small crops is applied to images of any size.

The generator is fully convolutional with one Transformer block, so it accepts any height and
width that are multiples of its stride (4), at full resolution:

* **Padding**: an image whose sides are not multiples of 4 is padded by reflection (replication
  for sides under 4 px) to the next multiple and the result is cropped back, so the output has
  exactly the input's size. An image of at most 4 px on both sides is refused
  (``ImageTooSmallError``): its bottleneck would be a single position.
* **Tiling** (optional): self-attention at the bottleneck runs over all (H/4)*(W/4) positions, so
  time and memory grow with the square of the pixel count (a 1024x1024 image is 256 times the
  attention work of a 256x256 one). With ``tile`` the image is edited in ``tile`` x ``tile``
  windows that overlap by ``overlap`` px and are blended with linear ramps, which keeps the cost
  linear in the pixel count. Instance normalisation then sees each window's statistics instead
  of the whole image's, so global colour edits can drift slightly between windows; the overlap
  hides the seams. Tiles of 128-256 px are close to the 64 px training crops in scale.
* **Automatic tiling** (``weightgen-apply``): without ``tile``, an image of more than
  ``auto_tile_above_px`` pixels is edited in ``auto_tile`` px tiles, since its full-resolution
  attention would cost :func:`attention_cost` (measured on 1 CPU thread: 512x512 px 3 s, 640x640
  px 9 s; a 3000x2000 px photo ran for over 300 s where 256 px tiles took 48 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from weightgen.errors import ConfigError, ImageTooSmallError

ImageFn = Callable[[torch.Tensor], torch.Tensor]


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad [N,C,H,W] on the bottom/right to multiples of ``multiple``."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return images
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)


def apply_padded(fn: ImageFn, images: torch.Tensor, multiple: int) -> torch.Tensor:
    """``fn`` on images padded to a multiple of ``multiple``, cropped back to the input size."""
    height, width = images.shape[-2:]
    return fn(pad_to_multiple(images, multiple))[..., :height, :width]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Window offsets along one side: steps of tile - overlap, the last flush with the end."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, device: torch.device) -> torch.Tensor:
    """Blend weights along one window side: rising over ``overlap`` px at each end, never zero."""
    position = torch.arange(length, device=device, dtype=torch.float32)
    edge = torch.minimum(position + 1, length - position) / (overlap + 1)
    return edge.clamp(max=1.0)


def apply_tiled(fn: ImageFn, images: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """``fn`` over overlapping ``tile`` windows of [N,C,H,W] (sides multiples of the stride).

    Windows are weighted by ramps and normalised by the summed weight, so a position covered by
    one window gets exactly that window's output and an overlap gets a smooth cross-fade.
    """
    if not 0 <= overlap < tile:
        raise ConfigError(f"tile overlap {overlap} must be in [0, tile={tile}); e.g. tile // 8")
    height, width = images.shape[-2:]
    out = None
    total = torch.zeros(1, 1, height, width, device=images.device)
    for top in _starts(height, tile, overlap):
        for left in _starts(width, tile, overlap):
            window = images[..., top : top + tile, left : left + tile]
            edited = fn(window)
            weight = (
                _ramp(window.shape[-2], overlap, images.device)[:, None]
                * _ramp(window.shape[-1], overlap, images.device)[None, :]
            )
            if out is None:
                out = torch.zeros(
                    *images.shape[:-3],
                    edited.shape[-3],
                    height,
                    width,
                    device=images.device,
                    dtype=edited.dtype,
                )
            out[..., top : top + tile, left : left + tile] += edited * weight
            total[..., top : top + tile, left : left + tile] += weight
    return out / total


def check_editable_size(height: int, width: int, stride: int) -> None:
    """Refuse an image whose bottleneck would hold a single position.

    Padded to multiples of ``stride``, an image of at most ``stride`` px on both sides shrinks
    to 1x1 at the bottleneck, where instance normalisation has nothing to normalise over.
    """
    if height <= stride and width <= stride:
        raise ImageTooSmallError(
            f"{width}x{height} px is too small to edit: the editor needs more than {stride} px "
            f"on at least one side"
        )


def attention_positions(height: int, width: int, stride: int) -> int:
    """Positions the bottleneck's self-attention runs over for an image edited whole."""
    return math.ceil(height / stride) * math.ceil(width / stride)


def attention_cost(height: int, width: int, stride: int, reference: int = 256) -> float:
    """Full-resolution self-attention work relative to one ``reference`` px square image: it
    grows with the square of the positions, so a 4x larger image costs 16x."""
    whole = attention_positions(height, width, stride)
    return (whole / attention_positions(reference, reference, stride)) ** 2


@dataclass(frozen=True)
class AutoTile:
    """Edit an image of more than ``above_px`` pixels in ``tile`` px windows when no tile is
    given: whole, its attention would cost :func:`attention_cost`."""

    tile: int
    above_px: int


def auto_tile_for(
    height: int, width: int, tile: int | None, auto_tile: AutoTile | None
) -> int | None:
    """The tile to edit an image with: ``tile`` when given; else ``auto_tile.tile`` when the
    image has more than ``auto_tile.above_px`` pixels; else None (the whole image)."""
    if tile is not None or auto_tile is None or height * width <= auto_tile.above_px:
        return tile
    return auto_tile.tile


def apply_any_size(
    fn: ImageFn, images: torch.Tensor, stride: int, tile: int | None = None, overlap: int = 32
) -> torch.Tensor:
    """The documented policy: full resolution with reflection padding, tiled if ``tile`` is set."""
    check_editable_size(*images.shape[-2:], stride)
    if tile is None:
        return apply_padded(fn, images, stride)
    if tile <= stride or tile % stride:
        raise ConfigError(
            f"tile={tile} must be a multiple of the generator stride {stride} larger than "
            f"{stride} (a {stride}x{stride} window is too small to edit), e.g. tile=256"
        )
    return apply_padded(lambda x: apply_tiled(fn, x, tile, overlap), images, stride)
