"""Frechet distance between image sets, via torchmetrics' FrechetInceptionDistance.

Only the standard Inception-v3 features (torch-fidelity's weights) make a number comparable to
published FIDs, so only that path is named "fid". Any other feature module gives a Frechet
distance in its own feature space and is named after the module.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

from weightgen.errors import MissingInputError
from weightgen.metrics.image_quality import to_unit_range

log = logging.getLogger(__name__)

FID_NAME = "fid"


def build_fid(
    feature_extractor_path: str | None = None, feature: nn.Module | None = None
) -> FrechetInceptionDistance | None:
    """A Frechet-distance metric with a `.name`, or None when standard FID is unavailable.

    feature: a substitute feature module (takes [B, 3, H, W] floats in [0, 1], returns [B, F]; set
        a `num_features` attribute to skip torchmetrics' 299x299 probe). Named
        "frechet_distance_<module>", never "fid".
    feature_extractor_path: torch-fidelity's Inception-v3 weights file (pt_inception-2015-12-05);
        None lets torch-fidelity fetch them into its cache.
    """
    if feature is not None:
        metric = FrechetInceptionDistance(feature=feature, normalize=True)
        module_name = getattr(feature, "name", None) or type(feature).__name__
        metric.name = "frechet_distance_" + re.sub(r"\W+", "_", str(module_name)).lower()
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


def add_images(metric: FrechetInceptionDistance, images: torch.Tensor, real: bool) -> None:
    """Feed a [B, 3, H, W] batch in the generator's range [-1, 1] as real or generated images."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images {tuple(images.shape)} must be [B, 3, H, W] in [-1, 1]")
    metric.update(to_unit_range(images), real=real)
