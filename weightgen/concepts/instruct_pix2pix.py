"""The paper's editor: diffusers' InstructPix2Pix applies a concept's instruction to photos.

This is the real path (`editor=instruct_pix2pix`); the offline default is the procedural editor.
Each image gets its own generator seeded from `seed` and the image's index, so an edit does not
depend on how the images are batched and reruns reproduce it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionInstructPix2PixPipeline

from weightgen.errors import ConfigError
from weightgen.text.pretrained import check_model_source, load_error


def instruction_of(concept) -> str:
    """The edit instruction of a concept-like object (`.instruction`, else its `.prompt`)."""
    text = getattr(concept, "instruction", None) or getattr(concept, "prompt", None)
    if not text:
        raise ValueError(f"{concept!r} has neither an instruction nor a prompt to edit with")
    return str(text)


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, 3, H, W] floats in [0, 1] resized with antialiasing (a no-op when already that size)."""
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


class InstructPix2PixEditor:
    """Edit uint8 photos [N, H, W, 3] with a concept's instruction; returns the same shape/dtype."""

    def __init__(
        self,
        model: str = "timbrooks/instruct-pix2pix",
        num_inference_steps: int = 20,
        image_guidance_scale: float = 1.5,
        guidance_scale: float = 7.0,
        batch_size: int = 4,
        seed: int = 0,
        device: str = "cpu",
        size: int | None = None,
        dtype: str = "float32",
    ):
        if batch_size < 1 or num_inference_steps < 1:
            raise ConfigError(
                f"editor.batch_size={batch_size} and editor.num_inference_steps="
                f"{num_inference_steps} must be >= 1"
            )
        self.model = str(model)
        self.num_inference_steps = int(num_inference_steps)
        self.image_guidance_scale = float(image_guidance_scale)
        self.guidance_scale = float(guidance_scale)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.size = int(size) if size is not None else None
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"dtype={dtype!r}: use float32 (CPU), float16 or bfloat16 (GPU)")
        source = check_model_source(self.model, "InstructPix2Pix model")
        try:
            self.pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(
                source,
                dtype=getattr(torch, dtype),
                safety_checker=None,
                requires_safety_checker=False,
            )
        except OSError as err:
            raise load_error(self.model, "InstructPix2Pix model", err) from err
        self.pipeline.to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)

    @torch.no_grad()
    def edit(self, images: np.ndarray, concept) -> np.ndarray:
        """Apply `concept`'s instruction to every image; image i is seeded with `seed + i`."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"images must be uint8 [N, H, W, 3], got {images.dtype} {tuple(images.shape)}"
            )
        instruction = instruction_of(concept)
        if len(images) == 0:
            return images.copy()
        height, width = images.shape[1:3]
        work_size = (self.size, self.size) if self.size else (height, width)
        edited = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(images[start : start + self.batch_size]).permute(0, 3, 1, 2)
            batch = _resize(batch.float() / 255.0, work_size)
            generators = [
                torch.Generator("cpu").manual_seed(self.seed + start + offset)
                for offset in range(len(batch))
            ]
            out = self.pipeline(
                prompt=[instruction] * len(batch),
                image=batch,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                image_guidance_scale=self.image_guidance_scale,
                generator=generators,
                output_type="pt",
            ).images
            edited.append(_resize(out.float().cpu(), (height, width)))
        result = torch.cat(edited).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        return result.permute(0, 2, 3, 1).numpy()
