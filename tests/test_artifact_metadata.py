"""Artifact metadata is data, never code; damaged metadata is one line naming the file (issue 21).

``generator.json`` names its denoiser's class and arguments, ``model_card.json`` its generator's
arguments, ``base.json`` what the base was trained for: an edited or truncated copy must neither
run what it names nor end in a traceback.
"""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from weightgen.cli.user_errors import user_errors_reported
from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.errors import CorruptFileError
from weightgen.gan.base import base_files_intact, read_base_meta, save_base
from weightgen.gan.discriminator import PatchDiscriminator
from weightgen.gan.generator import E2GANGenerator
from weightgen.utils.network_from_data import checked_arguments
from weightgen.weights.tokenizer import BlockTokenizer

DENOISER = {"_target_": "weightgen.diffusion.mlp.MLPDenoiser", "block_size": 64, "text_dim": 8,
            "hidden_dim": 16, "depth": 1}
RETRAIN = "retrain the generator with weightgen-train-generator"


@pytest.fixture
def generator_dir(tmp_path):
    """A real (tiny, untrained) generator folder as WeightGenerator.save writes it."""
    adapters = [{"w": torch.randn(8, 16)} for _ in range(2)]
    tokenizer = BlockTokenizer(64, "sequential", "per_tensor").fit(adapters)
    config = DENOISER | {"num_blocks": tokenizer.num_blocks}
    network = MLPDenoiser(**{k: v for k, v in config.items() if k != "_target_"})
    nn.init.normal_(network.output.weight)
    meta = {"denoiser": config,
            "scheduler": dict(DDPMScheduler(prediction_type="sample").config)}
    WeightGenerator(network, tokenizer, meta).save(tmp_path / "generator")
    return tmp_path / "generator"


def edit_meta(folder, name: str, **changes) -> None:
    path = folder / name
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def one_line_error(capsys, action) -> str:
    """What the entry points print for ``action``'s user error (asserted to be one line)."""
    with pytest.raises(SystemExit) as stop, user_errors_reported(debug=False):
        action()
    assert stop.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


class Sentinel:
    """Unpickling it creates a file: what a pickled shell command would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_the_generator_folder_loads_as_saved(generator_dir):
    loaded = WeightGenerator.load(generator_dir)
    assert isinstance(loaded.denoiser, MLPDenoiser) and not loaded.denoiser.training
    assert loaded.meta["denoiser"]["_target_"] == DENOISER["_target_"]  # kept: readable, old files


def test_a_pickle_payload_in_generator_json_is_never_run(generator_dir, tmp_path, capsys):
    sentinel = tmp_path / "sentinel"
    payload = tmp_path / "x.pkl"
    payload.write_bytes(pickle.dumps(Sentinel(sentinel)))
    pickle.loads(payload.read_bytes()).close()  # the payload works: it makes the sentinel
    assert sentinel.is_file()
    sentinel.unlink()
    edit_meta(generator_dir, "generator.json",
              denoiser={"_target_": "numpy.load", "file": str(payload), "allow_pickle": True})
    line = one_line_error(capsys, lambda: WeightGenerator.load(generator_dir))
    assert f"{generator_dir / 'generator.json'} does not describe a weight generator" in line
    assert "'numpy.load' is not one of weightgen's denoisers" in line and RETRAIN in line
    assert not sentinel.exists()


def test_an_open_call_in_generator_json_truncates_nothing(generator_dir, tmp_path, capsys):
    victim = tmp_path / "notes.txt"
    victim.write_text("the user's notes")
    edit_meta(generator_dir, "generator.json",
              denoiser={"_target_": "builtins.open", "file": str(victim), "mode": "w"})
    line = one_line_error(capsys, lambda: WeightGenerator.load(generator_dir))
    assert "'builtins.open' is not one of weightgen's denoisers" in line and RETRAIN in line
    assert victim.read_text() == "the user's notes"


@pytest.mark.parametrize(("change", "problem"), [
    ({"file": "x.pkl"}, "MLPDenoiser takes no argument 'file'"),
    ({"hidden_dim": "16"}, "the argument 'hidden_dim' of MLPDenoiser must be int, got '16'"),
    ({"depth": True}, "the argument 'depth' of MLPDenoiser must be int, got True"),
    ({"hidden_dim": 32}, "in the weights but (32,"),  # another size than the weights
    ({"hidden_dim": 10**9}, "in the weights but"),  # compared before anything is allocated
    ({"depth": 0}, "MLPDenoiser cannot be built with these arguments: depth must be >= 1"),
])
def test_denoiser_arguments_are_typed_and_checked_against_the_weights(generator_dir, capsys,
                                                                    change, problem):
    meta = json.loads((generator_dir / "generator.json").read_text())
    edit_meta(generator_dir, "generator.json", denoiser=meta["denoiser"] | change)
    line = one_line_error(capsys, lambda: WeightGenerator.load(generator_dir))
    assert "generator.json does not describe a weight generator" in line
    assert problem in line and RETRAIN in line


def test_a_missing_denoiser_argument_is_named(generator_dir):
    meta = json.loads((generator_dir / "generator.json").read_text())
    del meta["denoiser"]["block_size"]
    (generator_dir / "generator.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptFileError, match="the argument 'block_size' of MLPDenoiser is "
                                               "missing"):
        WeightGenerator.read_meta(generator_dir)  # found before anything is built


def test_arguments_of_every_annotated_kind_are_checked():
    class Net(nn.Module):
        def __init__(self, size: int, rate: float = 0.1, name: str | None = None,
                     widths: tuple[int, ...] = (1,), flag: bool = False):
            super().__init__()

    assert checked_arguments(Net, {"size": 2, "rate": 1, "name": None, "widths": [3, 4],
                                   "flag": True}) == {"size": 2, "rate": 1, "name": None,
                                                      "widths": [3, 4], "flag": True}
    for bad in ({"size": 2.5}, {"size": 2, "rate": "fast"}, {"size": 2, "name": 3},
                {"size": 2, "widths": [3, "4"]}, {"size": 2, "flag": 1}, ["size", 2]):
        with pytest.raises(ValueError):
            checked_arguments(Net, bad)


# --- damaged metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "not an object"])
def test_a_damaged_generator_json_is_one_line_naming_it_and_the_fix(generator_dir, capsys, damage):
    path = generator_dir / "generator.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2] if damage == "truncated" else "[1, 2]")
    line = one_line_error(capsys, lambda: WeightGenerator.load(generator_dir))
    assert f"{path} is damaged (" in line
    assert "train one with `make generator` (weightgen-train-generator)" in line
    assert WeightGenerator.intact_meta(generator_dir) is None  # training makes it again


def test_a_truncated_base_json_is_one_line_naming_it_and_the_fix(tmp_path, capsys):
    base_dir = tmp_path / "base"
    save_base(base_dir, E2GANGenerator(ngf=4, text_dim=8, heads=2), PatchDiscriminator(ndf=4),
              {"steps": 1})
    assert base_files_intact(base_dir)
    path = base_dir / "base.json"
    path.write_text(path.read_text()[:20])
    line = one_line_error(capsys, lambda: read_base_meta(base_dir))
    assert f"{path} is damaged (not valid JSON: " in line
    assert "train it with `weightgen-dataset builder.stage=base`" in line
    assert not base_files_intact(base_dir)  # the dataset stage trains the base again
