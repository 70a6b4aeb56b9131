"""The metrics config group: auto / on / off against what is installed, honest names, FID vs KID."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from helpers import compose_config, tiny_metrics

import weightgen.metrics.suite as suite_module
from weightgen.errors import ConfigError
from weightgen.metrics.suite import MetricSuite
from weightgen.text.tiny_clip import save_tiny_clip_model

UNCACHED_CLIP = "weightgen-tests/no-such-clip"


def metrics_config(*overrides: str):
    return compose_config(list(overrides)).metrics


@pytest.fixture
def no_torch_fidelity(monkeypatch):
    monkeypatch.setattr(suite_module, "_TORCH_FIDELITY_AVAILABLE", False)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip_model(tmp_path_factory.mktemp("clip"), image_size=32, seed=2)


def test_auto_without_weights_skips_both_with_one_line(no_torch_fidelity, caplog):
    with caplog.at_level(logging.INFO, logger="weightgen.metrics.suite"):
        suite = MetricSuite.from_config(metrics_config(f"metrics.clip_model={UNCACHED_CLIP}"))
    assert not suite.active
    assert set(suite.skipped) == {"fid", "clip_score"}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "torch-fidelity is not installed" in lines[0]
    assert UNCACHED_CLIP in lines[0] and "Hugging Face cache" in lines[0]
    assert suite.describe() == {"features": None, "clip_model": None, "skipped": suite.skipped}


def test_off_computes_nothing_and_says_nothing(no_torch_fidelity, caplog):
    with caplog.at_level(logging.INFO, logger="weightgen.metrics.suite"):
        suite = MetricSuite.from_config(metrics_config("metrics.fid=off", "metrics.clip_score=off"))
    assert not suite.active and not suite.skipped and not caplog.records


@pytest.mark.parametrize(("overrides", "message"), [
    (["metrics.fid=on"], "pip install"),
    (["metrics.fid=on", "metrics.inception_weights=/no/such/inception.pth"], "pip install"),
    (["metrics.clip_score=on", f"metrics.clip_model={UNCACHED_CLIP}"], "Hugging Face cache"),
    (["metrics.clip_score=auto", "metrics.clip_model=/no/such/clip"], "does not exist"),
    (["metrics.fid=maybe"], "auto, on, off"),
    (["metrics.feature_extractor={_target_: torch.nn.Identity}"], "num_features"),
    (["metrics.kid_subset_size=1"], "2 or more"),
])  # fmt: skip
def test_impossible_requests_are_config_errors_that_name_the_fix(no_torch_fidelity, overrides,
                                                                 message):
    with pytest.raises(ConfigError, match=message):
        MetricSuite.from_config(metrics_config(*overrides))


def test_a_missing_inception_file_is_an_error_even_under_auto(monkeypatch):
    monkeypatch.setattr(suite_module, "_TORCH_FIDELITY_AVAILABLE", True)
    with pytest.raises(ConfigError, match="no such file"):
        MetricSuite.from_config(metrics_config("metrics.inception_weights=/no/such/inception.pth"))


def _images(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_frechet_distance_above_the_feature_count_kernel_distance_below(clip_dir):
    suite = MetricSuite.from_config(metrics_config(*tiny_metrics(clip_dir)))  # 4 features
    real = _images(8, 0)
    same = suite.distance(real, real)
    shifted = suite.distance((real + 0.5).clamp(-1, 1), real)
    assert set(same) == {"frechet_distance_tinyfeatures"}  # 8 images > 4 features
    assert abs(same["frechet_distance_tinyfeatures"]) < 1e-3
    assert shifted["frechet_distance_tinyfeatures"] > 1e-3
    small = suite.distance(real[:4], _images(4, 1))
    assert set(small) == {"kernel_distance_tinyfeatures", "kernel_distance_tinyfeatures_std"}
    assert all(math.isfinite(v) for v in small.values())


def test_score_names_the_substitutes_never_fid_kid_or_clip_score(clip_dir):
    suite = MetricSuite.from_config(metrics_config(*tiny_metrics(clip_dir, "WideTinyFeatures")))
    scores = suite.score(_images(6, 0), _images(6, 1), ["a red cat"] * 6)
    clip_name = "clip_score_" + clip_dir.name.replace("-", "_").lower()
    assert set(scores) == {"kernel_distance_widetinyfeatures",
                           "kernel_distance_widetinyfeatures_std", clip_name}
    assert not {"fid", "kid", "clip_score"} & set(scores)
    assert all(math.isfinite(v) for v in scores.values())
    assert suite.describe()["features"] == "WideTinyFeatures"
