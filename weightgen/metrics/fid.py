"""Distances between image sets: FID, and KID for sets too small for FID (torchmetrics).

Only the standard Inception-v3 features (torch-fidelity's weights) make a number comparable to
published FIDs and KIDs, so only that path is named "fid" / "kid". Any other feature module gives
a distance in its own feature space and is named after the module ("frechet_distance_<module>",
"kernel_distance_<module>").

A Frechet distance fits a Gaussian with a full covariance to each set's features, so it needs
more images than feature dimensions (2048 for Inception); with fewer, the covariance is
singular and the number is dominated by the set size. KID (an unbiased polynomial-kernel MMD over
random subsets) is meaningful on a few dozen images.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

from weightgen.errors import MissingInputError
from weightgen.metrics.image_quality import to_unit_range

log = logging.getLogger(__name__)

FID_NAME = "fid"
KID_NAME = "kid"


class InceptionFeatures(nn.Module):
    """torch-fidelity's Inception-v3 pool features (the standard FID/KID features).

    Takes [B, 3, H, W] floats in [0, 1] like any substitute feature module, and quantises them to
    8 bits as the standard metrics do.
    """

    num_features = 2048

    def __init__(self, weights_path: str | None):
        super().__init__()
        self.inception = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=[str(self.num_features)],
            feature_extractor_weights_path=weights_path,
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inception((images * 255).byte())


def distance_name(kind: str, feature: nn.Module) -> str:
    """The metric's name: "fid" / "kid" on the standard features, else named after the module."""
    if isinstance(feature, InceptionFeatures):
        return {"frechet": FID_NAME, "kernel": KID_NAME}[kind]
    module_name = getattr(feature, "name", None) or type(feature).__name__
    return f"{kind}_distance_" + re.sub(r"\W+", "_", str(module_name)).lower()


def build_fid(
    feature_extractor_path: str | None = None, feature: nn.Module | None = None
) -> FrechetInceptionDistance | None:
    """A Frechet-distance metric with a `.name`, or None when standard FID is unavailable.

    feature: a feature module (takes [B, 3, H, W] floats in [0, 1], returns [B, F]; set a
        `num_features` attribute to skip torchmetrics' 299x299 probe). Named
        "frechet_distance_<module>", or "fid" for :class:`InceptionFeatures`.
    feature_extractor_path: torch-fidelity's Inception-v3 weights file (pt_inception-2015-12-05);
        None lets torch-fidelity fetch them into its cache.
    """
    if feature is not None:
        metric = FrechetInceptionDistance(feature=feature, normalize=True)
        metric.name = distance_name("frechet", feature)
        return metric
    if not _TORCH_FIDELITY_AVAILABLE:
        log.warning(
            "FID skipped: torch-fidelity is not installed; install weightgen[fid] and provide "
            "Inception weights (feature_extractor_path) to report FID"
        )
        return None
    if feature_extractor_path is not None and not Path(feature_extractor_path).is_file():
        raise MissingInputError(
            f"{feature_extractor_path}: Inception weights not found; pass torch-fidelity's "
            "pt_inception-2015-12-05 weights file, or null to let torch-fidelity fetch them"
        )
    try:
        metric = FrechetInceptionDistance(
            feature=2048, normalize=True, feature_extractor_weights_path=feature_extractor_path
        )
    except OSError as err:
        log.warning(
            "FID skipped: Inception weights could not be fetched (%s); install weightgen[fid] "
            "and provide Inception weights (feature_extractor_path) to report FID",
            err,
        )
        return None
    metric.name = FID_NAME
    return metric


def build_kid(feature: nn.Module, subset_size: int) -> KernelInceptionDistance:
    """KID (named "kid" only for :class:`InceptionFeatures`) over subsets of ``subset_size``."""
    with warnings.catch_warnings():  # it keeps every feature in memory: a few thousand at most here
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")
        metric = KernelInceptionDistance(feature=feature, subset_size=subset_size)
    metric.name = distance_name("kernel", feature)
    return metric


def add_images(metric: FrechetInceptionDistance | KernelInceptionDistance, images: torch.Tensor,
               real: bool) -> None:
    """Feed a [B, 3, H, W] batch in the generator's range [-1, 1] as real or generated images."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images {tuple(images.shape)} must be [B, 3, H, W] in [-1, 1]")
    metric.update(to_unit_range(images), real=real)
