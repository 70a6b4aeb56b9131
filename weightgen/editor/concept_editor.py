"""One concept's image editor, loaded from a verified model folder.

The concept's text encoding is baked into the network as buffers, so inference needs neither a
text encoder nor an adapter library, and the exported graph takes only the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from weightgen.editor.model_folder import read_model_folder
from weightgen.editor.sizing import apply_any_size
from weightgen.gan.generator import E2GANGenerator
from weightgen.utils.grid import to_uint8


class BakedTextGenerator(nn.Module):
    """``E2GANGenerator`` with one prompt's tokens as buffers: image [B,3,H,W] in [-1,1] -> same."""

    def __init__(
        self, generator: E2GANGenerator, text_tokens: torch.Tensor, text_mask: torch.Tensor
    ):
        super().__init__()
        self.generator = generator
        self.stride = generator.stride
        self.register_buffer("text_tokens", text_tokens[None].float().clone())
        self.register_buffer("text_mask", text_mask[None].bool().clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch = image.shape[0]
        tokens = self.text_tokens.expand(batch, -1, -1)
        mask = self.text_mask.expand(batch, -1)
        return self.generator(image, tokens, mask)


class ConceptEditor:
    """Edits uint8 images with one concept; see ``weightgen.editor.sizing`` for the size policy."""

    def __init__(self, network: BakedTextGenerator, card: dict, device: str = "cpu"):
        self.device = torch.device(device)
        self.network = network.eval().requires_grad_(False).to(self.device)
        self.card = card

    @property
    def prompt(self) -> str:
        return self.card["prompt"]

    def module(self) -> BakedTextGenerator:
        """The network that takes only the image (text baked in), in eval mode: for export."""
        return self.network

    @torch.inference_mode()
    def edit_tensor(
        self, images: torch.Tensor, tile: int | None = None, overlap: int = 32
    ) -> torch.Tensor:
        """[N,3,H,W] in [-1,1], any H and W -> edited, same shape."""
        images = images.to(self.device, torch.float32)
        return apply_any_size(self.network, images, self.network.stride, tile, overlap)

    def edit(self, images: np.ndarray, tile: int | None = None, overlap: int = 32) -> np.ndarray:
        """uint8 [N,H,W,3] (or one [H,W,3]) -> edited uint8 of the same shape."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape[-1] != 3 or images.ndim not in (3, 4):
            raise ValueError(
                f"edit() takes uint8 RGB images [N,H,W,3] or [H,W,3], got {images.dtype} "
                f"{images.shape}; convert with PIL's .convert('RGB') and np.asarray"
            )
        single = images.ndim == 3
        batch = torch.tensor(images[None] if single else images).permute(0, 3, 1, 2)
        edited = self.edit_tensor(batch.float() / 127.5 - 1, tile, overlap)
        out = to_uint8(edited)
        return out[0] if single else out


def load_editor(folder: str | Path, device: str = "cpu") -> ConceptEditor:
    """Verify a model folder (every file against its sha256) and build its editor."""
    contents = read_model_folder(folder)
    network = BakedTextGenerator(
        contents.build_generator(), contents.text_tokens, contents.text_mask
    )
    return ConceptEditor(network, contents.card, device)
