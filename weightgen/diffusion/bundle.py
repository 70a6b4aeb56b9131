"""A trained weight generator on disk, with everything it is only valid for.

Folder layout::

    denoiser.safetensors    denoiser weights (EMA weights when EMA was on)
    tokenizer.safetensors   the tokenizer's normalisation statistics
    examples.safetensors    only with example pairs (diffusion.examples.k > 0): the per-feature
                            mean and std that standardise their vectors
                            (weightgen.diffusion.examples)
    prior.safetensors       only with a prior (diffusion.prior): the ridge map the denoiser
                            corrects (weightgen.diffusion.prior)
    generator.json          denoiser config (_target_ + sizes + conditioning: which text it reads;
                            example_dim with example pairs), tokenizer config (rules + layout),
                            noise-schedule config, text encoder, GAN architecture, adapter config,
                            training concepts, ``examples`` (k, bank, feature kind) with example
                            pairs, ``prior`` (kind, alpha, input dimension, concepts, its fit)
                            with a prior, sha256 of the weight files

Loading it for a GAN or adapter it was not trained for is an error naming both sides. The
file is data, never code: the denoiser is rebuilt from weightgen's own denoisers
(:mod:`weightgen.diffusion.denoisers`) with checked arguments, and only after the caller has
checked the meta (:meth:`WeightGenerator.read_meta`, then :meth:`WeightGenerator.from_meta`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.denoisers import denoiser_class, trained_denoiser
from weightgen.diffusion.examples import ExampleStandardiser
from weightgen.diffusion.prior import RidgePrior, check_prior_entry
from weightgen.diffusion.sampler import ddim_from, sample_blocks
from weightgen.diffusion.staleness import trained_examples_k
from weightgen.errors import CorruptFileError
from weightgen.utils.checked_folder import (
    intact_meta,
    load_checked_state,
    read_checked_meta,
    save_checked_folder,
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
    # The regression the denoiser corrects (diffusion.prior); None: the denoiser makes it all.
    prior: RidgePrior | None = None

    @property
    def examples_k(self) -> int:
        """How many example pairs the generator was trained to read (0: text only)."""
        return trained_examples_k(self.meta)

    def generate(self, condition: Condition, steps: int = 1, guidance_scale: float = 1.0,
                 seed: int = 0) -> GeneratedAdapter:
        """A full adapter for one ``condition`` (one row); timed end to end.

        Its ``examples`` (the k pairs' standardised vectors, [1, k, F], or their mean, [1, F])
        only for a generator trained with example pairs; None: zeros there, text only. With a ``prior`` the adapter
        is the prior's prediction plus the denoised residual (the prior of no examples: the
        training targets' mean)."""
        start = time.perf_counter()
        example_dim = getattr(self.denoiser, "example_dim", 0)
        if condition.examples is not None and not example_dim:
            raise ValueError("this weight generator was trained without example pairs "
                             "(diffusion.examples.k=0): generate without examples")
        if example_dim and condition.examples is None:
            condition = condition.with_examples(torch.zeros(1, example_dim))
        prior = null_offset = None
        if self.prior is not None:
            prior = self.prior(condition)[0]
            null_offset = self.prior(condition.null())[0] - prior
        blocks = sample_blocks(
            self.denoiser, ddim_from(self.meta["scheduler"]), condition,
            self.tokenizer.num_blocks, self.tokenizer.block_size, steps=steps,
            guidance_scale=guidance_scale, seed=seed, null_offset=null_offset,
        )
        if prior is not None:
            blocks = blocks + prior.to(blocks.device)
        state = self.tokenizer.detokenize(blocks)
        return GeneratedAdapter(state, time.perf_counter() - start)

    def save(self, folder: str | Path) -> Path:
        meta = dict(self.meta) | {"tokenizer": self.tokenizer.config()}
        states = {"denoiser": self.denoiser.state_dict(), "tokenizer": self.tokenizer.state_dict()}
        if self.example_standardiser is not None:
            states["examples"] = self.example_standardiser.state_dict()
        if self.prior is not None:
            meta["prior"] = self.prior.entry()
            states["prior"] = self.prior.state()
        save_checked_folder(folder, META_FILE, states, meta)
        return Path(folder)

    @staticmethod
    def intact_meta(folder: str | Path) -> dict | None:
        """The folder's ``generator.json`` when it is readable and every weight file it lists is
        intact; None when the generator must be trained again."""
        return intact_meta(folder, META_FILE, weight_files)

    @staticmethod
    def read_meta(folder: str | Path, expect: dict | None = None) -> dict:
        """``generator.json``, checked as data and nothing built: ``expect`` maps meta keys
        (architecture, adapter, ...) to what the caller uses; the denoiser entry must name one of
        weightgen's denoisers with arguments of its constructor, and its prior entry (if any) one
        of weightgen's priors that fits the denoiser and the training identity."""
        meta = read_checked_meta(
            folder, META_FILE, "weight generator",
            "train one with `make generator` (weightgen-train-generator)", expect,
            "train a generator for this configuration or use the matching "
            "gan/adapter/tokenizer/text_encoder config",
        )
        try:
            denoiser_class(meta.get("denoiser"))
            check_meta_prior(meta)
        except ValueError as err:
            raise damaged(folder, err) from err
        return meta

    @classmethod
    def from_meta(cls, folder: str | Path, meta: dict) -> WeightGenerator:
        """The generator :meth:`read_meta` read (the caller checks it first: nothing is built
        before), its weights verified against their sha256."""
        tokenizer_state = load_checked_state(folder, meta, "tokenizer")
        denoiser_state = load_checked_state(folder, meta, "denoiser")
        try:
            tokenizer = BlockTokenizer.from_state(meta["tokenizer"], tokenizer_state)
            denoiser = trained_denoiser(meta["denoiser"], denoiser_state)
        except (ValueError, KeyError, TypeError) as err:
            raise damaged(folder, err) from err
        denoiser.eval()
        standardiser = (ExampleStandardiser.from_state(load_checked_state(folder, meta, "examples"))
                        if "examples" in weight_files(meta) else None)
        prior = None
        if "prior" in weight_files(meta):
            state = load_checked_state(folder, meta, "prior")
            try:
                prior = RidgePrior.from_state(meta["prior"], state, tokenizer.num_blocks,
                                              tokenizer.block_size)
            except ValueError as err:
                raise damaged(folder, err) from err
        return cls(denoiser, tokenizer, meta, standardiser, prior)

    @classmethod
    def load(cls, folder: str | Path, expect: dict | None = None) -> WeightGenerator:
        """:meth:`read_meta` then :meth:`from_meta`, for callers with nothing to check between
        (a run's stages load through ``weightgen.stages.artifacts.load_generator``, which checks
        the generator against the run first)."""
        return cls.from_meta(folder, cls.read_meta(folder, expect))


def damaged(folder: str | Path, problem: Exception) -> CorruptFileError:
    """The error for a ``generator.json`` that is not what training wrote (edited, or damaged)."""
    return CorruptFileError(
        f"{Path(folder) / META_FILE} does not describe a weight generator weightgen can load "
        f"({problem}); it was edited or damaged: retrain the generator with "
        f"weightgen-train-generator (it rewrites {folder})"
    )


def check_meta_prior(meta: dict) -> None:
    """``generator.json``'s prior entry (if any) as data, and the same prior as its training
    identity records (``diffusion.prior``; absent: none): a ValueError names the mismatch."""
    if "prior" in meta:
        check_prior_entry(meta["prior"], meta)
    identity = meta.get("identity")
    if isinstance(identity, dict):
        trained = (identity.get("diffusion") or {}).get("prior")
        recorded = (meta.get("prior") or {}).get("kind")
        if trained != recorded:
            raise ValueError(f"its training identity has diffusion.prior={trained}, its prior "
                             f"entry {recorded}")


def weight_files(meta: dict) -> tuple[str, ...]:
    """The weight files (names without .safetensors) of a generator with this ``meta``."""
    return (("denoiser", "tokenizer") + (("examples",) if meta.get("examples") else ())
            + (("prior",) if meta.get("prior") else ()))
