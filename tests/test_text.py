"""Text encoders: the packaged MiniLM for real, CLIP through its loading code with a tiny model."""

import json
import logging
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from weightgen.concepts.catalog import builtin_concepts
from weightgen.text.clip import CLIPTextEncoder
from weightgen.text.minilm import MiniLMTextEncoder
from weightgen.text.tiny_clip import save_tiny_clip_text_model

CONF = Path(__file__).resolve().parents[1] / "conf" / "text_encoder"


@pytest.fixture(scope="module")
def minilm():
    encoder = instantiate(OmegaConf.load(CONF / "minilm.yaml"))
    assert isinstance(encoder, MiniLMTextEncoder)
    return encoder


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return str(save_tiny_clip_text_model(tmp_path_factory.mktemp("clip")))


def test_minilm_shapes_mask_and_pooling(minilm):
    out = minilm.encode(["cat", "make the photo look like a snowy winter evening"])
    length = minilm.max_length
    assert out.tokens.shape == (2, length, 384) and out.tokens.dtype == torch.float32
    assert out.mask.dtype == torch.bool and out.pooled.shape == (2, 384)
    assert out.mask[0].tolist() == [True] * 3 + [False] * (length - 3)  # [CLS] cat [SEP]
    assert out.mask[1].sum() > 3
    real = out.mask[0].unsqueeze(-1).float()
    mean = (out.tokens[0] * real).sum(0) / real.sum()
    torch.testing.assert_close(out.pooled[0], mean / mean.norm())
    assert json.loads(json.dumps(minilm.config()))["dim"] == 384


def test_minilm_is_deterministic_and_semantic(minilm):
    prompts = [
        "make the photo sepia toned",
        "give the picture an old sepia tone",
        "turn it into a pixelated cartoon",
        "make the photo sepia toned",
    ]
    pooled = minilm.encode(prompts).pooled
    torch.testing.assert_close(pooled[0], pooled[3], rtol=0, atol=0)
    fresh = minilm._embed(prompts[:1]).pooled[0]  # the model itself, bypassing the cache
    torch.testing.assert_close(fresh, pooled[0], rtol=0, atol=1e-6)
    assert not torch.allclose(pooled[0], pooled[2])
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2] + 0.1


def test_memory_cache_skips_the_model(minilm, monkeypatch):
    first = minilm.encode(["a cached prompt"])

    def fail(prompts):
        raise AssertionError(f"model called for cached {prompts}")

    monkeypatch.setattr(minilm, "_embed", fail)
    again = minilm.encode(["a cached prompt"])
    assert torch.equal(first.tokens, again.tokens) and torch.equal(first.pooled, again.pooled)


def test_truncation_is_reported(minilm, caplog):
    longer = " ".join(["word"] * minilm.max_length)  # + [CLS] and [SEP]: over max_length
    with caplog.at_level(logging.WARNING):
        minilm.encode([longer])
    assert (f"truncated to text_encoder.max_length={minilm.max_length}; raise "
            "text_encoder.max_length") in caplog.text


def test_every_builtin_phrasing_fits_the_default_max_length(minilm, caplog):
    """A default run cuts no built-in prompt: a cut prompt loses meaning ("... with a blue tint"
    loses its colour) and every quickstart printed the warning."""
    texts = sorted({text for concept in builtin_concepts()
                    for text in (concept.prompt, *concept.phrasings, concept.heldout_phrasing)
                    if text})
    lengths = [len(ids) for ids in minilm.tokenizer(texts)["input_ids"]]
    assert max(lengths) <= minilm.max_length
    with caplog.at_level(logging.WARNING):
        minilm._tokenize(texts)
    assert "truncated" not in caplog.text


def test_bad_prompts_are_rejected(minilm):
    with pytest.raises(ValueError, match="list of prompt strings"):
        minilm.encode("sepia")
    empty = minilm.encode([])
    assert empty.tokens.shape == (0, minilm.max_length, 384)


def test_clip_loads_a_saved_model_and_pools_at_the_end_token(tiny_clip_dir):
    encoder = CLIPTextEncoder(tiny_clip_dir, max_length=16)
    out = encoder.encode(["a red cat", "sunset"])
    assert out.tokens.shape == (2, 16, 32) and out.pooled.shape == (2, 32)
    lengths = out.mask.sum(1)
    assert lengths.tolist() == [7 + 2, 6 + 2]  # one token per character, plus start and end
    for row, length in enumerate(lengths):
        torch.testing.assert_close(out.pooled[row], out.tokens[row, length - 1])
    assert encoder.config() == {"kind": "clip", "model": tiny_clip_dir, "max_length": 16, "dim": 32}


def test_clip_hydra_config_builds_the_encoder(tiny_clip_dir):
    config = OmegaConf.load(CONF / "clip.yaml")
    assert config.model == "openai/clip-vit-base-patch32" and config.max_length == 77
    encoder = instantiate(config, model=tiny_clip_dir)
    assert isinstance(encoder, CLIPTextEncoder) and encoder.encode(["x"]).tokens.shape == (
        1,
        77,
        32,
    )


def test_clip_rejects_missing_folder_and_too_long_context(tmp_path, tiny_clip_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CLIPTextEncoder(str(tmp_path / "no-such-model"))
    with pytest.raises(ValueError, match="exceeds"):
        CLIPTextEncoder(tiny_clip_dir, max_length=100)


def test_disk_cache_round_trip_and_recovers_from_a_corrupt_file(tmp_path, tiny_clip_dir):
    cache = tmp_path / "cache"
    written = CLIPTextEncoder(tiny_clip_dir, max_length=16, cache_dir=str(cache)).encode(["blue"])
    files = list(cache.rglob("*.safetensors"))
    assert len(files) == 1

    reader = CLIPTextEncoder(tiny_clip_dir, max_length=16, cache_dir=str(cache))
    reader._embed = None  # any model call would now crash: the result must come from disk
    read = reader.encode(["blue"])
    assert torch.equal(read.tokens, written.tokens) and torch.equal(read.mask, written.mask)

    files[0].write_bytes(b"not safetensors")
    recovered = CLIPTextEncoder(tiny_clip_dir, max_length=16, cache_dir=str(cache)).encode(["blue"])
    torch.testing.assert_close(recovered.pooled, written.pooled)

    other = CLIPTextEncoder(tiny_clip_dir, max_length=8, cache_dir=str(cache))
    assert other.identity() != reader.identity()
    assert other.encode(["blue"]).tokens.shape == (1, 8, 32)
