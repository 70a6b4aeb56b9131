"""PSNR and SSIM against exact edit targets, on images in the generator's range [-1, 1].

Images are mapped to [0, 1] (data_range 1) before scoring, so the numbers are the usual 8-bit-style
PSNR/SSIM. Batch values are means of per-image values, the usual reporting convention.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped (a generator's overshoot is clipped as it would be when saved)."""
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be equal-shaped "
            "[B, C, H, W] batches in [-1, 1]"
        )


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B] PSNR in dB of each image (inf where an image is reproduced exactly)."""
    _check_pair(pred, target)
    return peak_signal_noise_ratio(
        to_unit_range(pred), to_unit_range(target), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B] SSIM of each image (Gaussian window 11, sigma 1.5)."""
    _check_pair(pred, target)
    return structural_similarity_index_measure(
        to_unit_range(pred), to_unit_range(target), data_range=1.0, reduction="none"
    )


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-image PSNR in dB."""
    return float(psnr_per_image(pred, target).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-image SSIM."""
    return float(ssim_per_image(pred, target).mean())
