"""The model folder: the deployable artifact of one concept's editor (a **contract**).

A model folder holds everything needed to edit images with one concept, and nothing that needs
the training stack (no text encoder, no adapter library):

``generator.safetensors``
    Plain ``E2GANGenerator`` state dict with the adapter folded into the base weights.
``text.safetensors``
    The concept prompt's encoded text, baked in: ``tokens`` [L, D] float32, ``mask`` [L] bool.
``adapter.safetensors`` (optional)
    The adapter alone (LoRA A/B matrices or full-weight deltas), for re-use in weight space.
``before_after.png`` (optional)
    A grid of inputs and edits a person looks at.
``model_card.json`` (written last: a folder without it is incomplete)
    ``format_version``; ``generator_kwargs`` (the ``E2GANGenerator`` constructor arguments);
    ``files`` (name -> sha256 of every file above that exists); and the caller's fields, of
    which ``REQUIRED_CARD_FIELDS`` must be present:
    ``prompt``, ``concept_id``, ``image_size`` (side trained at), ``seed``, ``data`` (what the
    pairs were), ``metrics`` (before and after fine-tuning), ``seconds`` (wall-clock spent), and
    ``provenance`` (the weight generator and base GAN it came from).
    ``weightgen-export`` adds ``exports`` (file, sha256, parity) and ``latency`` (seconds per
    image per runtime and size on the machine that measured it).
``model.onnx``, ``model.torchscript.pt`` (optional, written by ``weightgen-export``)
    The same network taking only the image; listed under ``exports``, not ``files``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from weightgen.errors import ConfigError, MissingInputError, OutputExistsError
from weightgen.gan.generator import E2GANGenerator
from weightgen.utils.io import (
    CorruptFileError,
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_json,
    load_safetensors,
    sha256_bytes,
    sha256_file,
)
from weightgen.utils.network_from_data import build_network

FORMAT_VERSION = 1
GENERATOR_FILE = "generator.safetensors"
TEXT_FILE = "text.safetensors"
ADAPTER_FILE = "adapter.safetensors"
GRID_FILE = "before_after.png"
CARD_FILE = "model_card.json"
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.torchscript.pt"
CONTRACT_FILES = (
    GENERATOR_FILE,
    TEXT_FILE,
    ADAPTER_FILE,
    GRID_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    CARD_FILE,
)
REQUIRED_CARD_FIELDS = (
    "prompt",
    "concept_id",
    "image_size",
    "seed",
    "data",
    "metrics",
    "seconds",
    "provenance",
)


@dataclass
class ModelFolder:
    """A verified model folder's contents, ready to build a generator from."""

    path: Path
    card: dict
    generator_state: dict[str, torch.Tensor]
    text_tokens: torch.Tensor  # [L, D]
    text_mask: torch.Tensor  # [L] bool

    def build_generator(self) -> E2GANGenerator:
        """The card's ``E2GANGenerator`` with the folder's weights: the card's arguments are
        checked against the constructor and the weights against the network first, so an edited
        or mismatched card is one error naming it."""
        try:
            generator = build_network(E2GANGenerator, self.card["generator_kwargs"],
                                      self.generator_state)
        except ValueError as err:
            raise CorruptFileError(
                f"{self.path / CARD_FILE}: its generator_kwargs {self.card['generator_kwargs']} "
                f"do not fit {self.path / GENERATOR_FILE} ({err}); the card was edited or comes "
                f"from another model: restore the folder, or write the model again with "
                f"weightgen-new-concept"
            ) from err
        return generator.eval().requires_grad_(False)


def _single_prompt(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept one prompt's encoding as [L, D]/[L] or a batch of one ([1, L, D]/[1, L])."""
    if tokens.dim() == 3 and tokens.shape[0] == 1:
        tokens = tokens[0]
    if mask.dim() == 2 and mask.shape[0] == 1:
        mask = mask[0]
    if tokens.dim() != 2 or mask.dim() != 1 or mask.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"text tokens {tuple(tokens.shape)} and mask {tuple(mask.shape)} must be one prompt's "
            f"encoding: tokens [L, D] and mask [L] (a TextEmbedding row)"
        )
    return tokens.detach().float().cpu().contiguous(), mask.detach().bool().cpu().contiguous()


def _check_card(card: dict) -> None:
    missing = [k for k in REQUIRED_CARD_FIELDS if k not in card]
    if missing:
        raise ValueError(
            f"model card lacks {missing}; a model folder records {list(REQUIRED_CARD_FIELDS)}"
        )
    if not isinstance(card["prompt"], str) or not card["prompt"].strip():
        raise ValueError("model card prompt is empty: an editor is made for one concept prompt")


def write_model_folder(
    folder: str | Path,
    generator_kwargs: dict,
    merged_state: dict[str, torch.Tensor],
    adapter_state: dict[str, torch.Tensor] | None,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor,
    card: dict,
    grid_png: bytes | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model folder (each file atomically, the card last) and return its path.

    Everything is checked before the first byte is written: the merged weights must load into
    ``E2GANGenerator(**generator_kwargs)`` strictly and the text width must match it, so a folder
    that is written can always be loaded. An existing non-empty folder is refused unless
    ``overwrite``; then contract files not rewritten this time (old exports, an old adapter) are
    removed so the folder never mixes two models.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; give a folder path for the model")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{folder} already exists and is not empty; nothing was written: choose a new folder "
            f"(or delete this one)"
        )
    _check_card(card)
    tokens, mask = _single_prompt(text_tokens, text_mask)
    generator = E2GANGenerator(**generator_kwargs)
    try:
        generator.load_state_dict(merged_state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"merged weights do not fit E2GANGenerator(**{generator_kwargs}): {err}; pass "
            f"adapter.merged_state_dict(generator), not the adapted module's state_dict"
        ) from err
    text_dim = generator.transformer.cross_attn.k.in_features
    if tokens.shape[1] != text_dim:
        raise ValueError(
            f"text tokens are {tokens.shape[1]}-d but the generator expects {text_dim}"
        )

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        GENERATOR_FILE: atomic_save_safetensors(merged_state, folder / GENERATOR_FILE),
        TEXT_FILE: atomic_save_safetensors(
            {"tokens": tokens, "mask": mask},
            folder / TEXT_FILE,
            metadata={"prompt": card["prompt"]},
        ),
    }
    if adapter_state is not None:
        files[ADAPTER_FILE] = atomic_save_safetensors(adapter_state, folder / ADAPTER_FILE)
    if grid_png is not None:
        atomic_write_bytes(folder / GRID_FILE, grid_png)
        files[GRID_FILE] = sha256_bytes(grid_png)
    for stale in set(CONTRACT_FILES) - set(files) - {CARD_FILE}:
        (folder / stale).unlink(missing_ok=True)
    full_card = {
        **{k: v for k, v in card.items() if k not in ("exports", "latency")},
        "format_version": FORMAT_VERSION,
        "generator_kwargs": dict(generator_kwargs),
        "files": files,
    }
    atomic_write_json(folder / CARD_FILE, full_card)
    return folder


def read_card(folder: str | Path) -> dict:
    """The folder's model card; a missing or unreadable card is an error naming the folder."""
    path = Path(folder) / CARD_FILE
    if not Path(folder).is_dir():
        raise MissingInputError(
            f"model={folder}: no such model folder; point model= at a folder written by "
            f"weightgen-new-concept"
        )
    if not path.is_file():
        raise CorruptFileError(
            f"{path} is missing: {folder} is not a model folder, or its writing was "
            f"interrupted; point model= at a folder written by weightgen-new-concept"
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path}: not valid JSON ({err}); write the model again") from err
    for key in ("files", "generator_kwargs"):
        if key not in card:
            raise CorruptFileError(f"{path}: no {key!r} entry; is this a weightgen model folder?")
    return card


def verify_file(folder: Path, name: str, expected_sha256: str) -> Path:
    """The file's path if it exists and matches its recorded sha256, else an error naming it."""
    path = folder / name
    if not path.is_file():
        raise CorruptFileError(
            f"{path} is missing from the model folder; copy the whole folder or write it again"
        )
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise CorruptFileError(
            f"{path}: sha256 {actual[:12]}... does not match the model card's "
            f"{expected_sha256[:12]}...; the file is damaged or was replaced: restore the folder"
        )
    return path


def read_model_folder(folder: str | Path) -> ModelFolder:
    """Read a model folder, verifying every file the card lists against its sha256."""
    folder = Path(folder)
    card = read_card(folder)
    for name in (GENERATOR_FILE, TEXT_FILE):
        if name not in card["files"]:
            raise CorruptFileError(f"{folder / CARD_FILE}: lists no {name}; write the model again")
    for name, digest in card["files"].items():
        verify_file(folder, name, digest)
    text = load_safetensors(folder / TEXT_FILE)
    return ModelFolder(
        path=folder,
        card=card,
        generator_state=load_safetensors(folder / GENERATOR_FILE),
        text_tokens=text["tokens"],
        text_mask=text["mask"].bool(),
    )


def update_card(folder: str | Path, **fields) -> dict:
    """Add or replace card fields (exports, latency) atomically; core fields stay as written."""
    protected = {"files", "generator_kwargs", "format_version"} & set(fields)
    if protected:
        raise ValueError(f"{sorted(protected)} are written with the model, not updated after")
    card = {**read_card(folder), **fields}
    atomic_write_json(Path(folder) / CARD_FILE, card)
    return card
