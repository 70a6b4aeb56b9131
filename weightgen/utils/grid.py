"""Labelled image grids (PNG) that a person looks at instead of reading numbers."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from weightgen.utils.io import atomic_write_bytes


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> uint8 [N,H,W,3]."""
    array = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return array.permute(0, 2, 3, 1).cpu().numpy()


def save_grid(
    path: str | Path,
    rows: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    scale: int = 2,
) -> Path:
    """Save ``rows`` of uint8 HxWx3 images (equal sizes) as one PNG with optional labels."""
    if not rows or not rows[0]:
        raise ValueError("save_grid needs at least one row with one image")
    height, width = rows[0][0].shape[:2]
    cell_h, cell_w = height * scale, width * scale
    font = ImageFont.load_default()
    label_w = 8 + 6 * max((len(s) for s in row_labels), default=0) if row_labels else 0
    header_h = 14 if col_labels else 0
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (label_w + ncols * cell_w, header_h + len(rows) * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(col_labels or []):
        draw.text((label_w + j * cell_w + 2, 1), text[: cell_w // 6], fill="black", font=font)
    for i, row in enumerate(rows):
        top = header_h + i * cell_h
        if row_labels:
            draw.text((2, top + cell_h // 2 - 5), row_labels[i], fill="black", font=font)
        for j, image in enumerate(row):
            tile = Image.fromarray(image).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (label_w + j * cell_w, top))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
