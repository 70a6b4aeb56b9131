"""Shared test factories: the real Hydra config shrunk to seconds, photos and MiniLM loaded once.

Tests compose ``conf/weightgen.yaml`` exactly as the entry points do and only shrink sizes
(lightning-hydra-template style), so a config that breaks the pipeline breaks a test.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import signal
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, open_dict
from torch import nn

import weightgen.stages.bench as bench_stage
import weightgen.stages.pairs as pairs_stage
from weightgen.cli.app import CONFIG_DIR, CONFIG_NAME
from weightgen.data.sources import bundled_photos
from weightgen.stages.workspace import Workspace

# 2 train + 1 test concept, 16x16 crops, ngf 4, a few steps: a whole build in seconds on 1 core.
# The suite's tiny run keeps the paper's configuration (LoRA adapters, a 1-D UNet on raw weights,
# a text-only generator reading token states, the default fine-tune recipe) and the step settings
# its tests were written for; the quickstart preset itself uses the bench's full deltas, PCA MLP
# and issue 13's configuration (tests/test_configs.py checks that; tests/test_examples.py trains
# a tiny generator with example pairs).
TINY = [
    "experiment=quickstart",
    "adapter=lora",
    "denoiser=unet1d",
    "tokenizer.basis=none",
    "diffusion.steps=300",
    "diffusion.val_every=150",
    "diffusion.batch_size=64",
    "diffusion.data.checkpoints=all",
    "diffusion.data.phrasings=canonical",
    "diffusion.conditioning=tokens",
    "diffusion.text_noise=0.0",
    "diffusion.examples.k=0",
    "text_encoder.max_length=16",  # the tiny run's prompts are short; the default fits every built-in one
    "bench.methods=[pix2pix_scratch,e2gan_lora,denoised_init,mean_init,nearest_init,"
    "shuffled_prompt_init,trained_init]",
    "bench.headline=denoised_init",
    "bench.recipes=null",
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


@functools.cache
def _composed(config_name: str, group_overrides: tuple[str, ...]) -> bytes:
    """Hydra's merge of the config groups, its own ``hydra`` node kept (callers that do not ask
    for it drop it, as Hydra's ``compose`` does), pickled: unpickling a copy is ~7x faster than
    ``copy.deepcopy`` of a DictConfig (the bytes never leave this process)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return pickle.dumps(compose(config_name, overrides=list(group_overrides),
                                    return_hydra_config=True))


@functools.cache
def _parsed(override: str) -> Override:
    """One override string parsed by Hydra's own parser (the same strings recur by the hundred:
    every ``tiny_config`` sends ``TINY``); parsing does not change on reuse."""
    return OverridesParser.create().parse_overrides([override])[0]


def _picks_a_config(override: Override) -> bool:
    """An override Hydra composes with (a config group's option, anything of Hydra's own node);
    every other sets a value, applied after the groups are merged."""
    key = override.key_or_group
    return key.split(".")[0].split("/")[0] == "hydra" or (
        (Path(CONFIG_DIR) / key).is_dir() and not isinstance(override.value(), dict))


def compose_config(overrides: list[str] = (), config_name: str = CONFIG_NAME,
                   return_hydra_config: bool = False) -> DictConfig:
    """The real config (``conf/<config_name>.yaml``) with ``overrides`` (no shrinking), as Hydra
    composes it: Hydra merges the config groups, then applies the value overrides in order
    (``return_hydra_config`` as in Hydra's ``compose``).

    Merging reads every YAML file (~0.3 s) and the suite composes hundreds of configs, so the
    merge is done once per session for each choice of groups, and each call applies its value
    overrides to its own copy with Hydra's own code (``test_configs.py`` checks the two agree).
    """
    parsed = [_parsed(o) for o in overrides]
    picks = tuple(o.input_line for o in parsed if _picks_a_config(o))
    if return_hydra_config and len(picks) < len(parsed):
        # Hydra's own node records every override (hydra.overrides.task, job.override_dirname)
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name, overrides=list(overrides), return_hydra_config=True)
    cfg = pickle.loads(_composed(config_name, picks))
    ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if not _picks_a_config(o)], cfg)
    if not return_hydra_config:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def tiny_config(artifacts: str | Path, *overrides: str) -> DictConfig:
    """The quickstart preset shrunk to test size, writing under ``artifacts``."""
    return compose_config([*TINY, f"paths.artifacts={artifacts}", *overrides])


@functools.cache
def shared_minilm():
    """One MiniLM for the whole session (memory cache only): loading it costs a second or more."""
    from weightgen.text.minilm import MiniLMTextEncoder

    return MiniLMTextEncoder(max_length=16)  # TINY's text_encoder.max_length


def tiny_workspace(artifacts: str | Path, *overrides: str) -> Workspace:
    """A Workspace over :func:`tiny_config` that reuses the session's MiniLM."""
    return Workspace(tiny_config(artifacts, *overrides), text_encoder=shared_minilm())


_bundled_photos_once = functools.cache(bundled_photos)


@contextmanager
def photos_loaded_once() -> Iterator[None]:
    """Reuse the decoded bundled photos across Workspaces (each load takes 2-3 s)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pairs_stage, "bundled_photos", _bundled_photos_once)
        yield


class _WarningRecords(logging.Handler):
    def __init__(self, lines: list[str]):
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname}: {record.getMessage()}")


@contextmanager
def everything_printed() -> Iterator[list[str]]:
    """The lines a command would show, for a module-scoped fixture (pytest's capfd is per test):
    what reaches file descriptors 1 and 2 (libraries writing to the terminal) or sys.stdout and
    sys.stderr (print, tqdm; pytest points those at its own buffers, so they are pointed back at
    the descriptors here), every Python warning that gets past the filters, and every log record
    at WARNING or above. The list is filled when the block ends."""
    lines: list[str] = []
    handler = _WarningRecords(lines)
    logging.getLogger().addHandler(handler)
    sys.stdout.flush(), sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with (tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as shown,
          open(1, "w", closefd=False) as stdout, open(2, "w", closefd=False) as stderr,
          redirect_stdout(stdout), redirect_stderr(stderr)):
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield lines
        finally:
            stdout.flush(), stderr.flush()
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
            logging.getLogger().removeHandler(handler)
            sink.seek(0)
            text = sink.read().decode(errors="replace").replace("\r", "\n")
            lines += text.splitlines()
            lines += [f"{w.category.__name__}: {w.message}" for w in shown]


# --- the tiny trained run (conftest.py's ``tiny_run``) shared by the generator, fine-tuner,
# benchmark and study tests -------------------------------------------------------------------

# The weight generator of the shared run: an MLP denoiser overfit on the last checkpoint of the 2
# train adapters (no prompt dropout), big enough to tell the two prompts apart in ~300 steps.
TINY_GENERATOR = [
    "denoiser=mlp",
    "denoiser.hidden_dim=128",
    "denoiser.depth=2",
    "tokenizer.block_size=128",
    "diffusion.steps=300",
    "diffusion.optimizer.lr=1e-2",
    "diffusion.lr_scheduler.num_warmup_steps=10",
    "diffusion.val_every=300",
    "diffusion.val_concepts=1",
    "diffusion.cond_drop_prob=0",
    "diffusion.data.checkpoints=last",
]


def run_workspace(artifacts: str | Path, *overrides: str) -> Workspace:
    """A Workspace on the session's ``tiny_run`` (conftest.py), its generator's config included."""
    return tiny_workspace(artifacts, *TINY_GENERATOR, *overrides)


def entry_workspace(config_name: str, artifacts: str | Path, *overrides: str) -> Workspace:
    """A Workspace over an entry point's own config (generate, finetune) on a tiny trained run."""
    cfg = compose_config([*TINY, f"paths.artifacts={artifacts}", *TINY_GENERATOR, *overrides],
                         config_name)
    return Workspace(cfg, text_encoder=shared_minilm())


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


def record_method_runs(monkeypatch) -> list[tuple[str, str]]:
    """(concept id, method) of every run the benchmark actually trains from now on."""
    calls = []
    real = bench_stage.run_method

    def counted(setup, concept, method, *args, **kwargs):
        calls.append((concept.id, method))
        return real(setup, concept, method, *args, **kwargs)

    monkeypatch.setattr(bench_stage, "run_method", counted)
    return calls
