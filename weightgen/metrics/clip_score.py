"""CLIP score (image-text agreement) via torchmetrics, from a hub id or a local CLIP folder.

torchmetrics 1.9 expects `get_image_features`/`get_text_features` to return tensors; from
transformers 5 they return a model output whose `pooler_output` holds the projected features, and
CLIPScore crashes (`'BaseModelOutputWithPooling' object has no attribute 'norm'`, torchmetrics
issue 3407). `PooledCLIPFeatures` returns the tensor on every transformers version.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn
from torchmetrics.multimodal.clip_score import CLIPScore
from transformers import CLIPModel, CLIPProcessor

from weightgen.metrics.image_quality import to_unit_range
from weightgen.text.pretrained import check_model_source, load_error

STANDARD_PREFIX = "openai/clip-vit-"


def _features(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class PooledCLIPFeatures(nn.Module):
    """A CLIPModel whose feature getters return the projected feature tensor."""

    def __init__(self, model: CLIPModel):
        super().__init__()
        self.model = model

    @property
    def config(self):
        return self.model.config

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        return _features(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        return _features(self.model.get_text_features(*args, **kwargs))


def clip_score_name(model: str) -> str:
    """Name 'clip_score' only for OpenAI's published CLIP ids; others are named after the model."""
    if model.startswith(STANDARD_PREFIX):
        return "clip_score"
    return "clip_score_" + re.sub(r"\W+", "_", Path(model).name).strip("_").lower()


def build_clip_score(model: str = "openai/clip-vit-base-patch32") -> CLIPScore:
    """CLIPScore over the CLIP at `model` (hub id or folder with a CLIPModel + CLIPProcessor)."""

    source = check_model_source(model, "CLIP model")

    def load() -> tuple[PooledCLIPFeatures, CLIPProcessor]:
        try:
            clip = CLIPModel.from_pretrained(source)
            processor = CLIPProcessor.from_pretrained(source)
        except OSError as err:
            raise load_error(model, "CLIP model", err) from err
        return PooledCLIPFeatures(clip.eval()), processor

    metric = CLIPScore(model_name_or_path=load)
    metric.name = clip_score_name(model)
    return metric


def add_pairs(metric: CLIPScore, images: torch.Tensor, prompts: list[str]) -> None:
    """Score a [B, 3, H, W] batch in [-1, 1] against one prompt per image."""
    if images.dim() != 4 or images.shape[1] != 3 or len(prompts) != images.shape[0]:
        raise ValueError(
            f"images {tuple(images.shape)} must be [B, 3, H, W] in [-1, 1] with one prompt each "
            f"(got {len(prompts)} prompts)"
        )
    pixels = (to_unit_range(images) * 255.0).round().to(torch.uint8)
    metric.update(list(pixels), list(prompts))
