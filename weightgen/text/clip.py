"""CLIP's text tower (the paper's likely encoder), from a hub id or a local folder."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, CLIPTextModel

from weightgen.errors import ConfigError
from weightgen.text.base import TextEmbedding, TextEncoder
from weightgen.text.pretrained import check_model_source, load_error


class CLIPTextEncoder(TextEncoder):
    """Per-token last hidden states for cross-attention; `pooled` is CLIP's pooler_output (EOS)."""

    name = "clip"

    def __init__(
        self,
        model: str = "openai/clip-vit-base-patch32",
        max_length: int = 77,
        device: str = "cpu",
        cache_dir: str | None = None,
    ):
        super().__init__(max_length=max_length, device=device, cache_dir=cache_dir)
        self.model_id = str(model)
        source = check_model_source(self.model_id, "CLIP text model")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = CLIPTextModel.from_pretrained(source)
        except OSError as err:
            raise load_error(self.model_id, "CLIP text model", err) from err
        self.model.eval().requires_grad_(False).to(self.device)
        self.dim = int(self.model.config.hidden_size)
        limit = int(self.model.config.max_position_embeddings)
        if self.max_length > limit:
            raise ConfigError(f"text_encoder.max_length={self.max_length} exceeds this CLIP's "
                              f"{limit} positions; use at most {limit}")

    def config(self) -> dict:
        return {
            "kind": self.name,
            "model": self.model_id,
            "max_length": self.max_length,
            "dim": self.dim,
        }

    @torch.no_grad()
    def _embed(self, prompts: list[str]) -> TextEmbedding:
        batch = self._tokenize(prompts)
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return TextEmbedding(
            tokens=out.last_hidden_state.float().cpu(),
            mask=batch["attention_mask"].bool().cpu(),
            pooled=out.pooler_output.float().cpu(),
        )
