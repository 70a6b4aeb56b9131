"""The offline editor: applies a concept's procedural recipe, so targets are exact.

It offers the same call as the diffusion editor, `edit(images, concept)`, so data code can
swap one for the other by config.
"""

from __future__ import annotations

import numpy as np

from weightgen.concepts.ops import build_recipe, run_ops
from weightgen.concepts.spec import Concept
from weightgen.errors import ConfigError


class ProceduralEditor:
    """Edit batches of images with a concept's recipe: uint8 (main contract) or float in [0, 1]."""

    def edit(self, images: np.ndarray, concept: Concept) -> np.ndarray:
        """images: [N, H, W, 3] uint8 or float in [0, 1]; returns the same shape and dtype."""
        if concept.recipe is None:
            raise ConfigError(
                f"concept {concept.id!r} has no recipe (instruction only); the procedural editor "
                "cannot make its targets: use editor=instruct_pix2pix or add a recipe"
            )
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images of shape [N, H, W, 3], got {images.shape}")
        is_uint8 = images.dtype == np.uint8
        if not is_uint8 and not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"expected uint8 or float images, got dtype {images.dtype}")
        ops = build_recipe(concept.recipe)
        floats = images.astype(np.float32) / 255.0 if is_uint8 else images.astype(np.float32)
        edited = np.stack([run_ops(image, ops) for image in floats]) if len(images) else floats
        if is_uint8:
            return np.round(edited * 255.0).astype(np.uint8)
        return edited.astype(images.dtype, copy=False)
