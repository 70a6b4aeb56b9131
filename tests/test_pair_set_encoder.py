"""The learned encoder over the example pairs (diffusion.examples.set_width): the encoder, how a
denoiser adds it to the mean reading, the bank's sets, the config, and a generator trained with
it end to end on the tiny run."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import EXAMPLES
from helpers import compose_config, run_workspace
from torch import nn

from weightgen.config_checks import check_config
from weightgen.diffusion.condition import Condition
from weightgen.diffusion.example_bank import ExampleBank
from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.diffusion.pair_set_encoder import PairSetEncoder
from weightgen.diffusion.unet1d import UNet1DDenoiser
from weightgen.errors import ConfigError
from weightgen.stages.artifacts import default_inits, load_base, load_generator


def randomised(encoder: PairSetEncoder) -> PairSetEncoder:
    torch.manual_seed(3)
    nn.init.normal_(encoder.pair[-1].weight)
    return encoder


def test_the_set_encoder_starts_at_zero_and_ignores_the_pairs_order():
    torch.manual_seed(0)
    encoder = PairSetEncoder(example_dim=6, width=16, dim=8)
    pairs = torch.randn(2, 5, 6)
    assert torch.equal(encoder(pairs), torch.zeros(2, 8))
    randomised(encoder)
    shuffled = pairs[:, torch.tensor([3, 0, 4, 1, 2])]
    assert torch.allclose(encoder(pairs), encoder(shuffled), atol=1e-6)
    assert not torch.allclose(encoder(pairs[:1]), encoder(pairs[1:]))


def test_the_set_encoder_tells_apart_sets_the_mean_cannot():
    encoder = randomised(PairSetEncoder(example_dim=4, width=16, dim=8))
    agreeing = torch.zeros(1, 2, 4)
    disagreeing = torch.stack([torch.ones(4), -torch.ones(4)])[None]  # the same mean: zeros
    assert torch.equal(agreeing.mean(1), disagreeing.mean(1))
    assert not torch.allclose(encoder(agreeing), encoder(disagreeing))
    with pytest.raises(ValueError, match=r"pairs must be \[B, k, F\], got \[2, 4\]"):
        encoder(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="width >= 1"):
        PairSetEncoder(example_dim=4, width=0, dim=8)


def build(name: str, set_width: int = 0) -> nn.Module:
    torch.manual_seed(0)
    if name == "mlp":
        return MLPDenoiser(64, 4, 8, hidden_dim=16, depth=2, example_dim=6,
                           example_set_width=set_width)
    return UNet1DDenoiser(64, 4, 8, channels=(8, 16), patch_size=8, emb_dim=16, context_dim=8,
                          example_dim=6, example_set_width=set_width)


def inputs(batch: int = 3):
    gen = torch.Generator().manual_seed(1)
    blocks = (torch.randn(batch, 64, generator=gen),
              torch.randint(0, 1000, (batch,), generator=gen), torch.arange(batch) % 4)
    text = Condition(torch.randn(batch, 5, 8, generator=gen), torch.ones(batch, 5, dtype=torch.bool))
    return blocks, text, torch.randn(batch, 4, 6, generator=gen)


@pytest.mark.parametrize("name", ["mlp", "unet1d"])
def test_a_denoiser_with_a_set_encoder_starts_as_the_mean_reader_and_learns_the_set(name):
    mean_reader, set_reader = build(name), build(name, set_width=12)
    assert set_reader.example_set is not None and mean_reader.example_set is None
    shared = mean_reader.state_dict()
    extra = set_reader.state_dict()
    assert all(torch.equal(tensor, extra[key]) for key, tensor in shared.items())
    assert all(key.startswith("example_set.") for key in set(extra) - set(shared))
    for model in (mean_reader, set_reader):
        nn.init.normal_(model.output.weight)  # a zero head would hide every input
    set_reader.load_state_dict(extra | {k: v for k, v in mean_reader.state_dict().items()})
    blocks, text, pairs = inputs()
    # the mean reader reads a set as its mean vector, exactly
    assert torch.equal(mean_reader(*blocks, text.with_examples(pairs)),
                       mean_reader(*blocks, text.with_examples(pairs.mean(1))))
    # the set encoder starts at zero: the same output as the mean reader
    assert torch.allclose(set_reader(*blocks, text.with_examples(pairs)),
                          mean_reader(*blocks, text.with_examples(pairs)), atol=1e-6)
    loss = set_reader(*blocks, text.with_examples(pairs)).square().mean()
    loss.backward()
    assert set_reader.example_set.pair[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError,
                       match=r"examples must be \[3, 6\] or \[3, k, 6\], got \[3, 4, 5\]"):
        set_reader(*blocks, text.with_examples(torch.zeros(3, 4, 5)))


def test_a_set_encoder_without_example_pairs_is_refused():
    with pytest.raises(ValueError, match="example_set_width=4 needs example pairs"):
        MLPDenoiser(64, 4, 8, hidden_dim=16, depth=2, example_set_width=4)


def test_the_bank_hands_out_the_k_pairs_of_each_items_own_concept():
    bank = (torch.arange(3)[:, None] * 100 + torch.arange(6)).float()[..., None].expand(-1, -1, 5)
    examples = ExampleBank(bank.contiguous(), k=3, sets=True).train()
    concept = torch.tensor([0, 1, 2, 2, 1, 0] * 5)
    torch.manual_seed(0)
    sets = examples.draw(concept, dropped=torch.arange(30) == 4)
    assert sets.shape == (30, 3, 5)
    assert torch.equal(sets[4], torch.zeros(3, 5))
    kept = torch.cat([sets[:4], sets[5:]])
    offsets = kept[..., 0] - torch.cat([concept[:4], concept[5:]])[:, None] * 100
    assert ((offsets >= 0) & (offsets <= 5)).all()
    assert all(len(set(row.tolist())) == 3 for row in offsets)  # distinct pairs
    torch.manual_seed(0)
    means = ExampleBank(bank.contiguous(), k=3).train().draw(concept, torch.arange(30) == 4)
    assert torch.equal(means, sets.mean(1))  # the same draws, averaged
    fixed = examples.eval().draw(concept, None)
    assert torch.equal(fixed[:, :, 0] % 100, torch.arange(3).expand(30, -1).float())


def test_the_set_width_is_a_checked_knob():
    with pytest.raises(ConfigError, match="diffusion.examples.set_width=-1 is not allowed"):
        check_config(compose_config(["diffusion.examples.k=8", "diffusion.examples.set_width=-1"]))
    with pytest.raises(ConfigError, match=r"set_width=16 encodes example pairs, but "
                                          r"diffusion.examples.k=0 reads none"):
        check_config(compose_config(["diffusion.examples.set_width=16"]))
    assert compose_config([]).diffusion.examples.set_width == 0


@pytest.fixture(scope="module")
def set_run(tiny_run, tmp_path_factory) -> dict:
    """A generator with 2 example pairs read by a set encoder, trained on the tiny run."""
    from weightgen.stages.train_generator import train_weight_generator

    folder = tmp_path_factory.mktemp("set_generator")
    overrides = [*EXAMPLES, "diffusion.examples.set_width=8", f"paths.generator_dir={folder}",
                 f"paths.bench_dir={folder / 'bench'}"]
    ws = run_workspace(tiny_run["artifacts"], *overrides)
    return {"ws": ws, "folder": folder, "summary": train_weight_generator(ws),
            "artifacts": tiny_run["artifacts"], "overrides": overrides}


def test_a_generator_with_a_set_encoder_records_it_and_reads_the_pairs_as_a_set(set_run,
                                                                              examples_run):
    meta = json.loads((set_run["folder"] / "generator.json").read_text())
    assert meta["denoiser"]["example_set_width"] == 8
    assert meta["identity"]["diffusion"]["examples"]["set_width"] == 8
    mean_meta = json.loads((examples_run["folder"] / "generator.json").read_text())
    assert "set_width" not in mean_meta["identity"]["diffusion"]["examples"]
    assert "example_set_width" not in mean_meta["denoiser"]
    ws = run_workspace(set_run["artifacts"], *set_run["overrides"])
    inits = default_inits(ws, load_base(ws), load_generator(ws))
    concept = ws.test_concepts[0]
    first = inits.get("generated_examples", concept)
    pairs, picked, _ = inits.example_set(concept.id)
    assert pairs.shape[0] == 2 and picked == first.info["example_pairs"]
    # the pairs as a set, not their mean: the trained set encoder sees the difference
    as_mean = inits.generator.generate(
        Condition.of_text(ws.embed([concept.prompt]), pairs.mean(0)[None]),
        **dict(ws.cfg.diffusion.sampling)).state
    as_set = inits.generator.generate(
        Condition.of_text(ws.embed([concept.prompt]), pairs[None]),
        **dict(ws.cfg.diffusion.sampling)).state
    assert all(torch.equal(first.state[k], as_set[k]) for k in as_set)
    assert not all(torch.equal(as_mean[k], as_set[k]) for k in as_set)
