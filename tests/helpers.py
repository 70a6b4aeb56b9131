"""Shared test factories: the real Hydra config shrunk to seconds, photos and MiniLM loaded once.

Tests compose ``conf/weightgen.yaml`` exactly as the entry points do and only shrink sizes
(lightning-hydra-template style), so a config that breaks the pipeline breaks a test.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch import nn

import weightgen.workspace as workspace_module
from weightgen.cli.app import CONFIG_DIR, CONFIG_NAME
from weightgen.data.sources import bundled_photos
from weightgen.workspace import Workspace

# 2 train + 1 test concept, 16x16 crops, ngf 4, a few steps: a whole build in seconds on 1 core.
# The suite's tiny run keeps the paper's configuration (LoRA adapters, a 1-D UNet on raw weights)
# and the step settings its tests were written for; the quickstart preset itself uses the bench's
# full deltas and PCA MLP (tests/test_configs.py checks that).
TINY = [
    "experiment=quickstart",
    "adapter=lora",
    "denoiser=unet1d",
    "tokenizer.basis=none",
    "diffusion.steps=300",
    "diffusion.val_every=150",
    "diffusion.batch_size=64",
    "diffusion.data.checkpoints=all",
    "bench.eval_every=20",
    "logger=none",
    "progress=false",
    "concepts.n_train=2",
    "concepts.n_test=1",
    "data.size=16",
    "data.n_train=16",
    "data.n_val=4",
    "data.batch_size=4",
    "gan.generator.ngf=4",
    "gan.discriminator.ndf=4",
    "adapter.rank=2",
    "builder.base_steps=4",
    "builder.adapter_steps=4",
    "builder.checkpoint_steps=[2,4]",
    "builder.grid_images=2",
]


def compose_config(overrides: list[str] = ()) -> DictConfig:
    """The real config with ``overrides`` (no shrinking)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(CONFIG_NAME, overrides=list(overrides))


def tiny_config(artifacts: str | Path, *overrides: str) -> DictConfig:
    """The quickstart preset shrunk to test size, writing under ``artifacts``."""
    return compose_config([*TINY, f"paths.artifacts={artifacts}", *overrides])


@functools.cache
def shared_minilm():
    """One MiniLM for the whole session (memory cache only): loading it costs a second or more."""
    from weightgen.text.minilm import MiniLMTextEncoder

    return MiniLMTextEncoder(max_length=16)


def tiny_workspace(artifacts: str | Path, *overrides: str) -> Workspace:
    """A Workspace over :func:`tiny_config` that reuses the session's MiniLM."""
    ws = Workspace(tiny_config(artifacts, *overrides))
    if ws.cfg.text_encoder.max_length != shared_minilm().max_length:
        raise ValueError("tiny_workspace shares one MiniLM: keep text_encoder.max_length at 16")
    ws.__dict__["text_encoder"] = shared_minilm()  # fills the cached_property
    return ws


_bundled_photos_once = functools.cache(bundled_photos)


@contextmanager
def photos_loaded_once() -> Iterator[None]:
    """Reuse the decoded bundled photos across Workspaces (each load takes 2-3 s)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workspace_module, "bundled_photos", _bundled_photos_once)
        yield


# --- one tiny trained run shared by the generator, fine-tuner and benchmark tests ------------

# The weight generator of the shared run: an MLP denoiser overfit on the last checkpoint of the 2
# train adapters (no prompt dropout), big enough to tell the two prompts apart in ~300 steps.
TINY_GENERATOR = [
    "denoiser=mlp",
    "denoiser.hidden_dim=128",
    "denoiser.depth=2",
    "tokenizer.block_size=128",
    "diffusion.steps=300",
    "diffusion.lr=1e-2",
    "diffusion.warmup_steps=10",
    "diffusion.val_every=300",
    "diffusion.val_concepts=1",
    "diffusion.cond_drop_prob=0",
    "diffusion.data.checkpoints=last",
]

_tiny_runs: dict[str, dict] = {}


def run_workspace(artifacts: str | Path, *overrides: str) -> Workspace:
    """A Workspace on a run built by :func:`tiny_trained_run` (its generator's config included)."""
    return tiny_workspace(artifacts, *TINY_GENERATOR, *overrides)


def tiny_trained_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Build once per session: pairs, base, adapters (builder) and a trained weight generator.

    Returns ``{"artifacts": Path, "dataset": summary, "generator": summary}``. Tests must not
    write into it: point ``paths.bench_dir`` / ``paths.generator_dir`` / ``out`` elsewhere.
    """
    if "run" not in _tiny_runs:
        from weightgen.diffusion.train import train_weight_generator
        from weightgen.gan.dataset_builder import build_weight_dataset

        artifacts = tmp_path_factory.mktemp("tiny_trained_run")
        with photos_loaded_once():
            dataset = build_weight_dataset(run_workspace(artifacts))
        generator = train_weight_generator(run_workspace(artifacts))
        _tiny_runs["run"] = {"artifacts": artifacts, "dataset": dataset, "generator": generator}
    return _tiny_runs["run"]


def entry_workspace(config_name: str, artifacts: str | Path, *overrides: str) -> Workspace:
    """A Workspace over an entry point's own config (generate, finetune) on a tiny trained run."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=[*TINY, f"paths.artifacts={artifacts}",
                                              *TINY_GENERATOR, *overrides])
    ws = Workspace(cfg)
    ws.__dict__["text_encoder"] = shared_minilm()
    return ws


class StopAtStep(L.Callback):
    """Send ``stop`` after the training step ``at``: SIGTERM to this process, or Ctrl-C."""

    def __init__(self, stop: str, at: int = 2):
        self.stop, self.at = stop, at

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.at:
            if self.stop == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt


# --- stand-ins for the image-set metrics' networks ----------------------------------------------


class TinyFeatures(nn.Module):
    """A stand-in feature extractor: mean colour and mean brightness gradient (4 features)."""

    num_features = 4

    def forward(self, images):
        colour = images.mean(dim=(2, 3))
        gradient = (images[..., 1:] - images[..., :-1]).abs().mean(dim=(1, 2, 3))
        return torch.cat([colour, gradient[:, None]], dim=1)


class WideTinyFeatures(TinyFeatures):
    """TinyFeatures declaring 64 features: sets under 64 images get KID, not a Frechet distance."""

    num_features = 64

    def forward(self, images):
        return super().forward(images).repeat(1, 16)


def tiny_metrics(clip_dir: str | Path, features: str = "TinyFeatures") -> list[str]:
    """Overrides that turn both image-set metrics on with local stand-in networks."""
    return ["metrics.fid=on", "metrics.clip_score=on", f"metrics.clip_model={clip_dir}",
            f"metrics.feature_extractor={{_target_: helpers.{features}}}"]
