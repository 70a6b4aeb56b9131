"""The text-encoder contract and its per-prompt cache.

Concept prompts repeat across every GAN step, every weight checkpoint and every benchmark run, so
each prompt is encoded once: the result is kept in memory and, if a `cache_dir` is given, in one
safetensors file per (encoder identity, prompt) that later runs reuse.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch

from weightgen.errors import ConfigError
from weightgen.utils.io import CorruptFileError, atomic_save_safetensors, load_safetensors

log = logging.getLogger(__name__)


@dataclass
class TextEmbedding:
    """Encoded prompts: padded token embeddings for cross-attention, a pooled vector for retrieval."""

    tokens: torch.Tensor  # [B, L, D] float32, L == encoder.max_length
    mask: torch.Tensor  # [B, L] bool, True = real token
    pooled: torch.Tensor  # [B, D] float32

    def __len__(self) -> int:
        return self.tokens.shape[0]


class TextEncoder(ABC):
    """Frozen text encoder with a per-prompt cache; outputs are float32 CPU tensors.

    Subclasses set `name`, `dim`, `max_length` and implement `_embed` (one batch, no cache) and
    `config` (the identity recorded in checkpoints and used as the cache key).
    """

    name: str
    dim: int
    max_length: int

    def __init__(self, max_length: int, device: str = "cpu", cache_dir: str | None = None):
        if max_length < 2:
            raise ConfigError(f"text_encoder.max_length={max_length}: need at least 2 tokens (start "
                              f"and end)")
        self.max_length = int(max_length)
        self.device = torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, TextEmbedding] = {}

    @abstractmethod
    def _embed(self, prompts: list[str]) -> TextEmbedding:
        """Encode one batch of prompts with the model (no cache)."""

    @abstractmethod
    def config(self) -> dict:
        """JSON-able identity: kind, model, max_length, dim."""

    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Encode prompts (in order), computing only those neither in memory nor on disk."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise ValueError(
                "encode() takes a list of prompt strings, e.g. encode(['a sepia photo'])"
            )
        missing = [p for p in dict.fromkeys(prompts) if p not in self._memory]
        missing = [p for p in missing if not self._load_from_disk(p)]
        if missing:
            fresh = self._embed(missing)
            for index, prompt in enumerate(missing):
                row = TextEmbedding(fresh.tokens[index], fresh.mask[index], fresh.pooled[index])
                self._memory[prompt] = row
                self._save_to_disk(prompt, row)
        if not prompts:
            return TextEmbedding(
                torch.zeros(0, self.max_length, self.dim),
                torch.zeros(0, self.max_length, dtype=torch.bool),
                torch.zeros(0, self.dim),
            )
        rows = [self._memory[p] for p in prompts]
        return TextEmbedding(
            torch.stack([r.tokens for r in rows]),
            torch.stack([r.mask for r in rows]),
            torch.stack([r.pooled for r in rows]),
        )

    def identity(self) -> str:
        """Short hash of `config()`: two encoders share cached embeddings only if it matches."""
        blob = json.dumps(self.config(), sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]

    def _cache_path(self, prompt: str) -> Path:
        prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:32]
        return self.cache_dir / f"{self.name}-{self.identity()}" / f"{prompt_hash}.safetensors"

    def _load_from_disk(self, prompt: str) -> bool:
        if self.cache_dir is None:
            return False
        path = self._cache_path(prompt)
        if not path.is_file():
            return False
        try:
            tensors = load_safetensors(path)
            row = TextEmbedding(tensors["tokens"], tensors["mask"], tensors["pooled"])
        except (CorruptFileError, KeyError) as err:
            log.warning("text cache %s unreadable (%s); re-encoding the prompt", path, err)
            return False
        self._memory[prompt] = row
        return True

    def _save_to_disk(self, prompt: str, row: TextEmbedding) -> None:
        if self.cache_dir is None:
            return
        atomic_save_safetensors(
            {"tokens": row.tokens, "mask": row.mask, "pooled": row.pooled},
            self._cache_path(prompt),
            metadata={"prompt": prompt, "encoder": json.dumps(self.config(), sort_keys=True)},
        )

    def _tokenize(self, prompts: list[str]):
        """Padded, truncated token ids on the encoder's device (``self.tokenizer`` of a subclass);
        a prompt cut at max_length is reported, since it silently loses meaning."""
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        for prompt, length in zip(prompts, lengths, strict=True):
            if length > self.max_length:
                log.warning(
                    "%s: prompt %r has %d tokens, truncated to text_encoder.max_length=%d; raise "
                    "text_encoder.max_length",
                    self.name,
                    prompt,
                    length,
                    self.max_length,
                )
        return self.tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
