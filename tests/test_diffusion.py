"""The weight generator: diffusion module, sampler, trained bundle, generate stage (issue 4)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from helpers import (
    TINY,
    TINY_GENERATOR,
    StopAtStep,
    compose_config,
    entry_workspace,
    photos_loaded_once,
    run_workspace,
    shared_minilm,
)
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors import safe_open
from torch import nn

from weightgen.concepts.spec import Concept, save_concepts
from weightgen.concepts.text_fingerprints import texts_fingerprint
from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.condition import Condition
from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.diffusion.module import WeightDiffusionModule, phrasing_table
from weightgen.diffusion.sampler import ddim_from, sample_blocks
from weightgen.errors import (
    ConfigError,
    CorruptFileError,
    InterruptedRunError,
    OutputExistsError,
    StaleArtifactError,
)
from weightgen.stages import train_generator as train_generator_stage
from weightgen.stages.artifacts import (
    default_inits,
    generator_expectations,
    load_base,
    load_generator,
    read_base_meta,
    training_rows,
    training_texts,
)
from weightgen.stages.dataset import build_weight_dataset
from weightgen.stages.generate import generate_adapter_file
from weightgen.stages.train_generator import (
    generator_seed,
    train_weight_generator,
    training_identity,
)
from weightgen.stages.workspace import Workspace
from weightgen.stages.zero_shot import zero_shot_report
from weightgen.study.zero_shot_table import KINDS
from weightgen.training import make_trainer
from weightgen.utils.io import load_safetensors, sha256_file

UNSEEN_PROMPT = "a photo in pink with strong film grain"


@pytest.fixture(scope="module")
def run(tiny_run):
    """The shared tiny run: its artifacts, a Workspace on it and its loaded generator."""
    built = tiny_run
    ws = run_workspace(built["artifacts"])
    return {"artifacts": built["artifacts"], "summary": built["generator"], "ws": ws,
            "generator": load_generator(ws)}


def training_options() -> dict:
    """WeightDiffusionModule's optimiser and LR-schedule partials, as configured."""
    cfg = compose_config().diffusion
    return {"optimizer": instantiate(cfg.optimizer), "lr_scheduler": instantiate(cfg.lr_scheduler)}


def scheduler(prediction_type: str = "sample") -> DDPMScheduler:
    cfg = OmegaConf.to_container(compose_config().diffusion.scheduler, resolve=True)
    return DDPMScheduler(**(cfg | {"prediction_type": prediction_type}))


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([state[k].flatten().double() for k in sorted(state)])


def attached_adapter(ws):
    """The run's adapter on a copy of its base generator: where generated states must load."""
    adapter = instantiate(ws.cfg.adapter)
    return adapter, adapter.attach(load_base(ws).fresh_copy()[0])


# --- the LightningModule ------------------------------------------------------------------


def test_module_loss_decreases_on_a_tiny_overfit():
    torch.manual_seed(0)
    blocks = torch.randn(2, 4, 16)  # 2 adapters x 4 blocks of 16
    tokens, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    module = WeightDiffusionModule(MLPDenoiser(16, 4, 8, hidden_dim=64, depth=2), scheduler(),
                                   Condition(tokens, mask), **training_options())
    batch = {"blocks": blocks.reshape(8, 16), "block_index": torch.arange(4).repeat(2),
             "concept": torch.arange(2).repeat_interleave(4)}

    def loss(seed: int = 123) -> float:
        torch.manual_seed(seed)  # the same noise and timesteps before and after training
        with torch.no_grad():
            return float(module.diffusion_loss(batch))

    before = loss()
    optimizer = torch.optim.Adam(module.denoiser.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        module.diffusion_loss(batch).backward()
        optimizer.step()
    assert before == pytest.approx(float(blocks.pow(2).mean()), rel=1e-5)  # zero-init output
    assert loss() < 0.2 * before


def test_module_rejects_an_unknown_prediction_type():
    with pytest.raises(ValueError, match=r"prediction_type='v_prediction': use sample or epsilon"):
        WeightDiffusionModule(MLPDenoiser(16, 4, 8, hidden_dim=8, depth=1),
                              scheduler("v_prediction"),
                              Condition(torch.zeros(1, 2, 8), torch.ones(1, 2, dtype=torch.bool)),
                              **training_options())


def test_prompt_dropout_empties_the_prompt_only_while_training():
    tokens, mask = torch.randn(3, 5, 8), torch.ones(3, 5, dtype=torch.bool)
    module = WeightDiffusionModule(MLPDenoiser(16, 4, 8, hidden_dim=8, depth=1), scheduler(),
                                   Condition(tokens, mask), **training_options(),
                                   cond_drop_prob=1.0)
    concept = torch.tensor([2, 0])
    dropped = module.train().condition(concept)
    assert not dropped.tokens.any() and not dropped.mask.any()
    assert dropped.pooled is None and dropped.examples is None
    kept = module.eval().condition(concept)
    assert torch.equal(kept.tokens, tokens[concept]) and torch.equal(kept.mask, mask[concept])


def test_the_module_draws_each_concepts_text_among_its_own_phrasings_only_while_training():
    texts, table = phrasing_table([("a", "b", "c"), ("d",)])
    assert texts == ["a", "b", "c", "d"] and table.tolist() == [[0, 1, 2], [3, -1, -1]]
    tokens = torch.arange(4.0).reshape(4, 1, 1).expand(4, 2, 8).clone()  # text t's tokens are t
    module = WeightDiffusionModule(MLPDenoiser(16, 4, 8, hidden_dim=8, depth=1), scheduler(),
                                   Condition(tokens, torch.ones(4, 2, dtype=torch.bool)),
                                   **training_options(), phrasings=table)
    concept = torch.tensor([0] * 100 + [1] * 100)
    torch.manual_seed(0)
    drawn = module.train().condition(concept).tokens[:, 0, 0]
    assert set(drawn[:100].tolist()) == {0.0, 1.0, 2.0} and set(drawn[100:].tolist()) == {3.0}
    prompts = module.eval().condition(concept).tokens[:, 0, 0]
    assert set(prompts[:100].tolist()) == {0.0} and set(prompts[100:].tolist()) == {3.0}


# --- the trained generator ------------------------------------------------------------------


def test_overfit_generator_reproduces_each_training_adapter_from_its_prompt(run):
    """One-step generation from a train prompt gives that concept's adapter, not the other's.

    With the text ignored the best a denoiser can do is the mean of the two adapters, whose
    distance to each is half the distance between them: the 0.3 bound fails then.
    """
    ws, generator = run["ws"], run["generator"]
    rows = training_rows(ws)
    assert len(rows) == 2 and rows[0]["concept"] != rows[1]["concept"]
    trained = {r["concept"]: ws.weight_store.load(r) for r in rows}
    first, second = (generator.tokenizer.tokenize(trained[r["concept"]]) for r in rows)
    between = first - second
    adapter, gan = attached_adapter(ws)
    for row in rows:
        generated = generator.generate(Condition.of_text(ws.embed([row["prompt"]]))).state
        adapter.load_state(gan, generated)  # the generated state fits the GAN's adapter
        target = trained[row["concept"]]
        assert torch.allclose(flat(adapter.state(gan)), flat(generated).to(torch.float64),
                              atol=1e-6)
        error = generator.tokenizer.tokenize(generated) - generator.tokenizer.tokenize(target)
        assert error.norm() < 0.3 * between.norm(), row["concept"]
        assert error.norm() < 0.3 * generator.tokenizer.tokenize(target).norm()
        assert (flat(generated) - flat(target)).norm() < 0.3 * flat(target).norm()


def test_training_summary_is_recorded_with_the_generator(run):
    summary = run["summary"]
    assert summary["adapters"] == 2 and summary["concepts"] == 2  # checkpoints=last
    assert summary["block_size"] == 128 and summary["world_size"] == 1
    assert summary["steps"] == 300 and len(summary["replica_checksums"]) == 1
    meta = run["generator"].meta
    assert meta["training"] == json.loads(json.dumps(summary))
    assert meta["denoiser"]["_target_"] == "weightgen.diffusion.mlp.MLPDenoiser"
    assert meta["tokenizer_rules"] == {"block_size": 128, "grouping": "sequential",
                                       "normalization": "per_tensor", "basis": "none",
                                       "basis_rank": None}
    assert meta["scheduler"]["prediction_type"] == "sample"
    assert meta["train_concepts"] == sorted(c.id for c in run["ws"].train_concepts)


def test_zero_shot_report_scores_every_init_for_train_and_held_out_concepts(run, tiny_run):
    ws = run["ws"]
    summary = zero_shot_report(ws, n_train=1)
    table = json.loads((Path(ws.cfg.paths.generator_dir) / "zero_shot.json").read_text())
    assert [r["concept"] for r in table["concepts"]] == [  # train: the first in pick order
        *ws.train_pick_order[:1], *(c.id for c in ws.test_concepts)]
    built = {a["concept"]: a for a in tiny_run["dataset"]["adapters"]}
    for row in table["concepts"]:
        assert set(KINDS) <= set(row) and row["generation_seconds"] > 0
        # The builder scored the base before training each adapter, and each checkpoint after.
        recorded = built[row["concept"]]
        assert row["standard"]["psnr"] == pytest.approx(recorded["base_psnr"], abs=1e-4)
        assert row["trained"]["psnr"] == pytest.approx(recorded["checkpoints"][4]["psnr"],
                                                       abs=1e-4)
    assert {"train", "test"} <= set(summary)
    table_md = (Path(ws.cfg.paths.generator_dir) / "zero_shot.md").read_text()
    assert all(f"| {row['concept']} |" in table_md for row in table["concepts"])


def test_an_up_to_date_generator_is_not_retrained(run):
    summary = train_weight_generator(run["ws"])
    assert summary["skipped"] is True
    assert summary["replica_checksums"] == run["summary"]["replica_checksums"]


def test_validation_scores_generated_adapters_for_train_and_held_out_concepts(run):
    ws = run["ws"]
    validation = run["summary"]["validation"]
    assert [row["step"] for row in validation] == [300]  # diffusion.val_every=300
    row = validation[0]
    for concept in ws.train_concepts[:1] + ws.test_concepts[:1]:  # val_concepts=1
        assert 0 < row[f"gen_psnr/{concept.id}"] < 100
    assert {"gen/train_gap_closed", "gen/test_gap_closed"} <= set(row)


def test_training_rows_last_keeps_one_checkpoint_per_concept(run):
    ws = run["ws"]
    every = training_rows(run_workspace(run["artifacts"], "diffusion.data.checkpoints=all"))
    last = training_rows(ws)
    assert {r["split"] for r in every} == {"train"} and len(every) == 2 * len(last)
    assert [(r["concept"], r["step"]) for r in last] == sorted(
        (c.id, 4) for c in ws.train_concepts
    )
    with pytest.raises(ValueError, match=r"diffusion.data.checkpoints='first': use one of"):
        training_rows(run_workspace(run["artifacts"], "diffusion.data.checkpoints=first"))


def test_n_concepts_limits_the_generator_data_and_the_controls_alike(run):
    limited = run_workspace(run["artifacts"], "diffusion.data.n_concepts=1")
    first = run["ws"].train_concepts[0].id
    assert {r["concept"] for r in training_rows(limited)} == {first}
    inits = default_inits(limited, load_base(limited))
    assert inits.nearest_train_concept(run["ws"].test_concepts[0])[0] == first
    with pytest.raises(ValueError, match=r"n_concepts=5: use null or an int in 1..2"):
        training_rows(run_workspace(run["artifacts"], "diffusion.data.n_concepts=5"))


def test_held_out_adapters_are_in_the_store_but_never_generator_data(run, tmp_path):
    ws, heldout = run["ws"], run["ws"].test_concepts[0].id
    assert heldout in {r["concept"] for r in ws.weight_store.rows()}  # the bench's ceiling
    every = run_workspace(run["artifacts"], "diffusion.data.checkpoints=all")
    train_ids = {c.id for c in ws.train_concepts}
    assert {r["concept"] for r in training_rows(every)} == train_ids
    assert set(run["generator"].meta["train_concepts"]) == train_ids
    # A store that labels it train (built under another split) still keeps it out of this run.
    weights = tmp_path / "weights"
    shutil.copytree(ws.cfg.paths.weights_dir, weights)
    manifest = weights / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps(r | {"split": "train"}) + "\n" for r in rows))
    relabelled = run_workspace(run["artifacts"], f"paths.weights_dir={weights}",
                               "diffusion.data.checkpoints=all")
    assert {r["concept"] for r in training_rows(relabelled)} == train_ids
    relabelled_inits = default_inits(relabelled, load_base(relabelled), standard_state={})
    assert {r["concept"] for r in relabelled_inits._train_rows} == train_ids


def test_training_texts_are_the_prompts_or_every_stored_training_phrasing(run):
    ws = run["ws"]
    rows = training_rows(ws)
    assert training_texts(ws, rows) == {r["concept"]: (r["prompt"],) for r in rows}  # default
    every = run_workspace(run["artifacts"], "diffusion.data.phrasings=all")
    texts = training_texts(every, rows)
    assert texts == {c.id: c.phrasings for c in ws.train_concepts}
    assert all(len(phrasings) >= 5 for phrasings in texts.values())
    with pytest.raises(ConfigError, match="diffusion.data.phrasings='some': use one of canonical"):
        training_texts(run_workspace(run["artifacts"], "diffusion.data.phrasings=some"), rows)
    unrecorded = [{k: v for k, v in r.items() if k != "phrasings"} for r in rows]
    with pytest.raises(StaleArtifactError, match="records no phrasings.*make dataset.*=canonical"):
        training_texts(every, unrecorded)


@pytest.mark.parametrize("leak", ["heldout_phrasing", "test_prompt"])
def test_a_training_phrasing_that_is_held_out_text_is_refused(run, leak):
    ws = run["ws"]
    rows = training_rows(ws)
    text = (ws.train_concepts[1].heldout_phrasing if leak == "heldout_phrasing"
            else ws.test_concepts[0].prompt)
    leaky = [rows[0] | {"phrasings": [rows[0]["prompt"], text]}, *rows[1:]]
    assert training_texts(ws, leaky)[rows[0]["concept"]] == (rows[0]["prompt"],)  # canonical
    every = run_workspace(run["artifacts"], "diffusion.data.phrasings=all")
    with pytest.raises(ConfigError, match=re.escape(f"{rows[0]['concept']!r} has the phrasing "
                                                    f"{text!r}, which is a held-out")):
        training_texts(every, leaky)


def test_a_generator_trained_on_all_phrasings_never_sees_the_held_out_family(run, tmp_path):
    ws = run_workspace(run["artifacts"], "diffusion.data.phrasings=all", "diffusion.steps=2",
                       "diffusion.val_every=2", f"paths.generator_dir={tmp_path}")
    assert "skipped" not in train_weight_generator(ws)  # other texts: not the canonical generator
    meta = json.loads((tmp_path / "generator.json").read_text())
    assert meta["train_phrasings"] == {c.id: list(c.phrasings) for c in ws.train_concepts}
    seen = {text for texts in meta["train_phrasings"].values() for text in texts}
    held_out = {c.heldout_phrasing for c in ws.concepts if c.heldout_phrasing is not None}
    held_out |= {text for c in ws.test_concepts for text in c.phrasings}
    assert held_out and not held_out & seen
    assert meta["identity"]["phrasings"] == meta["train_phrasings"]
    canonical = run["generator"].meta
    assert canonical["train_phrasings"] == {c.id: [c.prompt] for c in ws.train_concepts}
    assert "phrasings" not in canonical["identity"]  # as before the knob: still up to date
    assert "phrasings" not in canonical["identity"]["diffusion"]["data"]


def test_the_phrasings_knob_composes_with_the_presets():
    assert compose_config([]).diffusion.data.phrasings == "canonical"
    for preset in ("quickstart", "bench", "study_text"):
        cfg = compose_config([f"experiment={preset}", "diffusion.data.phrasings=all"])
        assert cfg.diffusion.data.phrasings == "all" and cfg.diffusion.data.checkpoints


# --- sampling ---------------------------------------------------------------------------------


def test_seeded_sampling_is_reproducible(run):
    ws, generator = run["ws"], run["generator"]
    text = Condition.of_text(ws.embed([UNSEEN_PROMPT]))

    def sample(seed: int, steps: int) -> torch.Tensor:
        return sample_blocks(generator.denoiser, ddim_from(generator.meta["scheduler"]), text,
                             generator.tokenizer.num_blocks, generator.tokenizer.block_size,
                             steps=steps, seed=seed)

    for steps in (1, 3):
        assert torch.equal(sample(7, steps), sample(7, steps))
    assert not torch.allclose(sample(7, 3), sample(8, 3))
    first, again = generator.generate(text, seed=5), generator.generate(text, seed=5)
    assert all(torch.equal(first.state[k], again.state[k]) for k in first.state)
    assert first.seconds > 0
    with pytest.raises(ValueError, match="at least one denoising step"):
        sample(7, 0)


class PromptEcho(nn.Module):
    """Predicts the prompt's first token feature everywhere (0 for the empty prompt)."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, timesteps, block_index, condition):
        return condition.tokens[:, 0, :1].expand_as(x) * condition.mask[:, :1]


def test_one_step_returns_the_prediction_and_guidance_extrapolates_from_the_empty_prompt():
    sampler = ddim_from(dict(scheduler().config))
    text = Condition(torch.full((1, 3, 4), 2.0), torch.ones(1, 3, dtype=torch.bool))
    plain = sample_blocks(PromptEcho(), sampler, text, num_blocks=5, block_size=6)
    assert torch.allclose(plain, torch.full((5, 6), 2.0), atol=1e-5)
    guided = sample_blocks(PromptEcho(), sampler, text, num_blocks=5, block_size=6,
                           guidance_scale=3.0)
    # uncond + 3 * (cond - uncond) with uncond = 0 (empty prompt) and cond = 2
    assert torch.allclose(guided, torch.full((5, 6), 6.0), atol=1e-5)


def test_guidance_and_multi_step_paths_run_on_the_trained_generator(run):
    text = Condition.of_text(run["ws"].embed([UNSEEN_PROMPT]))
    generator = run["generator"]
    one = flat(generator.generate(text).state)
    guided = flat(generator.generate(text, guidance_scale=2.0).state)
    ddim = flat(generator.generate(text, steps=4).state)
    assert torch.isfinite(guided).all() and torch.isfinite(ddim).all()
    assert not torch.allclose(one, guided) and not torch.allclose(one, ddim)


# --- the bundle on disk -----------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_adapters(run, tmp_path):
    generator = run["generator"]
    copy = WeightGenerator.load(generator.save(tmp_path / "copy"))
    assert copy.meta == generator.meta
    assert copy.tokenizer.config() == generator.tokenizer.config()
    text = Condition.of_text(run["ws"].embed([UNSEEN_PROMPT]))
    for kwargs in ({}, {"steps": 2, "seed": 3}):
        ours, theirs = generator.generate(text, **kwargs), copy.generate(text, **kwargs)
        assert ours.state.keys() == theirs.state.keys()
        assert all(torch.equal(ours.state[k], theirs.state[k]) for k in ours.state)


def test_missing_generator_names_the_fix(run, tmp_path):
    ws = run_workspace(run["artifacts"], f"paths.generator_dir={tmp_path / 'none'}")
    with pytest.raises(FileNotFoundError, match=r"no weight generator at .*make generator"):
        load_generator(ws)


@pytest.mark.parametrize(
    ("override", "trained", "configured"),
    [("tokenizer.block_size=64", "tokenizer_rules.block_size = 128",
      "tokenizer_rules.block_size = 64"),
     ("gan.generator.ngf=8", "architecture.generator.ngf = 4", "architecture.generator.ngf = 8"),
     ("adapter.rank=4", "adapter.rank = 2", "adapter.rank = 4")],
)
def test_generator_for_another_configuration_is_refused_naming_both_sides(
    run, override, trained, configured
):
    with pytest.raises(ValueError, match="was trained for") as err:
        load_generator(run_workspace(run["artifacts"], override))
    theirs, ours = str(err.value).split("but this run configures")
    assert trained in theirs and configured in ours
    assert len(str(err.value)) < 400  # issue 21: the differing key, not both whole records


# --- weightgen-generate -------------------------------------------------------------------------


def test_generate_stage_writes_an_adapter_file_that_loads(run, tmp_path, capsys):
    out = tmp_path / "adapter.safetensors"
    ws = entry_workspace("generate", run["artifacts"], f"prompt='{UNSEEN_PROMPT}'", f"out={out}")
    summary = generate_adapter_file(ws)
    assert summary["out"] == str(out) and summary["prompt"] == UNSEEN_PROMPT
    assert summary["seconds"] > 0 and summary["sampling"]["steps"] == 1
    assert f"generated an adapter for '{UNSEEN_PROMPT}' in" in capsys.readouterr().out
    state = load_safetensors(out, summary["sha256"])
    expected = run["generator"].generate(Condition.of_text(ws.embed([UNSEEN_PROMPT]))).state
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in state)
    adapter, gan = attached_adapter(ws)
    adapter.load_state(gan, state)
    assert torch.equal(flat(adapter.state(gan)), flat(state))
    with safe_open(str(out), "pt") as handle:
        assert handle.metadata()["prompt"] == UNSEEN_PROMPT


def test_generate_replaces_an_existing_file_only_with_overwrite_true(run, tmp_path):
    """Issue 21: an existing out= is the user's until they say otherwise; the run's own base is
    never an output, not even then."""
    out = tmp_path / "adapter.safetensors"
    out.write_bytes(b"an older adapter")
    ask = (f"prompt='{UNSEEN_PROMPT}'", f"out={out}")
    with pytest.raises(OutputExistsError, match="pass overwrite=true to replace it"):
        generate_adapter_file(entry_workspace("generate", run["artifacts"], *ask))
    assert out.read_bytes() == b"an older adapter"
    ws = entry_workspace("generate", run["artifacts"], *ask, "overwrite=true")
    assert load_safetensors(out, generate_adapter_file(ws)["sha256"])
    base_file = Path(ws.cfg.paths.base_dir) / "generator.safetensors"
    before = sha256_file(base_file)
    with pytest.raises(ConfigError, match=r"inside the run's paths.base_dir .* not even with "
                                          r"overwrite=true"):
        generate_adapter_file(entry_workspace("generate", run["artifacts"], ask[0],
                                              f"out={base_file}", "overwrite=true"))
    assert sha256_file(base_file) == before


@pytest.mark.parametrize("prompt", ["''", "'   '"])
def test_generate_stage_refuses_an_empty_prompt(run, tmp_path, prompt):
    out = tmp_path / "adapter.safetensors"
    ws = entry_workspace("generate", run["artifacts"], f"prompt={prompt}", f"out={out}")
    with pytest.raises(ValueError, match="prompt is empty: pass prompt="):
        generate_adapter_file(ws)
    assert not out.exists()


# --- issue 14: a generator serves only its own run; reports never outlive it -------------------


def copy_of_run(run, tmp_path) -> Path:
    """A private copy of the shared run (tests that write must not write into it)."""
    shutil.copytree(run["artifacts"], tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_a_generator_from_another_run_is_refused_naming_both_sides(run, tmp_path):
    other = tmp_path / "other"
    with photos_loaded_once():
        build_weight_dataset(run_workspace(other, "seed=1"))  # another base and weight store
    ws = run_workspace(other, "seed=1")
    shutil.copytree(run["ws"].cfg.paths.generator_dir, ws.cfg.paths.generator_dir)
    ours = load_base(ws).meta["generator_sha256"]
    theirs = run["generator"].meta["identity"]["base_sha256"]
    with pytest.raises(StaleArtifactError) as err:
        load_generator(ws)
    message = str(err.value)
    assert f"trained for the base GAN with sha256 {theirs[:12]}..." in message
    assert f"this run's base at {ws.cfg.paths.base_dir} has sha256 {ours[:12]}..." in message
    assert "retrain the generator for this run: weightgen-train-generator" in message
    # Every stage loads it the same way: weightgen-generate writes nothing.
    out = tmp_path / "adapter.safetensors"
    gen_ws = entry_workspace("generate", other, "seed=1", f"prompt='{UNSEEN_PROMPT}'", f"out={out}")
    with pytest.raises(StaleArtifactError, match="trained for the base GAN"):
        generate_adapter_file(gen_ws)
    assert not out.exists()


def rewrite_identity(ws, **changes) -> None:
    path = Path(ws.cfg.paths.generator_dir) / "generator.json"
    meta = json.loads(path.read_text())
    meta["identity"] = {k: v for k, v in (meta["identity"] | changes).items() if v is not None}
    path.write_text(json.dumps(meta))


def test_a_generator_trained_on_adapters_not_in_the_store_is_refused(run, tmp_path):
    ws = run_workspace(copy_of_run(run, tmp_path))
    shas = run["generator"].meta["identity"]["data_sha256"]
    rewrite_identity(ws, data_sha256=["f" * 64, *shas[1:]])  # an adapter trained again since
    with pytest.raises(StaleArtifactError, match=rf"trained on {len(shas)} adapters, 1 of which "
                                                 rf"are not in this run's weight store .*weights "
                                                 rf"\(e.g. sha256 ffffffffffff\.\.\..*retrain"):
        load_generator(ws)


@pytest.mark.parametrize("fingerprint, message", [
    ("base_sha256", r"records no base GAN fingerprint .*weightgen-train-generator"),
    ("texts_sha256", r"records no fingerprint of the texts .* older weightgen.* "
                     r"weightgen-train-generator"),
])
def test_a_generator_without_a_fingerprint_is_refused_with_the_fix(run, tmp_path, fingerprint,
                                                                   message):
    """A generator trained by an older weightgen (before the base or the texts were recorded)."""
    ws = run_workspace(copy_of_run(run, tmp_path))
    rewrite_identity(ws, **{fingerprint: None})
    with pytest.raises(StaleArtifactError, match=message):
        load_generator(ws)


def reworded_concepts(ws, tmp_path, concept_id: str) -> list[str]:
    """Overrides reading the run's concepts from a file where ``concept_id`` has a new prompt
    (same id, same recipe: same pairs)."""
    path = tmp_path / "concepts.yaml"
    save_concepts([Concept.from_dict(c.to_dict() | {"prompt": "a reworded prompt"})
                   if c.id == concept_id else c for c in ws.concepts], path)
    return ["concepts=file", f"concepts.path={path}"]


def test_a_generator_trained_on_other_texts_is_refused_naming_the_concept(run, tmp_path):
    """Issue 21: a train concept's new prompt (same recipe) refused nothing."""
    ws = run["ws"]
    assert run["generator"].meta["identity"]["texts_sha256"] == {
        c.id: texts_fingerprint(c) for c in ws.train_concepts}
    edited = ws.train_concepts[0].id
    overrides = reworded_concepts(ws, tmp_path, edited)
    with pytest.raises(StaleArtifactError, match=(
            rf"trained on other texts \(prompt, phrasings\) of \['{re.escape(edited)}'\] than "
            rf"this run's concepts have now .* rerun weightgen-dataset .* retrain the generator")):
        load_generator(run_workspace(run["artifacts"], *overrides))
    out = tmp_path / "adapter.safetensors"  # every stage loads it so: generate writes nothing
    gen_ws = entry_workspace("generate", run["artifacts"], *overrides,
                             f"prompt='{UNSEEN_PROMPT}'", f"out={out}")
    with pytest.raises(StaleArtifactError, match="trained on other texts"):
        generate_adapter_file(gen_ws)
    assert not out.exists()
    # A held-out concept's texts are not the generator's: a new prompt there does not refuse it.
    load_generator(run_workspace(run["artifacts"],
                                 *reworded_concepts(ws, tmp_path, ws.test_concepts[0].id)))


def test_a_payload_in_a_run_generator_json_is_refused_and_never_run(run, tmp_path):
    ws = run_workspace(copy_of_run(run, tmp_path / "run"))
    path = Path(ws.cfg.paths.generator_dir) / "generator.json"
    meta = json.loads(path.read_text())
    sentinel = tmp_path / "sentinel"
    path.write_text(json.dumps(meta | {"denoiser": {"_target_": "builtins.open",
                                                    "file": str(sentinel), "mode": "w"}}))
    with pytest.raises(CorruptFileError, match=r"'builtins.open' is not one of weightgen's "
                                               r"denoisers.*retrain the generator"):
        load_generator(ws)
    assert not sentinel.exists()


def test_a_generator_is_checked_against_the_run_before_its_denoiser_is_built(run, tmp_path):
    """A stale generator whose denoiser sizes no longer fit its weights: the staleness check
    answers, so nothing was built before it."""
    ws = run_workspace(copy_of_run(run, tmp_path))
    path = Path(ws.cfg.paths.generator_dir) / "generator.json"
    meta = json.loads(path.read_text())
    meta["denoiser"]["hidden_dim"] *= 2
    meta["identity"]["base_sha256"] = "f" * 64
    path.write_text(json.dumps(meta))
    with pytest.raises(StaleArtifactError, match="trained for the base GAN"):
        load_generator(ws)
    rewrite_identity(ws, base_sha256=run["generator"].meta["identity"]["base_sha256"])
    with pytest.raises(CorruptFileError, match=r"in the weights but .* in the network"):
        load_generator(ws)


def test_diffusion_steps_zero_is_refused_before_the_trained_generator_is_touched(
    run, tmp_path, monkeypatch
):
    from weightgen.cli.train_generator import main

    artifacts = copy_of_run(run, tmp_path)
    folder = Path(run_workspace(artifacts).cfg.paths.generator_dir)
    (folder / "zero_shot.json").write_text("{}\n")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    monkeypatch.setattr(sys, "argv", ["weightgen-train-generator", *TINY, *TINY_GENERATOR,
                                      f"paths.artifacts={artifacts}", "diffusion.steps=0"])
    with pytest.raises((SystemExit, ConfigError)) as err:
        main()
    assert not isinstance(err.value, SystemExit) or err.value.code not in (0, None)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_a_new_generator_deletes_the_reports_made_from_the_old_one(run, tmp_path):
    artifacts = copy_of_run(run, tmp_path)
    ws = run_workspace(artifacts, "diffusion.steps=2", "diffusion.val_every=2")
    folder = Path(ws.cfg.paths.generator_dir)
    bench_dir, other_bench = tmp_path / "bench", tmp_path / "other_bench"
    for path in (folder / "zero_shot.json", folder / "zero_shot.md",
                 bench_dir / "results.md", other_bench / "results.md"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("made from the old generator\n")
    (bench_dir / "results.json").write_text(
        json.dumps({"inputs": {"generator_dir": str(folder.resolve())}}))
    (other_bench / "results.json").write_text(json.dumps({"inputs": {"generator_dir": "/else"}}))
    summary = train_weight_generator(run_workspace(artifacts, "diffusion.steps=2",
                                                   "diffusion.val_every=2",
                                                   f"paths.bench_dir={bench_dir}"))
    assert summary["steps"] == 2 and "skipped" not in summary
    assert not any((folder / name).exists() for name in ("zero_shot.json", "zero_shot.md"))
    assert not (bench_dir / "results.json").exists() and not (bench_dir / "results.md").exists()
    assert (other_bench / "results.json").is_file()  # made from another generator: kept
    assert json.loads((folder / "generator.json").read_text())["training"]["steps"] == 2


def logged_generator(artifacts, bench_dir, steps: int, **patches):
    """A generator trained on ``artifacts`` with CSV logs, its reports written beside it and in
    ``bench_dir``; returns the folder and the reports and logs by path with their bytes."""
    ws = run_workspace(artifacts, f"diffusion.steps={steps}", "diffusion.val_every=2",
                       "logger=csv", f"paths.bench_dir={bench_dir}")
    train_weight_generator(ws)
    folder = Path(ws.cfg.paths.generator_dir)
    for path in (folder / "zero_shot.json", folder / "zero_shot.md", Path(bench_dir) / "grid.png"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"made from the generator of {steps} steps\n")
    (Path(bench_dir) / "results.json").write_text(
        json.dumps({"inputs": {"generator_dir": str(folder.resolve())}}))
    kept = [*folder.glob("zero_shot.*"), *Path(bench_dir).iterdir(), *folder.glob("logs/**/*.csv")]
    assert len(list(folder.glob("logs/csv/generator-*/metrics.csv"))) == 1
    return folder, {path: path.read_bytes() for path in kept}


def retrain_workspace(artifacts, bench_dir, steps: int) -> Workspace:
    return run_workspace(artifacts, f"diffusion.steps={steps}", "diffusion.val_every=2",
                         "logger=csv", f"paths.bench_dir={bench_dir}")


def test_a_failing_save_keeps_the_old_generators_reports_and_logs(run, tmp_path, monkeypatch):
    """Issue 21: a full disk while the new generator was written ended with the old one's
    reports and training log already deleted."""
    artifacts, bench_dir = copy_of_run(run, tmp_path), tmp_path / "bench"
    folder, old = logged_generator(artifacts, bench_dir, steps=2)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(WeightGenerator, "save", full_disk)
        with pytest.raises(OSError, match="No space left"):
            train_weight_generator(retrain_workspace(artifacts, bench_dir, steps=3))
    assert {path: path.read_bytes() for path in old} == old  # every report and log as it was
    assert json.loads((folder / "generator.json").read_text())["training"]["steps"] == 2
    # The failed training's own log lies beside the old one, not over it.
    assert len(list(folder.glob("logs/csv/generator-*/metrics.csv"))) == 2
    # A retrain that saves its generator replaces them all: reports, old and failed logs.
    train_weight_generator(retrain_workspace(artifacts, bench_dir, steps=3))
    assert not any(path.exists() for path in old)
    (log,) = folder.glob("logs/csv/generator-*/metrics.csv")  # the new generator's alone
    assert log not in old and json.loads((folder / "generator.json").read_text())["training"][
        "steps"] == 3


def test_an_interrupted_generator_training_keeps_the_old_log(run, tmp_path, monkeypatch):
    """Issue 21: a SIGTERM kept the old generator but replaced its training log with the
    aborted run's (Lightning's CSV logger deletes an existing metrics.csv)."""
    artifacts, bench_dir = copy_of_run(run, tmp_path), tmp_path / "bench"
    folder, old = logged_generator(artifacts, bench_dir, steps=2)

    def stopped_trainer(*args, callbacks, **kwargs):
        return make_trainer(*args, callbacks=[*callbacks, StopAtStep("sigterm", at=2)], **kwargs)

    monkeypatch.setattr(train_generator_stage, "make_trainer", stopped_trainer)
    with pytest.raises(InterruptedRunError, match="training the weight generator was interrupted"):
        train_weight_generator(retrain_workspace(artifacts, bench_dir, steps=4))
    assert {path: path.read_bytes() for path in old} == old
    logs = sorted(folder.glob("logs/csv/generator-*"))
    assert len(logs) == 2 and all(path.is_dir() for path in logs)
    assert json.loads((folder / "generator.json").read_text())["training"]["steps"] == 2


def test_a_generator_with_a_missing_weight_file_is_trained_again(run, tmp_path):
    ws = run_workspace(copy_of_run(run, tmp_path), "diffusion.steps=2", "diffusion.val_every=2")
    folder = Path(ws.cfg.paths.generator_dir)
    assert train_weight_generator(ws)["steps"] == 2  # a generator for this identity ...
    (folder / "denoiser.safetensors").unlink()  # ... whose weights were deleted as told
    summary = train_weight_generator(ws)
    assert "skipped" not in summary and (folder / "denoiser.safetensors").is_file()
    load_generator(ws)


# --- issue 13: diffusion.conditioning and diffusion.text_noise ---------------------------------

CONDITIONINGS = ("tokens", "pooled", "tokens+pooled")
# The real denoiser configs, shrunk to a few thousand parameters.
TINY_DENOISERS = {
    "mlp": ["denoiser=mlp", "denoiser.hidden_dim=32", "denoiser.depth=2"],
    "unet1d": ["denoiser=unet1d", "denoiser.channels=[16,32]", "denoiser.patch_size=8",
               "denoiser.emb_dim=32", "denoiser.context_dim=16"],
}
# What the code before the conditioning knob gave for `few_steps_then_sample` under the default
# config (computed with that code): loss after 3 steps, then the guided 2-step DDIM sample's sum,
# sum of squares, a weighted sum and two entries. Any change to initialisation order, the training
# texts, the random draws or the sampler moves these far beyond the tolerance.
PRE_KNOB_REFERENCE = {
    "mlp": [1.0512393712997437, 0.20937877893447876, 0.07743345946073532, -0.035521868616342545,
            0.007505395915359259, -0.0015145542565733194],
    "unet1d": [1.0589464902877808, -0.21575939655303955, 0.023530572652816772,
               0.006071869283914566, 0.004355085548013449, -0.0031345165334641933],
}


def tiny_texts():
    """3 texts of 5 tokens (8-d) with padded tails, their MiniLM-style pooled vectors, and
    3 adapters x 4 blocks of 64."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 5, 8, generator=gen)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[:, 3:] = False
    mask[2, 2:] = False
    blocks = torch.randn(3, 4, 64, generator=gen)
    weights = mask.unsqueeze(-1).float()
    pooled = F.normalize((tokens * weights).sum(1) / weights.sum(1), dim=-1)
    return tokens, mask, pooled, blocks


def tiny_module(denoiser: str, *overrides: str) -> WeightDiffusionModule:
    """The module as train_generator builds it, on the composed config and tiny_texts()."""
    cfg = compose_config([*TINY_DENOISERS[denoiser], *overrides])
    tokens, mask, pooled, _ = tiny_texts()
    torch.manual_seed(0)
    network = instantiate(OmegaConf.to_container(cfg.denoiser, resolve=True) | {
        "block_size": 64, "num_blocks": 4, "text_dim": 8,
        "conditioning": cfg.diffusion.conditioning})
    d = cfg.diffusion
    return WeightDiffusionModule(
        network, DDPMScheduler(**OmegaConf.to_container(d.scheduler, resolve=True)),
        Condition(tokens, mask, pooled), optimizer=instantiate(d.optimizer),
        lr_scheduler=instantiate(d.lr_scheduler), cond_drop_prob=d.cond_drop_prob,
        text_noise=d.text_noise)


def few_steps_then_sample(module: WeightDiffusionModule, steps: int = 3):
    """(last training loss, a guided 2-step DDIM sample for text 0 with its pooled vector)."""
    _, _, _, blocks = tiny_texts()
    optimizer = module.optimizer_factory(module.denoiser.parameters())
    batch = {"blocks": blocks.reshape(12, 64), "block_index": torch.arange(4).repeat(3),
             "concept": torch.arange(3).repeat_interleave(4)}
    module.train()
    for _ in range(steps):
        loss = module.diffusion_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sample = sample_blocks(module.denoiser, ddim_from(dict(module.scheduler.config)),
                           module.texts[:1], 4, 64, steps=2, guidance_scale=2.0, seed=0)
    return float(loss.detach()), sample


@pytest.mark.parametrize("denoiser", TINY_DENOISERS)
def test_the_default_config_reproduces_the_generator_from_before_the_knobs(denoiser):
    cfg = compose_config()
    assert cfg.diffusion.conditioning == "tokens" and cfg.diffusion.text_noise == 0
    loss, out = few_steps_then_sample(tiny_module(denoiser))
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    got = [loss, float(out.sum()), float(out.square().sum()), float((out * weights).sum()),
           float(out[0, 0]), float(out[-1, -1])]
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64),
                               torch.tensor(PRE_KNOB_REFERENCE[denoiser], dtype=torch.float64),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("denoiser", TINY_DENOISERS)
def test_every_conditioning_builds_trains_and_samples(denoiser, conditioning):
    module = tiny_module(denoiser, f"diffusion.conditioning={conditioning}",
                         "diffusion.text_noise=0.1")
    assert module.denoiser.conditioning == conditioning
    before = [p.detach().clone() for p in module.denoiser.parameters()]
    loss, sample = few_steps_then_sample(module)
    assert np.isfinite(loss) and sample.shape == (4, 64) and torch.isfinite(sample).all()
    assert all(not torch.equal(a, b) for a, b in zip(before, module.denoiser.parameters(),
                                                      strict=True))


@pytest.mark.parametrize("denoiser", TINY_DENOISERS)
def test_a_pooled_generator_gives_one_adapter_for_wordings_with_one_sentence_vector(denoiser):
    module = tiny_module(denoiser, "diffusion.conditioning=pooled")
    few_steps_then_sample(module)
    tokens, mask, pooled, _ = tiny_texts()
    other = torch.randn(5, 8)  # other words, another length, the same sentence vector

    def sample(text_tokens, text_mask):
        return sample_blocks(module.denoiser, ddim_from(dict(module.scheduler.config)),
                             Condition(text_tokens[None], text_mask[None], pooled[:1]), 4, 64,
                             seed=0)

    assert torch.equal(sample(tokens[0], mask[0]), sample(other, torch.ones(5, dtype=torch.bool)))


class PooledEcho(nn.Module):
    """Predicts the pooled vector's first feature everywhere (0 for the empty prompt)."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, timesteps, block_index, condition):
        return condition.pooled[:, :1].expand_as(x) * condition.mask[:, :1]


def test_guidance_extrapolates_from_the_empty_prompt_with_a_zero_pooled_vector():
    sampler = ddim_from(dict(scheduler().config))
    text = Condition(torch.zeros(1, 3, 4), torch.ones(1, 3, dtype=torch.bool),
                     torch.full((1, 4), 2.0))
    guided = sample_blocks(PooledEcho(), sampler, text, num_blocks=5, block_size=6,
                           guidance_scale=3.0)
    assert torch.allclose(guided, torch.full((5, 6), 6.0), atol=1e-5)


def test_text_noise_changes_the_training_texts_only():
    tokens, mask, pooled, _ = tiny_texts()
    texts = Condition(tokens, mask, pooled)
    quiet = WeightDiffusionModule(MLPDenoiser(16, 4, 8, hidden_dim=8, depth=1), scheduler(),
                                  texts, **training_options())
    noisy = WeightDiffusionModule(MLPDenoiser(16, 4, 8, hidden_dim=8, depth=1), scheduler(),
                                  texts, **training_options(), text_noise=0.5)
    concept = torch.tensor([0, 1, 2, 0])

    def fields(condition: Condition) -> tuple[torch.Tensor, ...]:
        return condition.tokens, condition.mask, condition.pooled

    torch.manual_seed(3)
    first = fields(noisy.train().condition(concept))
    torch.manual_seed(3)
    again = fields(noisy.condition(concept))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # seeded
    assert not torch.equal(first[0], tokens[concept]) and not torch.equal(first[2], pooled[concept])
    assert torch.equal(first[1], mask[concept])
    # noise of about text_noise times each vector's size
    for noised, clean in ((first[0], tokens[concept]), (first[2], pooled[concept])):
        ratio = (noised - clean).norm(dim=-1) / clean.norm(dim=-1)
        assert 0.2 < ratio.mean() < 0.8
    assert all(torch.equal(a, b) for a, b in zip(
        fields(quiet.train().condition(concept)), fields(texts[concept]), strict=True))
    for module in (quiet, noisy):  # validation and sampling read the clean texts
        kept = module.eval().condition(concept)
        assert torch.equal(kept.tokens, tokens[concept]) and torch.equal(kept.pooled,
                                                                         pooled[concept])
    # dropped prompts stay exactly empty under noise
    dropping = WeightDiffusionModule(MLPDenoiser(16, 4, 8, hidden_dim=8, depth=1), scheduler(),
                                     texts, **training_options(), text_noise=0.5,
                                     cond_drop_prob=1.0)
    assert not any(field.any() for field in fields(dropping.train().condition(concept)))


def test_text_noise_changes_training_but_not_sampling():
    """The same seed, the same network: noise gives another trained network; the sampler of one
    network never depends on the module's text_noise."""
    quiet, noisy = (tiny_module("mlp", f"diffusion.text_noise={s}", "diffusion.cond_drop_prob=0")
                    for s in (0, 0.3))
    (_, quiet_sample), (_, noisy_sample) = (few_steps_then_sample(m) for m in (quiet, noisy))
    assert not torch.allclose(quiet_sample, noisy_sample)  # other training texts, other weights
    noisy.denoiser.load_state_dict(quiet.denoiser.state_dict())
    noisy.train()  # a module in training mode must still sample without noise
    samples = [sample_blocks(m.denoiser, ddim_from(dict(m.scheduler.config)), m.texts[:1], 4, 64,
                             seed=0) for m in (quiet, noisy)]
    assert torch.equal(*samples)


@pytest.mark.parametrize(("override", "message"), [
    ("diffusion.conditioning=words",
     r"diffusion.conditioning='words' is not allowed: use one of tokens, pooled, tokens\+pooled"),
    ("diffusion.text_noise=-0.1", r"diffusion.text_noise=-0.1 is not allowed: use a number >= 0"),
    ("diffusion.text_noise=true", r"diffusion.text_noise=True is not allowed"),
])
def test_a_bad_conditioning_or_text_noise_is_a_config_error(override, message):
    from weightgen.config_checks import check_config

    with pytest.raises(ConfigError, match=message):
        check_config(compose_config([override]))


def test_the_module_refuses_negative_text_noise():
    with pytest.raises(ConfigError, match="diffusion.text_noise=-1"):
        WeightDiffusionModule(MLPDenoiser(16, 4, 8, hidden_dim=8, depth=1), scheduler(),
                              Condition(torch.zeros(1, 2, 8), torch.ones(1, 2, dtype=torch.bool)),
                              **training_options(), text_noise=-1)


def test_the_knobs_compose_with_the_presets_and_pass_the_config_check():
    from weightgen.config_checks import check_config

    for preset, conditioning in (("quickstart", "pooled"), ("bench", "tokens+pooled"),
                                 ("study_text", "pooled")):
        cfg = compose_config([f"experiment={preset}", f"diffusion.conditioning={conditioning}",
                              "diffusion.text_noise=0.1"])
        assert cfg.diffusion.conditioning == conditioning and cfg.diffusion.text_noise == 0.1
        check_config(cfg)


def test_the_training_identity_is_made_of_what_the_stage_hands_it():
    """The identity and the seed read the config, the expectations and the base's sha256 they
    are given (no Workspace): each lands where generator.json keeps it."""
    cfg = compose_config(["diffusion.seed=7", "diffusion.data.phrasings=all"])
    rows = [{"concept": "a", "sha256": "2", "texts_sha256": "t"}, {"concept": "b", "sha256": "1"}]
    identity = training_identity(cfg, {"architecture": {"size": 64}}, "base", rows,
                                 {"a": ("one", "two"), "b": ("three",)})
    assert identity["architecture"] == {"size": 64} and identity["base_sha256"] == "base"
    assert identity["seed"] == generator_seed(cfg) == 7 and cfg.seed != 7
    assert identity["data_sha256"] == ["1", "2"]
    assert identity["texts_sha256"] == {"a": "t", "b": None}
    assert identity["phrasings"] == {"a": ["one", "two"], "b": ["three"]}
    assert identity["denoiser_config"] == OmegaConf.to_container(cfg.denoiser, resolve=True)
    assert generator_seed(compose_config(["diffusion.seed=null"])) == cfg.seed


def identity_of(ws: Workspace, rows: list[dict], texts: dict) -> dict:
    """The training identity the generator stage computes for ``ws`` (its expectations, base)."""
    return training_identity(ws.cfg, generator_expectations(ws),
                             read_base_meta(ws)["generator_sha256"], rows, texts)


def test_default_knobs_leave_the_training_identity_as_before(run):
    """At their defaults the knobs are not in the identity, so generators trained before them are
    not retrained; any other value is, so changing it retrains."""
    rows = training_rows(run["ws"])
    texts = training_texts(run["ws"], rows)
    default = identity_of(run["ws"], rows, texts)["diffusion"]
    assert "conditioning" not in default and "text_noise" not in default
    assert run["generator"].meta["identity"]["diffusion"] == default
    changed = identity_of(run_workspace(run["artifacts"], "diffusion.conditioning=pooled",
                                        "diffusion.text_noise=0.1"), rows, texts)
    assert changed["diffusion"] == default | {"conditioning": "pooled", "text_noise": 0.1}


def test_the_generator_seed_is_its_own_knob_falling_back_to_the_run_seed(run):
    """diffusion.seed retrains the generator (its identity's seed) without changing the run's
    seed, which the store and the benchmark's runs depend on; null means the run's seed."""
    rows = training_rows(run["ws"])
    texts = training_texts(run["ws"], rows)
    assert generator_seed(run["ws"].cfg) == run["ws"].cfg.seed
    other = run_workspace(run["artifacts"], "diffusion.seed=7")
    assert other.cfg.seed == run["ws"].cfg.seed and generator_seed(other.cfg) == 7
    default = identity_of(run["ws"], rows, texts)
    changed = identity_of(other, rows, texts)
    assert "seed" not in default["diffusion"] and "seed" not in changed["diffusion"]
    assert changed == default | {"seed": 7}


def test_a_generator_is_refused_under_another_conditioning_naming_both(run, tmp_path):
    assert run["generator"].meta["denoiser"]["conditioning"] == "tokens"
    for other in ("pooled", "tokens+pooled"):
        with pytest.raises(ConfigError, match=rf"trained with diffusion.conditioning=tokens, but "
                                              rf"this run configures diffusion.conditioning="
                                              rf"{re.escape(other)};"):
            load_generator(run_workspace(run["artifacts"], f"diffusion.conditioning={other}"))
    # A generator from before the knob (no conditioning recorded) read the tokens.
    ws = run_workspace(copy_of_run(run, tmp_path))
    path = Path(ws.cfg.paths.generator_dir) / "generator.json"
    meta = json.loads(path.read_text())
    del meta["denoiser"]["conditioning"]
    path.write_text(json.dumps(meta))
    load_generator(ws)
    with pytest.raises(ConfigError, match="trained with diffusion.conditioning=tokens"):
        load_generator(run_workspace(tmp_path, "diffusion.conditioning=pooled"))


def knob_workspace(config_name: str, artifacts, denoiser: str, *overrides: str) -> Workspace:
    """An entry config's Workspace on the tiny run with its generator settings, but ``denoiser``
    (the run's generator settings size an MLP)."""
    generator = [o for o in TINY_GENERATOR if not o.startswith("denoiser")]
    sizes = ["denoiser.hidden_dim=128", "denoiser.depth=2"] if denoiser == "mlp" else []
    cfg = compose_config([*TINY, f"paths.artifacts={artifacts}", *generator,
                          f"denoiser={denoiser}", *sizes, *overrides], config_name)
    return Workspace(cfg, text_encoder=shared_minilm())


@pytest.mark.parametrize(("denoiser", "conditioning"),
                         [("mlp", "pooled"), ("unet1d", "tokens+pooled")])
def test_a_generator_trained_with_a_conditioning_serves_the_generate_stage(
    run, tmp_path, denoiser, conditioning
):
    """Training (module, validation callback), the bundle on disk, its reload and the generate
    stage, with a non-default conditioning and text noise, for each denoiser."""
    artifacts = run["artifacts"]
    knobs = [f"diffusion.conditioning={conditioning}", "diffusion.text_noise=0.2",
             "diffusion.steps=2", "diffusion.val_every=2",
             f"paths.generator_dir={tmp_path / 'generator'}"]
    summary = train_weight_generator(knob_workspace("weightgen", artifacts, denoiser, *knobs))
    assert "skipped" not in summary and summary["validation"]
    meta = json.loads((tmp_path / "generator" / "generator.json").read_text())
    assert meta["denoiser"]["conditioning"] == conditioning
    assert meta["identity"]["diffusion"]["conditioning"] == conditioning
    assert meta["identity"]["diffusion"]["text_noise"] == 0.2
    again = train_weight_generator(knob_workspace("weightgen", artifacts, denoiser, *knobs))
    assert again["skipped"] is True
    out = tmp_path / "adapter.safetensors"
    ws = knob_workspace("generate", artifacts, denoiser, *knobs, f"prompt='{UNSEEN_PROMPT}'",
                        f"out={out}")
    state = load_safetensors(out, generate_adapter_file(ws)["sha256"])
    expected = load_generator(ws).generate(Condition.of_text(ws.embed([UNSEEN_PROMPT]))).state
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    with pytest.raises(ConfigError, match=re.escape(f"trained with diffusion.conditioning="
                                                    f"{conditioning}, but this run configures "
                                                    f"diffusion.conditioning=tokens")):
        load_generator(knob_workspace("weightgen", artifacts, denoiser, *knobs[1:]))
