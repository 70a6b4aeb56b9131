"""The ``metrics`` config group made concrete: which image-set metrics a run reports, and scoring.

``fid``: the distance between a set of outputs and their targets, FID where the set has more
images than feature dimensions, else KID (:mod:`weightgen.metrics.fid`). ``clip_score``: how
well the outputs match their prompt. Each is ``auto`` (computed where its weights are present,
else skipped with one log line saying why), ``on`` (missing weights are a ``ConfigError``) or
``off``. Nothing is downloaded: Inception weights are a file (or torch-fidelity's cached copy),
CLIP a local folder or a hub id already in the Hugging Face cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import try_to_load_from_cache
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

from weightgen.errors import ConfigError
from weightgen.metrics import fid
from weightgen.metrics.clip_score import add_pairs, build_clip_score
from weightgen.text.pretrained import check_model_source

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
BATCH = 32  # images per feature-network call (Inception works at 299x299)


def _mode(cfg: DictConfig, key: str) -> str:
    mode = str(cfg[key])
    if mode not in MODES:
        raise ConfigError(f"metrics.{key}={mode!r} is not a mode; use one of {', '.join(MODES)}")
    return mode


def torch_fidelity_cache() -> Path:
    """Where torch-fidelity keeps the Inception weights it downloaded (torch hub's cache)."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return Path(torch.hub.get_dir()) / "checkpoints" / URL_INCEPTION_V3.rsplit("/", 1)[-1]


def find_inception_weights(path: str | None) -> tuple[str | None, str]:
    """(the weights file, "") where the standard Inception features can run, else (None, why)."""
    if not _TORCH_FIDELITY_AVAILABLE:
        return None, "torch-fidelity is not installed (pip install -e '.[fid]')"
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(
                f"metrics.inception_weights={path}: no such file; pass torch-fidelity's "
                "weights-inception-2015-12-05-6726825d.pth, or null to use its cached copy"
            )
        return str(path), ""
    cached = torch_fidelity_cache()
    if cached.is_file():
        return str(cached), ""
    return None, (f"no Inception weights (set metrics.inception_weights=<file>; torch-fidelity's "
                  f"cache {cached} is empty)")


def find_clip_model(model: str) -> tuple[str | None, str]:
    """(the CLIP folder or cached hub id, "") if it loads offline, else (None, why)."""
    try:
        source = check_model_source(model, "CLIP model")
    except FileNotFoundError as err:
        raise ConfigError(f"metrics.clip_model: {err}") from err
    if Path(source).is_dir() or isinstance(try_to_load_from_cache(source, "config.json"), str):
        return source, ""
    return None, (f"CLIP model {model!r} is not in the Hugging Face cache (set "
                  f"metrics.clip_model=<folder>, or download it once with network access)")


def _substitute_features(spec) -> nn.Module:
    feature = instantiate(spec)
    if not isinstance(getattr(feature, "num_features", None), int):
        raise ConfigError(
            f"metrics.feature_extractor {spec.get('_target_')} has no integer num_features; set "
            "it to the width of the features the module returns"
        )
    return feature.eval()


@dataclass
class MetricSuite:
    """What a run computes: a feature network for the set distance, a CLIP model, or neither."""

    feature: nn.Module | None = None
    clip_model: str | None = None
    kid_subset_size: int = 50
    skipped: dict[str, str] = field(default_factory=dict)
    _clip_metric: object = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> MetricSuite:
        """Resolve ``auto``/``on``/``off`` against what is installed; log one line for skips."""
        suite = cls(kid_subset_size=int(cfg.kid_subset_size))
        if suite.kid_subset_size < 2:
            raise ConfigError(f"metrics.kid_subset_size={cfg.kid_subset_size}: use 2 or more")
        if _mode(cfg, "fid") != "off":
            if cfg.feature_extractor is not None:
                suite.feature = _substitute_features(cfg.feature_extractor)
            else:
                weights, why = find_inception_weights(cfg.inception_weights)
                suite._require("fid", why, _mode(cfg, "fid"))
                suite.feature = fid.InceptionFeatures(weights).eval() if weights else None
        if _mode(cfg, "clip_score") != "off":
            suite.clip_model, why = find_clip_model(cfg.clip_model)
            suite._require("clip_score", why, _mode(cfg, "clip_score"))
        if suite.skipped:
            log.info("image metrics skipped: %s; metrics.<name>=off silences this",
                     "; ".join(f"{name}: {why}" for name, why in suite.skipped.items()))
        return suite

    def _require(self, name: str, why: str, mode: str) -> None:
        if not why:
            return
        if mode == "on":
            raise ConfigError(f"metrics.{name}=on but {why}; or set metrics.{name}=auto or off")
        self.skipped[name] = why

    @property
    def active(self) -> bool:
        return self.feature is not None or self.clip_model is not None

    def distance(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """FID (or a substitute's Frechet distance) for sets of more than ``num_features`` images,
        KID below that: {name: value} ({name: mean, name_std: std} for KID)."""
        if self.feature is None:
            return {}
        count = min(len(outputs), len(targets))
        if count < 2:
            raise ConfigError(f"a set distance needs 2 or more images, got {count}; raise data.n_val")
        if count > self.feature.num_features:  # n images give a covariance of rank n - 1 at most
            metric = fid.build_fid(feature=self.feature)
        else:
            metric = fid.build_kid(self.feature, min(self.kid_subset_size, count))
        for images, real in ((targets, True), (outputs, False)):
            for start in range(0, len(images), BATCH):
                fid.add_images(metric, images[start : start + BATCH], real=real)
        value = metric.compute()
        if isinstance(value, tuple):
            return {metric.name: float(value[0]), f"{metric.name}_std": float(value[1])}
        return {metric.name: float(value)}

    def clip(self, images: torch.Tensor, prompts: list[str]) -> dict[str, float]:
        """Mean CLIP score of the images against one prompt each: {name: value}."""
        if self.clip_model is None:
            return {}
        if self._clip_metric is None:
            self._clip_metric = build_clip_score(self.clip_model)
        metric = self._clip_metric
        metric.reset()
        for start in range(0, len(images), BATCH):
            add_pairs(metric, images[start : start + BATCH], prompts[start : start + BATCH])
        return {metric.name: float(metric.compute())}

    def score(self, outputs: torch.Tensor, targets: torch.Tensor,
              prompts: list[str]) -> dict[str, float]:
        """Both, on outputs [N,3,H,W] in [-1, 1] against targets and one prompt per output."""
        with torch.no_grad():
            return self.distance(outputs, targets) | self.clip(outputs, prompts)

    def describe(self) -> dict:
        """For results files: what was computed with which weights, and what was skipped why."""
        if isinstance(self.feature, fid.InceptionFeatures):
            features = "inception-v3 (torch-fidelity)"
        else:
            features = None if self.feature is None else type(self.feature).__name__
        return {"features": features, "clip_model": self.clip_model, "skipped": dict(self.skipped)}
