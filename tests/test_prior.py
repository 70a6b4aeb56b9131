"""A generator that contains the regression (diffusion.prior, issue 24 item 2): the ridge fit and
its out-of-fold predictions, the module's residual targets, sampling (a zero denoiser generates
the ridge prediction; no examples: the mean; guidance), the bundle and its refusals, the config
and a training on the tiny run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler
from helpers import compose_config, run_workspace
from omegaconf import OmegaConf

from weightgen.config_checks import check_config
from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.condition import Condition
from weightgen.diffusion.example_bank import ExampleBank
from weightgen.diffusion.examples import FEATURES, ExampleStandardiser
from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.diffusion.module import WeightDiffusionModule
from weightgen.diffusion.prior import (
    concept_targets,
    fit_prior,
    training_inputs,
)
from weightgen.diffusion.staleness import check_generator_prior
from weightgen.errors import ConfigError, CorruptFileError
from weightgen.stages.artifacts import load_generator
from weightgen.stages.train_generator import training_identity
from weightgen.weights.ridge import RidgeMap
from weightgen.weights.tokenizer import BlockTokenizer

CONCEPTS, DIM, BLOCKS, BLOCK = 8, 5, 3, 4
ALPHAS = [0.01, 0.1, 1.0]


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [C, DIM] and targets [C, BLOCKS, BLOCK] that depend on them linearly plus noise."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(CONCEPTS, DIM, generator=gen)
    mixing = torch.randn(DIM, BLOCKS * BLOCK, generator=gen)
    noise = 0.5 * torch.randn(CONCEPTS, BLOCKS * BLOCK, generator=gen)
    return inputs, (inputs @ mixing + noise).view(CONCEPTS, BLOCKS, BLOCK)


def ridge(inputs, targets, query, alpha, rows=None) -> torch.Tensor:
    """weights.ridge's prediction for ``query`` [q, d] from the rows ``rows`` (default: all)."""
    rows = torch.arange(len(inputs)) if rows is None else rows
    weights = RidgeMap(inputs[rows], alpha).weights(query)
    return (weights @ targets[rows].flatten(1).double()).view(-1, *targets.shape[1:]).float()


def examples(vectors: torch.Tensor) -> Condition:
    return Condition(examples=vectors)


# --- the fit ---------------------------------------------------------------------------------


def test_the_prior_is_the_ridge_prediction_fitted_on_every_training_concept():
    inputs, targets = data()
    fit = fit_prior("examples_ridge", inputs, torch.arange(CONCEPTS), targets, ALPHAS, 4, 0)
    assert fit.prior.alpha in ALPHAS and set(fit.prior.fit["errors"]) == {"0.01", "0.1", "1"}
    query = torch.randn(3, DIM, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fit.prior(examples(query)),
                               ridge(inputs, targets, query, fit.prior.alpha), atol=1e-5,
                               rtol=1e-5)
    # no examples (the all-zero vector): the training targets' mean
    torch.testing.assert_close(fit.prior(examples(torch.zeros(1, DIM)))[0], targets.mean(0))


def test_out_of_fold_predictions_never_see_their_own_concept():
    """Each concept's training residual comes from the map fitted without its fold: changing its
    own target leaves it unchanged (the in-sample fit moves), and the residuals are larger than
    in-sample ones, as a new concept's would be."""
    inputs, targets = data()
    concepts = torch.arange(CONCEPTS)
    fit = fit_prior("examples_ridge", inputs, concepts, targets, [0.1], 4, 0)
    folds = fit.out_of_fold.fold_of
    assert sorted(torch.bincount(folds).tolist()) == [2, 2, 2, 2]

    def out_of_fold(fitted) -> torch.Tensor:  # [C, BLOCKS, BLOCK]: every block of each concept
        return torch.stack([fitted.out_of_fold(examples(inputs), concepts,
                                               torch.full((CONCEPTS,), b)) for b in range(BLOCKS)],
                           dim=1)

    held_out = out_of_fold(fit)
    for concept in range(CONCEPTS):
        others = torch.nonzero(folds != folds[concept]).flatten()
        torch.testing.assert_close(held_out[concept], ridge(inputs, targets, inputs[concept:concept + 1],
                                                            0.1, others)[0], atol=1e-5, rtol=1e-5)
    in_sample = fit.prior(examples(inputs))
    assert not torch.allclose(held_out, in_sample, atol=1e-3)
    assert (targets - held_out).square().sum() > 1.5 * (targets - in_sample).square().sum()

    moved = targets.clone()
    moved[0] += 10.0
    refit = fit_prior("examples_ridge", inputs, concepts, moved, [0.1], 4, 0)
    torch.testing.assert_close(out_of_fold(refit)[0], held_out[0])
    assert not torch.allclose(refit.prior(examples(inputs[:1])), in_sample[:1], atol=1e-2)


def test_the_text_prior_has_a_row_per_text_and_targets_are_each_concepts_mean():
    pooled = torch.arange(5.0)[:, None].expand(5, 3)  # text t's vector is t everywhere
    phrasings = torch.tensor([[0, 3, -1], [1, -1, -1], [2, 4, 1]])
    inputs, rows = training_inputs("text_ridge", None, pooled, phrasings)
    assert rows.tolist() == [0, 0, 1, 2, 2, 2]
    assert inputs[:, 0].tolist() == [0.0, 3.0, 1.0, 2.0, 4.0, 1.0]
    bank = torch.randn(3, 4, 6)
    inputs, rows = training_inputs("examples_ridge", bank, pooled, phrasings)
    assert torch.equal(inputs, bank.mean(1)) and rows.tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match="set diffusion.examples.k > 0"):
        training_inputs("examples_ridge", None, pooled, phrasings)
    blocks = torch.arange(4.0)[:, None, None].expand(4, 2, 3)
    means = concept_targets(blocks, torch.tensor([0, 1, 0, 1]), 2)
    assert means[:, 0, 0].tolist() == [1.0, 2.0]


def test_a_prior_needs_two_training_concepts():
    inputs, targets = data()
    with pytest.raises(ConfigError, match="needs at least 2 training concepts"):
        fit_prior("text_ridge", inputs[:1], torch.tensor([0]), targets[:1], ALPHAS, 5, 0)
    two = fit_prior("text_ridge", inputs[:2], torch.arange(2), targets[:2], ALPHAS, 5, 0)
    assert two.prior.fit["folds"] == 2  # at most one fold per concept


# --- the module -------------------------------------------------------------------------------


def prior_module(fit) -> WeightDiffusionModule:
    """3 texts, a bank with one pair per concept (its vector: the concept's input), an MLP whose
    zero head predicts 0, and the fit's out-of-fold prior."""
    torch.manual_seed(0)
    denoiser = MLPDenoiser(BLOCK, BLOCKS, 8, hidden_dim=16, depth=1, example_dim=DIM)
    tokens = torch.randn(CONCEPTS, 2, 8)
    inputs, _ = data()
    return WeightDiffusionModule(
        denoiser, DDPMScheduler(prediction_type="sample"),
        Condition(tokens, torch.ones(CONCEPTS, 2, dtype=torch.bool)),
        optimizer=None, lr_scheduler=None, examples=ExampleBank(inputs[:, None], 1),
        prior=fit.out_of_fold)


def test_the_module_learns_each_items_block_minus_its_out_of_fold_prior():
    inputs, targets = data()
    fit = fit_prior("examples_ridge", inputs, torch.arange(CONCEPTS), targets, [0.1], 4, 0)
    module = prior_module(fit).eval()  # the concept's pair, no dropout
    concept = torch.tensor([0, 3, 5, 5, 7, 1])
    block = torch.tensor([0, 2, 1, 0, 2, 1])
    batch = {"blocks": targets[concept, block], "block_index": block, "concept": concept}
    folds = fit.out_of_fold.fold_of
    expected = torch.stack([
        ridge(inputs, targets, inputs[c:c + 1], 0.1, torch.nonzero(folds != folds[c]).flatten())
        [0, b] for c, b in zip(concept.tolist(), block.tolist(), strict=True)])
    # the denoiser predicts zeros: the loss is the residual's mean square
    torch.testing.assert_close(module.diffusion_loss(batch),
                               (batch["blocks"] - expected).square().mean(), atol=1e-5, rtol=1e-5)


def test_a_prior_and_the_task_loss_are_refused_together():
    inputs, targets = data()
    fit = fit_prior("examples_ridge", inputs, torch.arange(CONCEPTS), targets, [0.1], 4, 0)
    with pytest.raises(ConfigError, match="set diffusion.task_loss.weight=0 or diffusion.prior=null"):
        WeightDiffusionModule(MLPDenoiser(BLOCK, BLOCKS, 8, example_dim=DIM), DDPMScheduler(),
                              prior_module(fit).texts, optimizer=None, lr_scheduler=None,
                              task_loss=object(), prior=fit.out_of_fold)


# --- sampling and the bundle ------------------------------------------------------------------


def prior_bundle(kind: str = "examples_ridge", zero_head: bool = True) -> WeightGenerator:
    """A generator over raw values (BLOCKS x BLOCK numbers, no normalisation) with a prior fitted
    on data(); its MLP's head is zero (predicts 0) unless ``zero_head`` is False."""
    inputs, targets = data()
    tokenizer = BlockTokenizer(BLOCK, "sequential", "none").fit(
        [{"w": t.reshape(-1)} for t in targets])
    example_dim = DIM if kind == "examples_ridge" else 0
    text_dim = 8 if kind == "examples_ridge" else DIM
    config = {"_target_": "weightgen.diffusion.mlp.MLPDenoiser", "block_size": BLOCK,
              "num_blocks": BLOCKS, "text_dim": text_dim, "hidden_dim": 16, "depth": 1,
              "conditioning": "pooled", "example_dim": example_dim}
    torch.manual_seed(0)
    network = MLPDenoiser(**{k: v for k, v in config.items() if k != "_target_"})
    if not zero_head:
        torch.nn.init.normal_(network.output.weight)
    meta = {"denoiser": config, "scheduler": dict(DDPMScheduler(prediction_type="sample").config),
            "train_concepts": [f"c{i}" for i in range(CONCEPTS)]}
    standardiser = None
    if example_dim:
        meta["examples"] = {"k": 2, "bank": 4, "features": FEATURES}
        standardiser = ExampleStandardiser(torch.zeros(DIM), torch.ones(DIM))
    fit = fit_prior(kind, inputs, torch.arange(CONCEPTS), targets, ALPHAS, 4, 0)
    return WeightGenerator(network, tokenizer, meta, standardiser, fit.prior)


def query(kind: str, vector: torch.Tensor | None) -> Condition:
    """One prompt (its pooled vector ``vector`` for a text prior) and, for an examples prior, the
    example vector ``vector`` (None: none)."""
    gen = torch.Generator().manual_seed(3)
    if kind == "text_ridge":
        return Condition(torch.randn(1, 2, DIM, generator=gen), torch.ones(1, 2, dtype=torch.bool),
                         vector[None])
    return Condition(torch.randn(1, 2, 8, generator=gen), torch.ones(1, 2, dtype=torch.bool),
                     torch.randn(1, 8, generator=gen), None if vector is None else vector[None])


@pytest.mark.parametrize("kind", ["examples_ridge", "text_ridge"])
@pytest.mark.parametrize("steps", [1, 3])
def test_a_zero_denoiser_generates_the_ridge_prediction(kind, steps):
    generator = prior_bundle(kind)
    inputs, targets = data()
    vector = torch.randn(DIM, generator=torch.Generator().manual_seed(2))
    expected = ridge(inputs, targets, vector[None], generator.prior.alpha)[0].reshape(-1)
    state = generator.generate(query(kind, vector), steps=steps, seed=4).state
    torch.testing.assert_close(state["w"], expected, atol=1e-5, rtol=1e-5)


def test_without_examples_the_examples_prior_is_the_training_targets_mean():
    generator = prior_bundle()
    state = generator.generate(query("examples_ridge", None)).state
    torch.testing.assert_close(state["w"], data()[1].mean(0).reshape(-1))


def test_guidance_mixes_whole_adapters_from_the_null_conditions_prior():
    """Zero denoiser, guidance s: mean + s * (ridge prediction - mean), one step or several."""
    generator = prior_bundle()
    inputs, targets = data()
    vector = torch.randn(DIM, generator=torch.Generator().manual_seed(2))
    predicted = ridge(inputs, targets, vector[None], generator.prior.alpha)[0].reshape(-1)
    mean = targets.mean(0).reshape(-1)
    for steps in (1, 3):
        state = generator.generate(query("examples_ridge", vector), steps=steps,
                                   guidance_scale=3.0).state
        torch.testing.assert_close(state["w"], mean + 3.0 * (predicted - mean), atol=1e-4,
                                   rtol=1e-4)


def test_a_generator_with_a_prior_round_trips(tmp_path):
    generator = prior_bundle(zero_head=False)
    generator.save(tmp_path)
    meta = json.loads((tmp_path / "generator.json").read_text())
    assert meta["prior"]["kind"] == "examples_ridge" and meta["prior"]["input_dim"] == DIM
    assert meta["prior"]["alpha"] == generator.prior.alpha and meta["prior"]["concepts"] == 8
    assert meta["prior"]["folds"] == 4 and "prior_sha256" in meta
    assert WeightGenerator.intact_meta(tmp_path) == meta
    loaded = WeightGenerator.load(tmp_path)
    vector = torch.randn(DIM, generator=torch.Generator().manual_seed(2))
    for condition in (query("examples_ridge", vector), query("examples_ridge", None)):
        assert torch.equal(loaded.generate(condition).state["w"],
                           generator.generate(condition).state["w"])
    assert torch.equal(loaded.prior.targets, generator.prior.targets)
    (tmp_path / "prior.safetensors").write_bytes(b"damaged")
    assert WeightGenerator.intact_meta(tmp_path) is None


def test_a_generator_without_a_prior_writes_no_prior_file(tmp_path):
    generator = prior_bundle()
    generator.prior = None
    generator.save(tmp_path)
    assert not (tmp_path / "prior.safetensors").exists()
    assert "prior" not in json.loads((tmp_path / "generator.json").read_text())
    assert WeightGenerator.load(tmp_path).prior is None


def saved(tmp_path) -> Path:
    prior_bundle().save(tmp_path)
    return tmp_path


def edit(folder: Path, change) -> None:
    path = folder / "generator.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["prior"].update(input_dim=4), "reads 4 numbers, the denoiser's example_dim is 5"),
    (lambda m: m["prior"].update(kind="exec"), "names no prior kind"),
    (lambda m: m["prior"].update(alpha=-1), "alpha -1 is not a positive number"),
    (lambda m: m["prior"].update(concepts=3), "fitted on 3 concepts, the generator on 8"),
    (lambda m: m.update(identity={"diffusion": {}}),
     "training identity has diffusion.prior=None, its prior entry examples_ridge"),
    (lambda m: (m.pop("prior"), m.update(identity={"diffusion": {"prior": "examples_ridge"}})),
     "training identity has diffusion.prior=examples_ridge, its prior entry None"),
])
def test_a_damaged_prior_entry_is_refused_naming_the_file(tmp_path, change, message):
    folder = saved(tmp_path)
    edit(folder, change)
    with pytest.raises(CorruptFileError, match=re.escape(message)):
        WeightGenerator.load(folder)


def test_a_prior_file_of_other_shapes_is_refused(tmp_path):
    folder = saved(tmp_path)
    other = prior_bundle()
    other.prior.register_buffer("targets", other.prior.targets[:, :2], persistent=False)
    other.save(tmp_path / "other")
    (folder / "prior.safetensors").write_bytes((tmp_path / "other" / "prior.safetensors")
                                               .read_bytes())
    edit(folder, lambda m: m.update(prior_sha256=json.loads(
        (tmp_path / "other" / "generator.json").read_text())["prior_sha256"]))
    with pytest.raises(CorruptFileError, match=r"prior.safetensors holds .* but generator.json's "
                                               r"prior and tokenizer say"):
        WeightGenerator.load(folder)
    (folder / "prior.safetensors").unlink()
    with pytest.raises(CorruptFileError, match="prior.safetensors: file is missing"):
        WeightGenerator.load(folder)


def test_a_generator_under_another_prior_setting_is_refused_naming_both():
    check_generator_prior({"prior": {"kind": "text_ridge"}}, "gen", "text_ridge")
    check_generator_prior({}, "gen", None)  # from before the knob: no prior
    with pytest.raises(ConfigError, match=re.escape(
            "the weight generator at gen was trained with diffusion.prior=null, but this run "
            "configures diffusion.prior=examples_ridge; train a generator with it "
            "(weightgen-train-generator diffusion.prior=examples_ridge")):
        check_generator_prior({"denoiser": {}}, "gen", "examples_ridge")
    with pytest.raises(ConfigError, match="configures diffusion.prior=null; .* or set "
                                          "diffusion.prior=examples_ridge$"):
        check_generator_prior({"prior": {"kind": "examples_ridge"}}, "gen", None)


# --- the config -------------------------------------------------------------------------------

PRESETS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_the_prior_defaults_off_and_composes_with_every_preset(preset):
    cfg = compose_config([f"experiment={preset}"])
    assert cfg.diffusion.prior is None and cfg.diffusion.prior_folds >= 2
    for prior in ("text_ridge", "examples_ridge"):
        cfg = compose_config([f"experiment={preset}", f"diffusion.prior={prior}",
                              "diffusion.examples.k=2"])
        assert cfg.diffusion.prior == prior
        check_config(cfg)


@pytest.mark.parametrize(("overrides", "message"), [
    (["diffusion.prior=lasso"], "diffusion.prior='lasso' is not allowed: use null"),
    (["diffusion.prior=examples_ridge", "diffusion.examples.k=0"],
     "diffusion.prior=examples_ridge reads the example pairs, but diffusion.examples.k=0"),
    (["diffusion.prior=text_ridge", "diffusion.task_loss.weight=1", "adapter=full"],
     "diffusion.task_loss does not add diffusion.prior's prediction"),
    (["diffusion.prior_folds=1"], "diffusion.prior_folds=1 is not allowed: use an int >= 2"),
    (["diffusion.prior_alphas=[]"], "diffusion.prior_alphas=[] is not allowed"),
    (["diffusion.prior_alphas=[0.1,-1]"], "a non-empty list of positive numbers"),
])
def test_a_bad_prior_knob_is_a_config_error(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(compose_config(overrides))


def test_no_prior_leaves_the_training_identity_as_before_and_a_prior_enters_it():
    rows = [{"concept": "a", "sha256": "1"}]
    default = training_identity(compose_config(), {}, "base", rows, {"a": ("one",)})["diffusion"]
    assert not any(key.startswith("prior") for key in default)
    on = training_identity(compose_config(["diffusion.prior=text_ridge",
                                           "diffusion.prior_folds=3"]),
                           {}, "base", rows, {"a": ("one",)})["diffusion"]
    alphas = OmegaConf.to_container(compose_config().diffusion.prior_alphas)
    assert on == default | {"prior": "text_ridge", "prior_alphas": alphas, "prior_folds": 3}


# --- on the tiny trained run (slow) -----------------------------------------------------------

PRIOR_RUN = ["diffusion.prior=examples_ridge", "diffusion.examples.k=2",
             "diffusion.examples.bank=4", "diffusion.steps=10", "diffusion.val_every=10"]


@pytest.fixture(scope="module")
def prior_run(tiny_run, tmp_path_factory):
    """A generator with example pairs and an examples_ridge prior trained on the tiny run."""
    from weightgen.stages.train_generator import train_weight_generator

    folder = tmp_path_factory.mktemp("prior_generator")
    overrides = [*PRIOR_RUN, f"paths.generator_dir={folder}", f"paths.bench_dir={folder / 'b'}"]
    ws = run_workspace(tiny_run["artifacts"], *overrides)
    return {"artifacts": tiny_run["artifacts"], "folder": folder, "overrides": overrides,
            "ws": ws, "summary": train_weight_generator(ws)}


def test_training_with_a_prior_saves_it_and_the_run_loads_it(prior_run):
    from weightgen.stages.train_generator import train_weight_generator

    meta = json.loads((prior_run["folder"] / "generator.json").read_text())
    assert meta["prior"]["kind"] == "examples_ridge"
    assert meta["prior"]["input_dim"] == meta["denoiser"]["example_dim"]
    assert meta["prior"]["concepts"] == len(meta["train_concepts"]) == 2
    assert meta["prior"]["folds"] == 2  # 5 folds asked, one per concept at most
    assert meta["identity"]["diffusion"]["prior"] == "examples_ridge"
    assert meta["identity"]["diffusion"]["prior_folds"] == 5
    generator = load_generator(prior_run["ws"])
    assert generator.prior.targets.shape == (2, generator.tokenizer.num_blocks,
                                             generator.tokenizer.block_size)
    assert train_weight_generator(prior_run["ws"])["skipped"] is True


def test_a_generator_with_a_prior_is_refused_without_one_and_the_other_way_round(prior_run,
                                                                                 tiny_run):
    with pytest.raises(ConfigError, match="trained with diffusion.prior=examples_ridge, but this "
                                          "run configures diffusion.prior=null"):
        load_generator(run_workspace(prior_run["artifacts"], *prior_run["overrides"],
                                     "diffusion.prior=null"))
    with pytest.raises(ConfigError, match="trained with diffusion.prior=null, but this run "
                                          "configures diffusion.prior=text_ridge"):
        load_generator(run_workspace(tiny_run["artifacts"], "diffusion.prior=text_ridge"))


def test_a_text_prior_trains_on_the_generators_texts(tiny_run, tmp_path):
    from weightgen.stages.train_generator import train_weight_generator

    ws = run_workspace(tiny_run["artifacts"], "diffusion.prior=text_ridge", "diffusion.steps=2",
                       "diffusion.val_every=2", f"paths.generator_dir={tmp_path}",
                       f"paths.bench_dir={tmp_path / 'b'}")
    train_weight_generator(ws)
    generator = load_generator(ws)
    assert generator.prior.kind == "text_ridge"
    assert generator.prior.input_dim == ws.text_encoder.dim
