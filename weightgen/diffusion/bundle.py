"""A trained weight generator on disk, with everything it is only valid for.

Folder layout::

    denoiser.safetensors    denoiser weights (EMA weights when EMA was on)
    tokenizer.safetensors   the tokenizer's normalisation statistics
    examples.safetensors    only with example pairs (diffusion.examples.k > 0): the per-feature
                            mean and std that standardise their vectors
                            (weightgen.diffusion.examples)
    generator.json          denoiser config (_target_ + sizes + conditioning: which text it reads;
                            example_dim with example pairs), tokenizer config (rules + layout),
                            noise-schedule config, text encoder, GAN architecture, adapter config,
                            training concepts, ``examples`` (k, bank, feature kind) with example
                            pairs, sha256 of the weight files

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

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.examples import ExampleStandardiser
from weightgen.diffusion.sampler import ddim_from, sample_blocks
from weightgen.diffusion.staleness import trained_examples_k
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
    # Standardises example pairs' vectors; None: a generator trained without example pairs.
    example_standardiser: ExampleStandardiser | None = None

    @property
    def examples_k(self) -> int:
        """How many example pairs the generator was trained to read (0: text only)."""
        return trained_examples_k(self.meta)

    def generate(self, condition: Condition, steps: int = 1, guidance_scale: float = 1.0,
                 seed: int = 0) -> GeneratedAdapter:
        """A full adapter for one ``condition`` (one row); timed end to end.

        Its ``examples`` (``example_standardiser.example_vector``, [1, F]) only for a generator
        trained with example pairs; None: zeros there, text only."""
        start = time.perf_counter()
        example_dim = getattr(self.denoiser, "example_dim", 0)
        if condition.examples is not None and not example_dim:
            raise ValueError("this weight generator was trained without example pairs "
                             "(diffusion.examples.k=0): generate without examples")
        if example_dim and condition.examples is None:
            condition = condition.with_examples(torch.zeros(1, example_dim))
        blocks = sample_blocks(
            self.denoiser, ddim_from(self.meta["scheduler"]), condition,
            self.tokenizer.num_blocks, self.tokenizer.block_size, steps=steps,
            guidance_scale=guidance_scale, seed=seed,
        )
        state = self.tokenizer.detokenize(blocks)
        return GeneratedAdapter(state, time.perf_counter() - start)

    def save(self, folder: str | Path) -> Path:
        meta = dict(self.meta) | {"tokenizer": self.tokenizer.config()}
        states = {"denoiser": self.denoiser.state_dict(), "tokenizer": self.tokenizer.state_dict()}
        if self.example_standardiser is not None:
            states["examples"] = self.example_standardiser.state_dict()
        save_checked_folder(folder, META_FILE, states, meta)
        return Path(folder)

    @staticmethod
    def files_intact(folder: str | Path, meta: dict) -> bool:
        """Whether every weight file that ``meta`` lists is in ``folder`` with its sha256."""
        return states_intact(folder, meta, weight_files(meta))

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
        standardiser = (ExampleStandardiser.from_state(load_checked_state(folder, meta, "examples"))
                        if "examples" in weight_files(meta) else None)
        return cls(denoiser, tokenizer, meta, standardiser)


def weight_files(meta: dict) -> tuple[str, ...]:
    """The weight files (names without .safetensors) of a generator with this ``meta``."""
    return ("denoiser", "tokenizer") + (("examples",) if meta.get("examples") else ())
