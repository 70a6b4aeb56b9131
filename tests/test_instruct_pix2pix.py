"""The InstructPix2Pix editor loads a saved pipeline and edits reproducibly (tiny random model)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    EulerAncestralDiscreteScheduler,
    StableDiffusionInstructPix2PixPipeline,
    UNet2DConditionModel,
)
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import CLIPTextModel

from weightgen.concepts.instruct_pix2pix import InstructPix2PixEditor, instruction_of
from weightgen.text.tiny_clip import tiny_clip_text_config, tiny_clip_tokenizer


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ip2p")
    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=8,  # noisy latents + image latents
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
    )
    pipeline = StableDiffusionInstructPix2PixPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(tiny_clip_text_config(len(tokenizer))),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return str(folder)


def _photos(count=2, size=31):
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_edit_is_seeded_batch_independent_and_keeps_shape(tiny_pipeline_dir):
    concept = SimpleNamespace(prompt="a photo in sepia", instruction="make it sepia")
    photos = _photos()  # 31 px: the pipeline works at 30 (a multiple of 2) and must resize back
    editor = InstructPix2PixEditor(tiny_pipeline_dir, num_inference_steps=2, batch_size=2, seed=0)
    first = editor.edit(photos, concept)
    assert first.shape == photos.shape and first.dtype == np.uint8
    assert not np.array_equal(first, photos)
    np.testing.assert_array_equal(editor.edit(photos, concept), first)
    one_by_one = InstructPix2PixEditor(tiny_pipeline_dir, num_inference_steps=2, batch_size=1)
    np.testing.assert_allclose(one_by_one.edit(photos, concept), first, atol=2)
    reseeded = InstructPix2PixEditor(tiny_pipeline_dir, num_inference_steps=2, seed=1)
    assert not np.array_equal(reseeded.edit(photos, concept), first)


def test_instruction_falls_back_to_prompt_and_bad_input_is_rejected(tiny_pipeline_dir):
    assert instruction_of(SimpleNamespace(prompt="sepia", instruction=None)) == "sepia"
    with pytest.raises(ValueError, match="neither"):
        instruction_of(SimpleNamespace(prompt="", instruction=None))
    editor = InstructPix2PixEditor(tiny_pipeline_dir, num_inference_steps=1)
    with pytest.raises(ValueError, match="uint8"):
        editor.edit(_photos().astype(np.float32), SimpleNamespace(prompt="x", instruction=None))


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here.*does not exist"):
        InstructPix2PixEditor(str(tmp_path / "nothing-here"))


def test_hydra_config_builds_the_editor(tiny_pipeline_dir):
    config = OmegaConf.load(
        Path(__file__).resolve().parents[1] / "conf/editor/instruct_pix2pix.yaml"
    )
    assert config.model == "timbrooks/instruct-pix2pix"
    editor = instantiate(config, model=tiny_pipeline_dir, size=16)
    assert isinstance(editor, InstructPix2PixEditor) and editor.num_inference_steps == 20
    editor.num_inference_steps = 1
    edited = editor.edit(_photos(count=1), SimpleNamespace(prompt="x", instruction=None))
    assert edited.shape == (1, 31, 31, 3)  # edited at 16 px, resized back
