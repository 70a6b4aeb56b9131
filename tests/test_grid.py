"""Image grids people read: labels in full, small crops enlarged for display (issue 15)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from weightgen.utils.grid import display_scale, save_grid, wrap_label


def width_in_chars(text: str) -> float:
    return float(len(text))


def test_wrap_label_keeps_every_character_and_fits_the_width():
    for text in ("shuffled_prompt_init step 0", "denoised_init end", "sharpen+tint_blue.paraphrase",
                 "a b", ""):
        lines = wrap_label(text, 9, width_in_chars)
        assert all(len(line) <= 9 for line in lines), lines
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert wrap_label("denoised_init end", 40, width_in_chars) == ["denoised_init end"]
    assert wrap_label("denoised_init end", 13, width_in_chars) == ["denoised_init", "end"]


def test_small_crops_are_enlarged_and_long_labels_widen_the_grid(tmp_path):
    crop = np.zeros((64, 64, 3), dtype=np.uint8)
    assert display_scale(64, 192) == 3 and display_scale(256, 192) == 1
    short = save_grid(tmp_path / "short.png", [[crop, crop]], ["a"], ["source", "target"])
    long_label = "sharpen+tint_blue.paraphrase"
    long = save_grid(tmp_path / "long.png", [[crop, crop]], [long_label],
                     ["source", "shuffled_prompt_init step 0 " * 3])
    short_size, long_size = Image.open(short).size, Image.open(long).size
    assert short_size[0] >= 2 * 192 and short_size[1] >= 192
    assert long_size[0] > short_size[0]  # the row-label column grew to the whole label
    assert long_size[1] > short_size[1]  # the long column label wrapped onto more lines
