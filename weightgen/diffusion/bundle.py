"""A trained weight generator on disk, with everything it is only valid for.

Folder layout::

    denoiser.safetensors    denoiser weights (EMA weights when EMA was on)
    tokenizer.safetensors   the tokenizer's normalisation statistics
    generator.json          denoiser config (_target_ + sizes + conditioning: which text it reads),
                            tokenizer config (rules + layout), noise-schedule config, text
                            encoder, GAN architecture, adapter config, training concepts, sha256
                            of both weight files

Loading it for a GAN or adapter it was not trained for is an error naming both sides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from weightgen.diffusion.sampler import ddim_from, sample_blocks
from weightgen.text.base import TextEmbedding
from weightgen.utils.checked_folder import (
    load_checked_state,
    read_checked_meta,
    save_checked_folder,
    states_intact,
)
from weightgen.weights.tokenizer import BlockTokenizer

META_FILE = "generator.json"
TOKENIZER_RULES = ("block_size", "grouping", "normalization", "basis", "basis_rank")


def generator_expectations(architecture: dict, adapter: DictConfig,
                           tokenizer: DictConfig) -> dict:
    """What a weight generator must have been trained for to serve a run: its GAN
    ``architecture``, its ``adapter`` config and the rules of its ``tokenizer`` config."""
    rules = OmegaConf.to_container(tokenizer, resolve=True)
    return {
        "architecture": architecture,
        "adapter": OmegaConf.to_container(adapter, resolve=True),
        "tokenizer_rules": {k: rules[k] for k in TOKENIZER_RULES},
    }


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
            guidance_scale=guidance_scale, seed=seed, text_pooled=text.pooled[0],
        )
        state = self.tokenizer.detokenize(blocks)
        return GeneratedAdapter(state, time.perf_counter() - start)

    def save(self, folder: str | Path) -> Path:
        meta = dict(self.meta) | {"tokenizer": self.tokenizer.config()}
        save_checked_folder(folder, META_FILE, {"denoiser": self.denoiser.state_dict(),
                                                "tokenizer": self.tokenizer.state_dict()}, meta)
        return Path(folder)

    @staticmethod
    def files_intact(folder: str | Path, meta: dict) -> bool:
        """Whether both weight files that ``meta`` lists are in ``folder`` with their sha256."""
        return states_intact(folder, meta, ("denoiser", "tokenizer"))

    @classmethod
    def load(cls, folder: str | Path, expect: dict | None = None) -> WeightGenerator:
        """Load; ``expect`` maps meta keys (architecture, adapter, ...) to what the caller uses."""
        meta = read_checked_meta(
            folder, META_FILE, "weight generator",
            "train one with `make generator` (weightgen-train-generator)", expect,
            "train a generator for this configuration or use the matching "
            "gan/adapter/tokenizer/text_encoder config",
        )
        tokenizer = BlockTokenizer.from_state(meta["tokenizer"],
                                              load_checked_state(folder, meta, "tokenizer"))
        denoiser = instantiate(meta["denoiser"])
        denoiser.load_state_dict(load_checked_state(folder, meta, "denoiser"))
        denoiser.eval()
        return cls(denoiser, tokenizer, meta)
