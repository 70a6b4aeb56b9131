"""A trained weight generator on disk, with everything it is only valid for.

Folder layout::

    denoiser.safetensors    denoiser weights (EMA weights when EMA was on)
    tokenizer.safetensors   the tokenizer's normalisation statistics
    generator.json          denoiser config (_target_ + sizes), tokenizer config (rules + layout),
                            noise-schedule config, text encoder, GAN architecture, adapter config,
                            training concepts, sha256 of both weight files

Loading it for a GAN or adapter it was not trained for is an error naming both sides.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from weightgen.diffusion.sampler import ddim_from, sample_blocks
from weightgen.errors import ConfigError, MissingInputError
from weightgen.text.base import TextEmbedding
from weightgen.utils.io import (
    atomic_save_safetensors,
    atomic_write_json,
    load_safetensors,
    sha256_file,
)
from weightgen.weights.tokenizer import BlockTokenizer


@dataclass
class GeneratedAdapter:
    state: dict[str, torch.Tensor]
    seconds: float


@dataclass
class WeightGenerator:
    denoiser: nn.Module
    tokenizer: BlockTokenizer
    meta: dict  # json-able: denoiser, scheduler, architecture, adapter, text_encoder, concepts

    def generate(self, text: TextEmbedding, steps: int = 1, guidance_scale: float = 1.0,
                 seed: int = 0) -> GeneratedAdapter:
        """A full adapter for one prompt (``text`` holds one row); timed end to end."""
        start = time.perf_counter()
        blocks = sample_blocks(
            self.denoiser, ddim_from(self.meta["scheduler"]), text.tokens[0], text.mask[0],
            self.tokenizer.num_blocks, self.tokenizer.block_size, steps=steps,
            guidance_scale=guidance_scale, seed=seed,
        )
        state = self.tokenizer.detokenize(blocks)
        return GeneratedAdapter(state, time.perf_counter() - start)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        meta = dict(self.meta)
        meta["tokenizer"] = self.tokenizer.config()
        meta["denoiser_sha256"] = atomic_save_safetensors(
            self.denoiser.state_dict(), folder / "denoiser.safetensors"
        )
        meta["tokenizer_sha256"] = atomic_save_safetensors(
            self.tokenizer.state_dict(), folder / "tokenizer.safetensors"
        )
        atomic_write_json(folder / "generator.json", meta)
        return folder

    @staticmethod
    def files_intact(folder: str | Path, meta: dict) -> bool:
        """Whether both weight files that ``meta`` lists are in ``folder`` with their sha256."""
        folder = Path(folder)
        return all(
            (folder / name).is_file() and sha256_file(folder / name) == meta.get(key)
            for name, key in (("denoiser.safetensors", "denoiser_sha256"),
                              ("tokenizer.safetensors", "tokenizer_sha256"))
        )

    @classmethod
    def load(cls, folder: str | Path, expect: dict | None = None) -> WeightGenerator:
        """Load; ``expect`` maps meta keys (architecture, adapter, ...) to what the caller uses."""
        folder = Path(folder)
        meta_path = folder / "generator.json"
        if not meta_path.is_file():
            raise MissingInputError(
                f"no weight generator at {folder}; train one with `make generator` "
                f"(weightgen-train-generator)"
            )
        meta = json.loads(meta_path.read_text())
        for key, wanted in (expect or {}).items():
            if meta.get(key) != wanted:
                raise ConfigError(
                    f"the weight generator at {folder} was trained for {key} = {meta.get(key)}, "
                    f"but this run uses {key} = {wanted}; train a generator for this "
                    f"configuration or use the matching gan/adapter/tokenizer/text_encoder config"
                )
        tokenizer = BlockTokenizer.from_state(
            meta["tokenizer"], load_safetensors(folder / "tokenizer.safetensors",
                                                meta["tokenizer_sha256"])
        )
        denoiser = instantiate(meta["denoiser"])
        denoiser.load_state_dict(
            load_safetensors(folder / "denoiser.safetensors", meta["denoiser_sha256"])
        )
        denoiser.eval()
        return cls(denoiser, tokenizer, meta)
