"""Metric wrappers: known PSNR/SSIM values, honest names for FID/CLIP substitutes."""

import logging
import math

import pytest
import torch
from helpers import TinyFeatures
from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
from transformers import CLIPModel, CLIPProcessor

from weightgen.metrics import fid
from weightgen.metrics.clip_score import add_pairs, build_clip_score, clip_score_name
from weightgen.metrics.image_quality import psnr, psnr_per_image, ssim, ssim_per_image
from weightgen.text.tiny_clip import save_tiny_clip_model


def _noisy(images, amplitude):
    """Add +-amplitude in [-1, 1] units with a checkerboard sign: MSE in [0, 1] is (amplitude/2)^2."""
    sign = torch.ones_like(images)
    sign[..., ::2, ::2] = -1
    sign[..., 1::2, 1::2] = -1
    return images + amplitude * sign


def test_psnr_known_values():
    target = torch.zeros(2, 3, 16, 16)
    assert math.isinf(psnr(target, target))
    pred = torch.cat([_noisy(target[:1], 0.2), _noisy(target[1:], 0.02)])
    torch.testing.assert_close(psnr_per_image(pred, target), torch.tensor([20.0, 40.0]))
    assert psnr(pred, target) == pytest.approx(30.0, abs=1e-4)


def test_psnr_clips_overshoot_like_a_saved_image():
    target = torch.ones(1, 3, 8, 8)
    assert math.isinf(psnr(target + 0.5, target))


def test_ssim_identical_is_one_and_noise_lowers_it():
    torch.manual_seed(0)
    target = torch.rand(3, 3, 32, 32) * 2 - 1
    assert ssim(target, target) == pytest.approx(1.0, abs=1e-6)
    per_image = ssim_per_image(_noisy(target, 0.3), target)
    assert per_image.shape == (3,) and bool((per_image < 0.95).all())


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="equal-shaped"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def test_frechet_distance_with_a_substitute_module_is_not_named_fid():
    metric = fid.build_fid(feature=TinyFeatures())
    assert metric.name == "frechet_distance_tinyfeatures" and metric.name != fid.FID_NAME
    torch.manual_seed(0)
    real = torch.rand(16, 3, 8, 8) * 2 - 1
    fid.add_images(metric, real, real=True)
    fid.add_images(metric, real, real=False)
    same = float(metric.compute())
    metric.reset()
    fid.add_images(metric, real, real=True)
    fid.add_images(metric, (real + 0.5).clamp(-1, 1), real=False)
    shifted = float(metric.compute())
    assert math.isfinite(shifted) and abs(same) < 1e-3 < shifted


@pytest.mark.skipif(_TORCH_FIDELITY_AVAILABLE, reason="checks the path without torch-fidelity")
def test_standard_fid_is_skipped_with_one_clear_line(caplog):
    with caplog.at_level(logging.WARNING):
        assert fid.build_fid(None) is None
    lines = [r.getMessage() for r in caplog.records if "FID skipped" in r.getMessage()]
    assert len(lines) == 1 and "weightgen[fid]" in lines[0]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    # seed 2 gives this random model a positive image-text cosine, so the score is not clamped to 0
    return str(save_tiny_clip_model(tmp_path_factory.mktemp("clip"), image_size=32, seed=2))


def test_clip_score_runs_on_transformers_outputs_and_matches_a_manual_score(tiny_clip_dir):
    metric = build_clip_score(tiny_clip_dir)
    assert metric.name.startswith("clip_score_") and metric.name != "clip_score"
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    prompts = ["a red cat", "a blue dog"]
    add_pairs(metric, images, prompts)
    score = float(metric.compute())

    model, processor = (
        CLIPModel.from_pretrained(tiny_clip_dir),
        CLIPProcessor.from_pretrained(tiny_clip_dir),
    )
    pixels = ((images + 1) / 2 * 255).round().to(torch.uint8)
    with torch.no_grad():
        image_out = model.get_image_features(
            processor(images=list(pixels), return_tensors="pt")["pixel_values"]
        )
        text_out = model.get_text_features(
            **processor(text=prompts, return_tensors="pt", padding=True)
        )
    as_tensor = [getattr(o, "pooler_output", o) for o in (image_out, text_out)]
    expected = 100 * torch.cosine_similarity(*as_tensor).mean()
    assert score > 0 and score == pytest.approx(float(expected), rel=1e-4)


def test_clip_score_name_is_reserved_for_the_published_weights():
    assert clip_score_name("openai/clip-vit-large-patch14") == "clip_score"
    assert clip_score_name("/models/my-clip") == "clip_score_my_clip"
    with pytest.raises(ValueError, match="one prompt each"):
        add_pairs(None, torch.zeros(2, 3, 8, 8), ["only one"])
