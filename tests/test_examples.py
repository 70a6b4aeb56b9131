"""Example pairs as the weight generator's second condition (diffusion.examples): the feature,
the denoisers' projection, the module's draws, the bundle, the refusals, the init, the bench and
the zero-shot table."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from helpers import compose_config, record_method_runs, run_workspace
from torch import nn

import weightgen.diffusion.examples as examples_module
from weightgen.config_checks import check_config
from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.condition import Condition
from weightgen.diffusion.example_bank import ExampleBank
from weightgen.diffusion.examples import (
    ExampleStandardiser,
    PairEncoder,
    fixed_choice,
    pooled_statistics,
)
from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.diffusion.module import WeightDiffusionModule
from weightgen.diffusion.sampler import ddim_from, sample_blocks
from weightgen.diffusion.staleness import check_generator_examples
from weightgen.diffusion.unet1d import UNet1DDenoiser
from weightgen.errors import ConfigError
from weightgen.gan.generator import E2GANGenerator
from weightgen.stages.artifacts import default_inits, load_base, load_generator
from weightgen.study.zero_shot_controls import control_kinds
from weightgen.weights.tokenizer import BlockTokenizer

NGF = 4
FEATURE_DIM = 16 * NGF + 12  # [E(t) - E(s), E(t)] mean+std over 4*ngf channels, RGB mean+std x2


def tiny_gan() -> E2GANGenerator:
    torch.manual_seed(0)
    return E2GANGenerator(ngf=NGF, text_dim=8)


def crops(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)


# --- the feature ----------------------------------------------------------------------------


def test_pair_features_are_one_deterministic_vector_per_pair():
    encoder = PairEncoder(tiny_gan())
    sources, targets = crops(5, 0), crops(5, 1)
    features = encoder.features(sources, targets)
    assert features.shape == (5, FEATURE_DIM) and features.dtype == torch.float32
    assert torch.equal(features, encoder.features(sources, targets))
    assert torch.equal(features, PairEncoder(tiny_gan()).features(sources, targets))
    # pairs are encoded independently: one pair alone gives its row
    assert torch.allclose(encoder.features(sources[2:3], targets[2:3]), features[2:3], atol=1e-6)
    other = encoder.features(sources, crops(5, 2))
    assert not torch.allclose(other, features)


def test_a_tint_shows_in_the_pixel_part_of_the_vector():
    encoder = PairEncoder(tiny_gan())
    sources = np.full((2, 16, 16, 3), 100, dtype=np.uint8)
    sources[:, :8] = 60  # some structure
    tinted = sources.copy()
    tinted[..., 0] += 51  # red + 51 / 127.5 = 0.4 in [-1, 1]
    features = encoder.features(sources, tinted)
    difference_pixels = features[:, 16 * NGF:16 * NGF + 6]  # RGB means, then stds, of t - s
    assert torch.allclose(difference_pixels[0], torch.tensor([0.4, 0, 0, 0, 0, 0]), atol=1e-5)


def test_the_encoder_is_a_frozen_copy_of_the_gan_encoder():
    gan = tiny_gan()
    encoder = PairEncoder(gan)
    before = encoder.features(crops(2, 0), crops(2, 1))
    with torch.no_grad():
        gan.stem[0].weight.add_(1.0)  # the GAN changes later: the encoder does not
    assert torch.equal(before, encoder.features(crops(2, 0), crops(2, 1)))
    assert not any(p.requires_grad for p in encoder.encoder.parameters())
    image = torch.randn(1, 3, 16, 16)
    expected = gan.down2(gan.res_in(gan.down1(gan.stem(image))))
    fresh = PairEncoder(gan).encoder(image)
    assert torch.equal(fresh, expected)


def test_pooled_statistics_are_channel_mean_and_std():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 2, 2)
    stats = pooled_statistics(x)
    assert stats.shape == (2, 6)
    assert torch.allclose(stats[0, :3], torch.tensor([1.5, 5.5, 9.5]))
    assert torch.allclose(stats[0, 3:], torch.full((3,), float(np.std([0, 1, 2, 3]))))


def test_the_standardiser_centres_the_bank():
    torch.manual_seed(0)
    bank = torch.randn(40, 5) * torch.tensor([1.0, 10.0, 0.1, 3.0, 0.0]) + 7
    standardiser = ExampleStandardiser.fit(bank)
    standardised = standardiser(bank)
    assert torch.allclose(standardised.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(standardised.std(0, correction=0)[:4], torch.ones(4), atol=1e-4)
    assert torch.equal(standardised[:, 4], torch.zeros(40))  # a constant feature: 0, not NaN
    again = ExampleStandardiser.from_state(standardiser.state_dict())
    assert torch.equal(again(bank), standardised) and again.dim == 5


def test_the_fixed_choice_is_seeded_distinct_and_bounded():
    assert fixed_choice(16, 4, seed=0) == fixed_choice(16, 4, seed=0)
    assert fixed_choice(16, 4, seed=0) != fixed_choice(16, 4, seed=1)
    assert len(set(fixed_choice(16, 16, seed=0))) == 16
    with pytest.raises(ValueError, match="cannot pick 5 example pairs out of 4"):
        fixed_choice(4, 5, seed=0)


# --- the denoisers -------------------------------------------------------------------------


def build(name: str, example_dim: int = 0) -> nn.Module:
    torch.manual_seed(0)
    if name == "mlp":
        return MLPDenoiser(64, 4, 8, hidden_dim=16, depth=2, example_dim=example_dim)
    return UNet1DDenoiser(64, 4, 8, channels=(8, 16), patch_size=8, emb_dim=16, context_dim=8,
                          example_dim=example_dim)


def denoiser_inputs(batch: int = 3):
    """(x, timesteps, block_index) and the text of ``batch`` items."""
    gen = torch.Generator().manual_seed(1)
    blocks = (torch.randn(batch, 64, generator=gen),
              torch.randint(0, 1000, (batch,), generator=gen), torch.arange(batch) % 4)
    text = torch.randn(batch, 5, 8, generator=gen)
    return blocks, Condition(text, torch.ones(batch, 5, dtype=torch.bool))


@pytest.mark.parametrize("name", ["mlp", "unet1d"])
def test_example_dim_zero_is_the_old_network_and_the_projection_comes_last(name):
    default, with_examples = build(name), build(name, example_dim=6)
    assert default.examples is None and not any("examples" in k for k in default.state_dict())
    extra = with_examples.state_dict()
    shared = default.state_dict()
    # every old parameter initialises exactly as without examples (created after them)
    assert all(torch.equal(tensor, extra[key]) for key, tensor in shared.items())
    assert sorted(set(extra) - set(shared)) == ["examples.bias", "examples.weight"]


@pytest.mark.parametrize("name", ["mlp", "unet1d"])
def test_the_denoiser_reads_the_example_vector(name):
    model = build(name, example_dim=6)
    nn.init.normal_(model.output.weight)  # a zero head would hide every input
    blocks, text = denoiser_inputs()
    zeros, ones = text.with_examples(torch.zeros(3, 6)), text.with_examples(torch.ones(3, 6))
    assert not torch.allclose(model(*blocks, zeros), model(*blocks, ones))
    with pytest.raises(ValueError,
                       match=r"pass examples \[B, 6\] or \[B, k, 6\] \(zeros for none\)"):
        model(*blocks, text)
    with pytest.raises(ValueError,
                       match=r"examples must be \[3, 6\] or \[3, k, 6\], got \[3, 5\]"):
        model(*blocks, text.with_examples(torch.zeros(3, 5)))
    loss = model(*blocks, ones).square().mean()
    loss.backward()
    assert model.examples.weight.grad.abs().sum() > 0


# --- the module ----------------------------------------------------------------------------

BANK = 6


def example_module(k: int = 2, cond_drop_prob: float = 0.0, examples_drop_prob: float = 0.0,
                   text_noise: float = 0.0) -> WeightDiffusionModule:
    """3 concepts; concept c's pair j has the vector c * 100 + j in every feature (dim 6)."""
    bank = (torch.arange(3)[:, None] * 100 + torch.arange(BANK)).float()[..., None].expand(-1, -1, 6)
    tokens = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    return WeightDiffusionModule(
        build("mlp", example_dim=6), DDPMScheduler(prediction_type="sample"),
        Condition(tokens, torch.ones(3, 5, dtype=torch.bool)),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        lr_scheduler=lambda optimizer, num_training_steps: None, cond_drop_prob=cond_drop_prob,
        text_noise=text_noise, examples=ExampleBank(bank.contiguous(), k, examples_drop_prob))


def test_each_item_averages_k_distinct_pairs_of_its_own_concept():
    module = example_module(k=2).train()
    concept = torch.tensor([0, 1, 2, 2, 1, 0] * 20)
    torch.manual_seed(0)
    vectors = module.examples.draw(concept, None)
    assert vectors.shape == (120, 6) and torch.equal(vectors, vectors[:, :1].expand(-1, 6))
    offset = vectors[:, 0] - concept * 100  # the mean of two distinct indices in 0..5
    assert ((offset >= 0.5) & (offset <= BANK - 1.5)).all() and len(set(offset.tolist())) > 3
    assert torch.equal(offset * 2, (offset * 2).round())
    torch.manual_seed(0)
    assert torch.equal(vectors, module.examples.draw(concept, None))  # seeded by the global RNG
    # validation reads the first k pairs
    kept = module.eval().examples.draw(concept, None)[:, 0]
    assert torch.equal(kept, concept * 100 + 0.5)


def test_a_dropped_prompt_drops_the_examples_and_examples_drop_alone():
    concept = torch.tensor([0, 1, 2, 1])
    both = example_module(cond_drop_prob=1.0).train().condition(concept)
    assert not both.mask.any() and not both.examples.any()
    alone = example_module(examples_drop_prob=1.0).train()
    assert alone.condition(concept).mask.all() and not alone.condition(concept).examples.any()
    assert alone.eval().condition(concept).examples.all()  # never outside training


def test_the_task_loss_generates_from_the_text_never_emptied_and_the_examples():
    module = example_module(k=2, cond_drop_prob=1.0).train()  # every diffusion prompt dropped
    concept = torch.tensor([0, 2])
    condition = module.task_condition(concept)
    assert condition.mask.all() and torch.equal(condition.tokens, module.text_tokens[concept])
    assert condition.pooled is None  # this module has no pooled vectors
    assert torch.equal(condition.examples[:, 0] // 100, concept.float())


def test_the_text_draws_come_first_so_text_only_items_see_the_same_text():
    concept = torch.tensor([0, 1, 2, 1])
    with_bank = example_module(text_noise=0.5).train()
    without = WeightDiffusionModule(build("mlp"), DDPMScheduler(), with_bank.texts,
                                    optimizer=None, lr_scheduler=None, text_noise=0.5).train()
    torch.manual_seed(4)
    first = with_bank.condition(concept)
    torch.manual_seed(4)
    assert torch.equal(first.tokens, without.condition(concept).tokens)


def test_a_module_with_examples_trains_and_samples():
    module = example_module(k=3, cond_drop_prob=0.5, examples_drop_prob=0.2)
    optimizer = module.optimizer_factory(module.denoiser.parameters())
    batch = {"blocks": torch.randn(12, 64), "block_index": torch.arange(4).repeat(3),
             "concept": torch.arange(3).repeat_interleave(4)}
    before = module.denoiser.examples.weight.detach().clone()
    module.train()
    for _ in range(2):
        loss = module.diffusion_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, module.denoiser.examples.weight)


def test_a_k_larger_than_the_bank_is_refused():
    with pytest.raises(ConfigError, match="diffusion.examples.k=7 is not allowed with a bank of 6"):
        example_module(k=7)


class ExampleEcho(nn.Module):
    """Predicts the example vector's first feature everywhere."""

    example_dim = 4

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, timesteps, block_index, condition):
        return condition.examples[:, :1].expand_as(x)


def test_guidance_extrapolates_from_no_text_and_no_examples():
    sampler = ddim_from(dict(DDPMScheduler(prediction_type="sample").config))
    condition = Condition(torch.zeros(1, 3, 4), torch.ones(1, 3, dtype=torch.bool),
                          examples=torch.full((1, 4), 2.0))
    guided = sample_blocks(ExampleEcho(), sampler, condition, num_blocks=5, block_size=6,
                           guidance_scale=3.0)
    assert torch.allclose(guided, torch.full((5, 6), 6.0), atol=1e-5)


# --- the bundle ----------------------------------------------------------------------------


def fake_text(seed: int, examples: torch.Tensor | None = None) -> Condition:
    """One prompt's text and, given, its example vector [F]."""
    gen = torch.Generator().manual_seed(seed)
    return Condition(torch.randn(1, 5, 8, generator=gen), torch.ones(1, 5, dtype=bool),
                     torch.randn(1, 8, generator=gen),
                     None if examples is None else examples.unsqueeze(0))


def tiny_bundle(example_dim: int = 6) -> WeightGenerator:
    adapters = [{"w": torch.randn(8, 16)} for _ in range(2)]
    tokenizer = BlockTokenizer(64, "sequential", "per_tensor").fit(adapters)
    denoiser = {"_target_": "weightgen.diffusion.mlp.MLPDenoiser", "block_size": 64,
                "num_blocks": tokenizer.num_blocks, "text_dim": 8, "hidden_dim": 16, "depth": 1,
                "example_dim": example_dim}
    network = MLPDenoiser(64, tokenizer.num_blocks, 8, hidden_dim=16, depth=1,
                          example_dim=example_dim)
    nn.init.normal_(network.output.weight)
    meta = {"denoiser": denoiser, "scheduler": dict(DDPMScheduler(prediction_type="sample").config),
            "examples": {"k": 2, "bank": 4, "features": examples_module.FEATURES}}
    standardiser = ExampleStandardiser(torch.zeros(example_dim), torch.ones(example_dim))
    return WeightGenerator(network, tokenizer, meta, standardiser)


def test_a_generator_with_examples_round_trips_and_reads_them(tmp_path):
    generator = tiny_bundle()
    generator.save(tmp_path)
    assert (tmp_path / "examples.safetensors").is_file()
    meta = json.loads((tmp_path / "generator.json").read_text())
    assert WeightGenerator.intact_meta(tmp_path) == meta
    loaded = WeightGenerator.load(tmp_path)
    assert loaded.examples_k == 2 and loaded.denoiser.example_dim == 6
    assert torch.equal(loaded.example_standardiser.std, torch.ones(6))
    one, two = torch.zeros(6), torch.linspace(-2, 2, 6)
    for vector in (one, two, None):
        expected = generator.generate(fake_text(0, vector)).state["w"]
        assert torch.equal(loaded.generate(fake_text(0, vector)).state["w"], expected)
    assert not torch.allclose(loaded.generate(fake_text(0, one)).state["w"],
                              loaded.generate(fake_text(0, two)).state["w"])
    # None is text only: the zero vector
    assert torch.equal(loaded.generate(fake_text(0)).state["w"],
                       loaded.generate(fake_text(0, one)).state["w"])
    (tmp_path / "examples.safetensors").write_bytes(b"damaged")
    assert WeightGenerator.intact_meta(tmp_path) is None


def test_a_text_only_generator_refuses_examples_and_writes_no_examples_file(tmp_path):
    generator = tiny_bundle(example_dim=0)
    generator.meta.pop("examples")
    generator.example_standardiser = None
    generator.save(tmp_path)
    assert not (tmp_path / "examples.safetensors").exists()
    loaded = WeightGenerator.load(tmp_path)
    assert loaded.examples_k == 0 and loaded.example_standardiser is None
    with pytest.raises(ValueError, match="trained without example pairs"):
        loaded.generate(fake_text(0, torch.zeros(6)))


def test_a_generator_under_another_examples_setting_is_refused_naming_both():
    check_generator_examples({"examples": {"k": 8}}, "gen", 8)
    check_generator_examples({}, "gen", 0)  # from before the knob: text only
    with pytest.raises(ConfigError, match=re.escape(
            "the weight generator at gen was trained with diffusion.examples.k=0, but this run "
            "configures diffusion.examples.k=8; train a generator with it "
            "(weightgen-train-generator diffusion.examples.k=8")):
        check_generator_examples({"denoiser": {}}, "gen", 8)
    with pytest.raises(ConfigError, match="or set diffusion.examples.k=8$"):
        check_generator_examples({"examples": {"k": 8}}, "gen", 0)


# --- the config ----------------------------------------------------------------------------


def test_the_examples_knobs_default_off_and_compose_with_the_presets():
    assert compose_config().diffusion.examples.k == 0
    for preset in ("quickstart", "bench"):
        cfg = compose_config([f"experiment={preset}", "diffusion.examples.k=8"])
        assert cfg.diffusion.examples.k == 8
        check_config(cfg)


@pytest.mark.parametrize(("overrides", "message"), [
    (["diffusion.examples.k=-1"], r"diffusion.examples.k=-1 is not allowed: use an int >= 0"),
    (["diffusion.examples.drop_prob=2"], r"diffusion.examples.drop_prob=2 is not allowed"),
    (["diffusion.examples.k=9", "diffusion.examples.bank=8"],
     r"diffusion.examples.k=9 is more than the pairs .* use diffusion.examples.k <= 8"),
    (["diffusion.examples.k=9", "data.n_train=4", "data.batch_size=4"],
     r"diffusion.examples.k <= 4"),
])
def test_a_bad_examples_knob_is_a_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_config(overrides))


# --- on the tiny trained run (slow) ---------------------------------------------------------

# (examples_run, a generator with 2 example pairs on the tiny run: conftest.py)


def test_training_with_examples_records_them_and_is_skipped_when_up_to_date(examples_run):
    from weightgen.stages.train_generator import train_weight_generator

    meta = json.loads((examples_run["folder"] / "generator.json").read_text())
    assert meta["examples"] == {"k": 2, "bank": 4, "features": examples_module.FEATURES}
    assert meta["denoiser"]["example_dim"] == FEATURE_DIM
    assert meta["identity"]["diffusion"]["examples"]["k"] == 2
    assert "skipped" not in examples_run["summary"]
    assert train_weight_generator(examples_run["ws"])["skipped"] is True


def test_default_examples_leave_the_training_identity_and_generator_json_as_before(tiny_run):
    meta = json.loads((Path(run_workspace(tiny_run["artifacts"]).cfg.paths.generator_dir)
                       / "generator.json").read_text())
    assert "examples" not in meta and "example_dim" not in meta["denoiser"]
    assert "examples" not in meta["identity"]["diffusion"]
    assert "examples_sha256" not in meta


def test_a_generator_is_refused_under_another_examples_setting(examples_run):
    with pytest.raises(ConfigError, match="trained with diffusion.examples.k=2, but this run "
                                          "configures diffusion.examples.k=0"):
        load_generator(run_workspace(examples_run["artifacts"], *examples_run["overrides"],
                                     "diffusion.examples.k=0"))
    with pytest.raises(ConfigError, match="trained with diffusion.examples.k=0, but this run "
                                          "configures diffusion.examples.k=2"):
        load_generator(run_workspace(examples_run["artifacts"], "diffusion.examples.k=2"))


def example_inits(artifacts, *overrides: str):
    ws = run_workspace(artifacts, *overrides)
    base = load_base(ws)
    return ws, default_inits(ws, base, load_generator(ws))


def test_the_examples_init_reads_k_training_pairs_and_charges_their_encoding(examples_run,
                                                                            monkeypatch):
    ws, inits = example_inits(examples_run["artifacts"], *examples_run["overrides"])
    concept = ws.test_concepts[0]
    first = inits.get("generated_examples", concept)
    again = inits.get("generated_examples", concept)
    assert first.kind == "generated_examples" and len(first.info["example_pairs"]) == 2
    assert first.info["example_pairs"] == again.info["example_pairs"]
    assert all(torch.equal(first.state[k], again.state[k]) for k in first.state)
    text_only = inits.get("generated", concept)
    assert not all(torch.equal(first.state[k], text_only.state[k]) for k in first.state)
    assert first.seconds > first.info["encoding_seconds"] > 0
    # the state is the generator's for the prompt and those pairs' vector
    pairs = ws.pair_store.load(concept.id)
    picked = first.info["example_pairs"]
    features = PairEncoder(load_base(ws).generator).features(pairs.train_source[picked],
                                                             pairs.train_target[picked])
    vector = inits.generator.example_standardiser(features).mean(0)
    condition = Condition.of_text(ws.embed([concept.prompt]), vector.unsqueeze(0))
    expected = inits.generator.generate(condition, **dict(ws.cfg.diffusion.sampling)).state
    assert all(torch.equal(first.state[k], expected[k]) for k in expected)
    slow_features = PairEncoder.features

    def slower(self, sources, targets):
        time.sleep(0.3)
        return slow_features(self, sources, targets)

    monkeypatch.setattr(PairEncoder, "features", slower)
    assert inits.get("generated_examples", concept).seconds >= 0.3


def test_the_examples_init_of_a_text_only_generator_is_a_config_error(tiny_run):
    ws, inits = example_inits(tiny_run["artifacts"])
    with pytest.raises(ConfigError, match="needs a weight generator trained with example pairs, "
                                          "but the weight generator was trained without"):
        inits.get("generated_examples", ws.test_concepts[0])


def test_the_zero_shot_table_adds_text_plus_examples(examples_run):
    from weightgen.stages.zero_shot import zero_shot_report
    from weightgen.study.generalisation import generalisation_table

    ws = run_workspace(examples_run["artifacts"], *examples_run["overrides"],
                       "bench.controls.k_blend=2")  # the tiny run has 2 training adapters
    summary = zero_shot_report(ws, n_train=1)
    report = json.loads((examples_run["folder"] / "zero_shot.json").read_text())
    for row in report["concepts"]:
        assert {"generated", "generated_examples"} <= set(row)
        assert row["examples_generation_seconds"] > 0
    assert summary["examples_k"] == 2 and "generated_examples" in summary["test"]
    assert set(summary["generated_examples_beats_nearest"]) == {"train", "test"}
    table = (examples_run["folder"] / "zero_shot.md").read_text()
    assert "| generated | generated_examples |" in table and "With 2 example pairs" in table
    # The held-out concepts against the controls that see the same inputs, scored once: the
    # kinds the rows hold read the same PSNR.
    held_out = ws.test_concepts
    controls = report["controls"]
    assert [(r["concept"], r["kind"]) for r in controls] == [(c.id, c.kind) for c in held_out]
    rows = {r["concept"]: r for r in report["concepts"]}
    for control in controls:
        assert set(control_kinds(True)) <= set(control)
        for kind in ("mean", "nearest", "trained", "generated", "generated_examples"):
            assert control[kind] == rows[control["concept"]][kind]["psnr"]
    by_kind = summary["controls"]["by_kind"]
    assert summary["controls"]["split"] == "test" and set(by_kind) == {c.kind for c in held_out}
    assert set(next(iter(by_kind.values()))["wins"]) == {"generated_examples", "generated"}
    assert "## Against the controls that see the same inputs (test split)" in table
    out = examples_run["folder"] / "table"
    generalisation_table([{"name": "ex", "note": "", "overrides": [], "train_seconds": 1.0,
                           "zero_shot": report}], out)
    row = json.loads((out / "results.json").read_text())["configurations"][0]
    assert row["test_generated_examples"] == summary["test"]["generated_examples"]
    assert "held-out text + examples" in (out / "results.md").read_text()


def test_the_paraphrase_gap_with_examples_gives_each_wording_the_same_pairs(examples_run):
    from weightgen.stages.artifacts import scoring_tools
    from weightgen.study.prompt_variants import paraphrase_gap

    ws = run_workspace(examples_run["artifacts"], *examples_run["overrides"])
    evaluator, inits = scoring_tools(ws)
    concept = ws.train_concepts[0]
    gap = paraphrase_gap(evaluator, inits, [concept], examples=True)
    row = gap["rows"][0]
    reworded = inits.generated_examples(concept, concept.heldout_phrasing)
    assert reworded.info["prompt"] == concept.heldout_phrasing
    assert row["paraphrase"] == evaluator.quality(concept, reworded.state).psnr
    assert row["correct"] == evaluator.quality(
        concept, inits.generated_examples(concept).state).psnr
    assert gap["gap_db"] == row["correct"] - row["paraphrase"]
    text_only = paraphrase_gap(evaluator, inits, [concept])["rows"][0]
    assert text_only["paraphrase"] != row["paraphrase"]  # the pairs change the adapter


def test_the_bench_runs_the_examples_method_and_a_new_generator_reruns_it(examples_run):
    from weightgen.stages.bench import _run_settings, run_benchmark

    methods = "bench.methods=[pix2pix_scratch,denoised_init,denoised_examples_init]"
    ws = run_workspace(examples_run["artifacts"], *examples_run["overrides"], methods,
                       "bench.n_unseen=1", "bench.n_seen=0", "bench.pix2pix_steps=4",
                       "bench.finetune_steps=2", "bench.eval_every=2")
    summary = run_benchmark(ws)
    assert {"denoised_init", "denoised_examples_init"} <= set(summary["final_psnr"])
    results = json.loads((examples_run["folder"] / "bench" / "results.json").read_text())
    method = results["concepts"][0]["methods"]["denoised_examples_init"]
    assert method["init_seconds"] > method["info"]["encoding_seconds"] > 0
    concept = ws.test_concepts[0].id
    settings = _run_settings(ws, concept, "denoised_examples_init", 2, 2, None)
    assert settings["generator_sha256"] is not None
    # the text-only generator cannot serve it: refused before any run
    text_only = run_workspace(examples_run["artifacts"], methods, "bench.n_unseen=1",
                              "bench.n_seen=0", f"paths.bench_dir={examples_run['folder']}/b2")
    with pytest.raises(ConfigError, match="drop denoised_examples_init from bench.methods"):
        run_benchmark(text_only)


# --- controls that see what the generator sees, ablations of its inputs (issue 23; slow) -------

def final_state(ws, concept_id: str) -> dict[str, torch.Tensor]:
    row = next(r for r in ws.weight_store.final_rows() if r["concept"] == concept_id)
    return ws.weight_store.load(row)


def generator_query(ws, inits, concept) -> tuple[torch.Tensor, list[int]]:
    """The example vector the generator reads for ``concept``, recomputed here: its k pairs
    (the seeded choice), the base GAN's encoder, the generator's standardisation."""
    pairs = ws.pair_store.load(concept.id)
    picked = fixed_choice(len(pairs.train_source), inits.generator.examples_k,
                          int(ws.cfg.diffusion.sampling.seed))
    features = PairEncoder(load_base(ws).generator).features(pairs.train_source[picked],
                                                             pairs.train_target[picked])
    return inits.generator.example_standardiser(features).mean(0), picked


def test_the_controls_recompute_the_bank_the_generator_was_trained_on(examples_run):
    from weightgen.stages.train_generator import example_bank

    ws, inits = example_inits(examples_run["artifacts"], *examples_run["overrides"])
    concepts = inits.generator.meta["train_concepts"]
    encoder = PairEncoder(load_base(ws).generator)
    raw = torch.stack([encoder.features(p.train_source[:4], p.train_target[:4])
                       for p in map(ws.pair_store.load, concepts)])  # diffusion.examples.bank=4
    stored = inits.generator.example_standardiser
    refit = ExampleStandardiser.fit(raw.flatten(0, 1))  # the statistics it was trained with
    assert torch.allclose(refit.mean, stored.mean, atol=1e-6)
    assert torch.allclose(refit.std, stored.std, atol=1e-6)
    bank = inits.training_bank()
    assert torch.allclose(bank, stored(raw), atol=1e-6)
    training = example_bank(encoder, ws.pair_store, concepts, 4)[0]  # training's own code path
    assert torch.equal(bank, training)


def test_knn_examples_pick_the_argmin_of_recomputed_distances_and_blend_the_nearest(
        examples_run):
    ws, inits = example_inits(examples_run["artifacts"], *examples_run["overrides"],
                              "bench.controls.k_blend=2")
    concept = ws.test_concepts[0]
    query, picked = generator_query(ws, inits, concept)
    concepts = inits.generator.meta["train_concepts"]
    distances = torch.linalg.vector_norm(inits.training_bank().mean(1) - query, dim=1)
    order = [concepts[i] for i in distances.argsort().tolist()]
    nearest = inits.get("examples_nearest", concept)
    assert nearest.info["concepts"] == order[:1] and nearest.info["example_pairs"] == picked
    assert nearest.info["distances"] == pytest.approx([float(distances.min())], rel=1e-5)
    own = final_state(ws, order[0])
    assert all(torch.equal(nearest.state[k], own[k]) for k in own)  # that adapter, as stored
    assert nearest.seconds > nearest.info["encoding_seconds"] > 0
    assert nearest.info["fit"]["seconds"] > 0
    blend = inits.get("examples_blend", concept)
    assert blend.info["concepts"] == order
    states = [final_state(ws, c) for c in order]
    for key in own:
        assert torch.allclose(blend.state[key], (states[0][key] + states[1][key]) / 2, atol=1e-6)
    with pytest.raises(ConfigError, match=r"bench.controls.k_blend=3: the run has 2 training "
                                          r"concepts to blend; use 1..2"):
        example_inits(examples_run["artifacts"], *examples_run["overrides"])[1].get(
            "examples_blend", concept)


def test_the_examples_only_ablation_reads_the_pairs_and_the_null_text(examples_run):
    from weightgen.diffusion.sampler import empty_prompt

    ws, inits = example_inits(examples_run["artifacts"], *examples_run["overrides"])
    concept = ws.test_concepts[0]
    query, picked = generator_query(ws, inits, concept)
    sampling = dict(ws.cfg.diffusion.sampling)
    only = inits.get("generated_examples_only", concept)
    expected = inits.generator.generate(Condition.of_text(
        empty_prompt(ws.text_encoder.max_length, ws.text_encoder.dim), query.unsqueeze(0)),
        **sampling).state
    assert all(torch.equal(only.state[k], expected[k]) for k in expected)
    assert only.info["prompt"] is None and only.info["example_pairs"] == picked
    assert only.seconds > only.info["encoding_seconds"] > 0
    # the text encoder's "" (start and end tokens) is another condition than no text
    encoded_empty = inits.generator.generate(
        Condition.of_text(ws.embed([""]), query.unsqueeze(0)), **sampling).state
    assert not all(torch.equal(only.state[k], encoded_empty[k]) for k in expected)
    with_text = inits.get("generated_examples", concept).state
    assert not all(torch.equal(only.state[k], with_text[k]) for k in expected)


def test_the_ridge_controls_choose_alpha_by_leave_one_concept_out_or_on_validation(
        examples_run):
    from dataclasses import replace

    from weightgen.stages.artifacts import training_rows, training_texts
    from weightgen.weights.ridge import RidgeMap

    ws, inits = example_inits(examples_run["artifacts"], *examples_run["overrides"])
    concept = ws.test_concepts[0]
    concepts = inits.generator.meta["train_concepts"]
    states = [final_state(ws, c) for c in concepts]
    alphas = list(ws.cfg.bench.controls.ridge_alphas)

    def combined(weights):
        return {k: sum(float(w) * s[k] for w, s in zip(weights, states, strict=True))
                for k in states[0]}

    # from the example vector: one row per training concept, its bank's mean
    ridge = inits.get("examples_ridge", concept)
    fit = ridge.info["fit"]
    assert fit["selection"] == "leave_one_concept_out" and fit["validation_concepts"] == []
    assert fit["alpha"] in alphas and len(fit["errors"]) == len(alphas) and fit["seconds"] > 0
    query, _ = generator_query(ws, inits, concept)
    weights = RidgeMap(inputs=inits.training_bank().mean(1), alpha=fit["alpha"]).weights(
        query[None])[0]
    expected = combined(weights)
    assert all(torch.allclose(ridge.state[k], expected[k], atol=1e-5) for k in expected)
    assert ridge.seconds > ridge.info["encoding_seconds"] > 0
    # from the pooled text vector: one row per training phrasing, every one of them
    text = inits.get("text_ridge", concept)
    phrasings = training_texts(ws, training_rows(ws, "last"), "all")
    texts = [t for c in concepts for t in phrasings[c]]
    rows = torch.tensor([i for i, c in enumerate(concepts) for _ in phrasings[c]])
    row_weights = RidgeMap(ws.embed(texts).pooled, text.info["fit"]["alpha"]).weights(
        ws.embed([concept.prompt]).pooled)[0]
    expected = combined(torch.zeros(len(concepts), dtype=torch.float64).index_add_(
        0, rows, row_weights))
    assert all(torch.allclose(text.state[k], expected[k], atol=1e-5) for k in expected)
    assert text.info["fit"]["selection"] == "leave_one_concept_out" and text.seconds > 0
    # validation concepts given (here the held-out one, whose adapter the store trains): alpha is
    # chosen by the error of their predicted adapters against their own
    validating = example_inits(examples_run["artifacts"], *examples_run["overrides"])[1]
    validating.controls = replace(validating.controls, validation=[concept])
    chosen = validating.get("examples_ridge", concept).info["fit"]
    assert chosen["selection"] == "validation" and chosen["validation_concepts"] == [concept.id]
    own = final_state(ws, concept.id)
    numbers = sum(v.numel() for v in own.values())
    for alpha in alphas:
        predicted = combined(RidgeMap(inits.training_bank().mean(1), alpha).weights(
            query[None])[0])
        error = sum(float((predicted[k] - own[k]).pow(2).sum()) for k in own) / numbers
        assert chosen["errors"][f"{alpha:g}"] == pytest.approx(error, rel=1e-4, abs=1e-12)
    assert chosen["alpha"] == min(alphas, key=lambda a: chosen["errors"][f"{a:g}"])
    assert validating.settings("examples_ridge", concept)["validation_concepts"] == [concept.id]


def test_the_joint_ridge_control_reads_the_sentence_and_the_example_vectors_side_by_side(
        examples_run):
    """text_examples_ridge: one row per training phrasing, its pooled sentence vector beside its
    concept's example vector, each block over its root-mean-square norm; the query is the prompt
    and the concept's k pairs scaled alike."""
    from weightgen.stages.artifacts import training_rows, training_texts
    from weightgen.weights.ridge import RidgeMap

    ws, inits = example_inits(examples_run["artifacts"], *examples_run["overrides"])
    concept = ws.test_concepts[0]
    concepts = inits.generator.meta["train_concepts"]
    states = [final_state(ws, c) for c in concepts]
    phrasings = training_texts(ws, training_rows(ws, "last"), "all")
    rows = [i for i, c in enumerate(concepts) for _ in phrasings[c]]
    pooled = ws.embed([t for c in concepts for t in phrasings[c]]).pooled
    examples = inits.training_bank().mean(1)[rows]
    text_scale = pooled.pow(2).sum(1).mean().sqrt()
    examples_scale = examples.pow(2).sum(1).mean().sqrt()
    query, picked = generator_query(ws, inits, concept)
    joint = inits.get("text_examples_ridge", concept)
    inputs = torch.cat([pooled / text_scale, examples / examples_scale], dim=1)
    asked = torch.cat([ws.embed([concept.prompt]).pooled[0] / text_scale, query / examples_scale])
    row_weights = RidgeMap(inputs, joint.info["fit"]["alpha"]).weights(asked[None])[0]
    weights = torch.zeros(len(concepts), dtype=torch.float64).index_add_(
        0, torch.tensor(rows), row_weights)
    for key in states[0]:
        expected = sum(float(w) * s[key] for w, s in zip(weights, states, strict=True))
        assert torch.allclose(joint.state[key], expected, atol=1e-5)
    assert joint.info["example_pairs"] == picked and joint.info["prompt"] == concept.prompt
    assert joint.seconds > joint.info["encoding_seconds"] > 0
    assert joint.info["fit"]["alpha"] in list(ws.cfg.bench.controls.ridge_alphas)
    assert set(inits.settings("text_examples_ridge", concept)) == {"ridge_alphas",
                                                                   "validation_concepts"}


@pytest.fixture(scope="module")
def two_heldout(examples_run, tmp_path_factory):
    """The examples run with a second held-out concept (a concept file of the tiny run's
    concepts and one more, its pairs added to a copy of the pair cache): the shuffled pairs need
    another held-out concept's."""
    from helpers import photos_loaded_once

    from weightgen.concepts.catalog import builtin_concepts
    from weightgen.concepts.spec import save_concepts
    from weightgen.stages.pairs import build_pairs

    folder = tmp_path_factory.mktemp("two_heldout")
    ws = examples_run["ws"]
    extra = next(c for c in builtin_concepts()
                 if c.split == "test" and c.id not in {x.id for x in ws.concepts})
    save_concepts([*ws.concepts, extra], folder / "concepts.yaml")
    shutil.copytree(ws.cfg.paths.pairs_dir, folder / "pairs")
    overrides = [*examples_run["overrides"], "concepts=file",
                 f"concepts.path={folder / 'concepts.yaml'}", "concepts.n_train=null",
                 "concepts.n_test=null", f"paths.pairs_dir={folder / 'pairs'}",
                 f"paths.bench_dir={folder / 'bench'}"]
    with photos_loaded_once():
        build_pairs(run_workspace(examples_run["artifacts"], *overrides))
    return {"overrides": overrides, "folder": folder}


CONTROLS = ["knn_examples_init", "knn_examples_blend", "ridge_examples_init", "ridge_text_init",
            "ridge_text_examples_init", "denoised_examples_only", "denoised_examples_shuffled"]


def test_every_control_and_ablation_runs_through_the_bench(examples_run, two_heldout,
                                                           monkeypatch):
    from weightgen.stages.bench import run_benchmark

    settings = [f"bench.methods=[pix2pix_scratch,{','.join(CONTROLS)}]",
                "bench.headline=ridge_examples_init", "bench.n_unseen=1", "bench.n_seen=0",
                "bench.pix2pix_steps=4", "bench.finetune_steps=2", "bench.eval_every=2",
                "bench.controls.k_blend=2"]
    ws = run_workspace(examples_run["artifacts"], *two_heldout["overrides"], *settings)
    heldout = [c.id for c in ws.test_concepts]
    assert len(heldout) == 2
    summary = run_benchmark(ws)
    bench_dir = two_heldout["folder"] / "bench"
    results = json.loads((bench_dir / "results.json").read_text())
    concept = results["concepts"][0]["concept"]
    row = results["concepts"][0]["methods"]
    for method in CONTROLS:  # zero-shot and fine-tune rows, per-concept seconds as generation
        assert summary["zero_shot_psnr"][method] is not None, method
        assert summary["final_psnr"][method] is not None, method
        assert row[method]["init_seconds"] > 0, method
        assert row[method]["curve"][0]["seconds"] == row[method]["init_seconds"], method
    partner = next(c for c in heldout if c != concept)
    assert row["denoised_examples_shuffled"]["info"]["pairs_of"] == partner
    stored = json.loads((bench_dir / "runs" / concept / "denoised_examples_shuffled.json")
                        .read_text())
    assert stored["settings"]["init"] == {"pairs_of": partner}
    fits = summary["control_fits"]
    assert set(fits) == set(CONTROLS[:5]) and all(f["seconds"] > 0 for f in fits.values())
    assert fits["ridge_text_init"]["selection"] == "leave_one_concept_out"
    assert set(summary["paired_vs_controls"]) == {"knn_examples_init", "ridge_examples_init"}
    markdown = (bench_dir / "results.md").read_text()
    assert "- ridge_examples_init fitted once in" in markdown
    assert "chosen by leave-one-concept-out" in markdown and "| vs knn_examples_init |" in markdown
    # a control's knob is one of its runs' settings: another k_blend reruns that control alone
    calls = record_method_runs(monkeypatch)
    run_benchmark(run_workspace(examples_run["artifacts"], *two_heldout["overrides"],
                                *settings, "bench.controls.k_blend=1"))
    assert calls == [(concept, "knn_examples_blend")]


def test_shuffled_pairs_need_two_held_out_concepts_before_any_run(examples_run):
    from weightgen.stages.bench import run_benchmark

    ws = run_workspace(examples_run["artifacts"], *examples_run["overrides"],
                       "bench.methods=[pix2pix_scratch,denoised_examples_shuffled]",
                       "bench.headline=denoised_examples_shuffled", "bench.n_unseen=1",
                       f"paths.bench_dir={examples_run['folder'] / 'b3'}")
    with pytest.raises(ConfigError, match=rf"this run holds out {re.escape(ws.test_concepts[0].id)}: hold "
                                          r"out at least 2 \(concepts.n_test=2\), or drop "
                                          r"denoised_examples_shuffled from bench.methods"):
        run_benchmark(ws)
    assert not (examples_run["folder"] / "b3" / "runs").exists()
