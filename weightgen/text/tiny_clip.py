"""Tiny, randomly initialised CLIP parts written to a folder.

The real-model paths (CLIP text encoder, CLIP score, the InstructPix2Pix editor) load from a hub
id or a folder. These stand-ins let tests and offline smoke runs exercise exactly that loading
code with no network and in seconds; their numbers mean nothing.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
)

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """Character-level CLIP BPE tokenizer (no merges) over lowercase letters, digits, punctuation."""
    vocab = {BOS: 0, EOS: 1}
    for char in string.ascii_lowercase + string.digits + ".,!?'-":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_clip_text_config(vocab_size: int, hidden_size: int = 32) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=hidden_size,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def save_tiny_clip_text_model(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny CLIPTextModel + tokenizer (what CLIPTextEncoder loads) into `folder`."""
    folder = Path(folder)
    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    CLIPTextModel(tiny_clip_text_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_clip_model(folder: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """Write a tiny CLIPModel + CLIPProcessor (what CLIP score loads) into `folder`."""
    folder = Path(folder)
    tokenizer = tiny_clip_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=8,
        projection_dim=32,
    )
    config = CLIPConfig(
        text_config=tiny_clip_text_config(len(tokenizer)).to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder
