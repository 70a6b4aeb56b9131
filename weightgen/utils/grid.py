"""Labelled image grids (PNG) that a person looks at instead of reading numbers.

Small crops (64 px) are enlarged by a whole factor with nearest-neighbour sampling, so every cell
is at least ``min_cell`` px and an edit can be judged pixel by pixel; labels are never cut:
column labels wrap onto as many lines as they need and the row-label column is as wide as its
longest label.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from weightgen.utils.io import atomic_write_bytes

FONT_SIZE = 13
PADDING = 4


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> uint8 [N,H,W,3]."""
    array = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return array.permute(0, 2, 3, 1).cpu().numpy()


def display_scale(side: int, min_cell: int) -> int:
    """The whole enlargement factor that makes a ``side`` px image at least ``min_cell`` px."""
    return max(1, math.ceil(min_cell / side))


def wrap_label(text: str, width: float, measure) -> list[str]:
    """``text`` on lines no wider than ``width`` (``measure(str) -> px``), broken at spaces, and
    inside a word only where the word alone is too wide; no character is dropped."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if measure(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:
            if line and measure(line + char) > width:
                lines.append(line)
                line = ""
            line += char
    return lines + [line]


def save_grid(
    path: str | Path,
    rows: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    min_cell: int = 192,
) -> Path:
    """Save ``rows`` of uint8 HxWx3 images (equal sizes) as one PNG with optional labels."""
    if not rows or not rows[0]:
        raise ValueError("save_grid needs at least one row with one image")
    height, width = rows[0][0].shape[:2]
    scale = display_scale(min(height, width), min_cell)
    cell_h, cell_w = height * scale, width * scale
    font = ImageFont.load_default(size=FONT_SIZE)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    line_h = FONT_SIZE + 3
    label_w = (2 * PADDING + max(measure(s, font=font) for s in row_labels)) if row_labels else 0
    headers = [wrap_label(s, cell_w - 2 * PADDING, lambda t: measure(t, font=font))
               for s in col_labels or []]
    header_h = (2 * PADDING + line_h * max(len(h) for h in headers)) if headers else 0
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (math.ceil(label_w) + ncols * cell_w,
                               header_h + len(rows) * cell_h), "white")
    left = math.ceil(label_w)
    draw = ImageDraw.Draw(canvas)
    for j, lines in enumerate(headers):
        for k, line in enumerate(lines):
            draw.text((left + j * cell_w + PADDING, PADDING + k * line_h), line, fill="black",
                      font=font)
    for i, row in enumerate(rows):
        top = header_h + i * cell_h
        if row_labels:
            draw.text((PADDING, top + (cell_h - line_h) // 2), row_labels[i], fill="black",
                      font=font)
        for j, image in enumerate(row):
            tile = Image.fromarray(image).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (left + j * cell_w, top))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
