"""The fast fine-tuner: init sources, the training clock, target stopping, methods (issue 5)."""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import pytest
import torch
from helpers import entry_workspace, run_workspace
from hydra.utils import instantiate

import weightgen.finetune.finetuner as finetuner
from weightgen.bench.methods import METHODS, method_of_init
from weightgen.data.datamodule import images_to_tensor
from weightgen.diffusion.condition import Condition
from weightgen.errors import ConfigError, IncompleteStoreError
from weightgen.finetune.curve import QualityCurve, evaluation_steps
from weightgen.finetune.finetuner import run_method
from weightgen.finetune.inits import INITS, AdapterInit, InitSources
from weightgen.gan.evaluate import Quality, evaluate
from weightgen.stages.artifacts import (
    adapter_evaluator,
    default_inits,
    fine_tune_setup,
    load_base,
    load_generator,
)
from weightgen.stages.finetune import finetune_one

EVAL_SLEEP = 0.3


@pytest.fixture(scope="module")
def run(tiny_run):
    """The shared tiny run with its base, generator and init sources loaded once."""
    artifacts = tiny_run["artifacts"]
    ws = run_workspace(artifacts)
    base = load_base(ws)
    generator = load_generator(ws)
    inits = default_inits(ws, base, generator)
    return SimpleNamespace(artifacts=artifacts, ws=ws, base=base, generator=generator,
                           inits=inits, setup=fine_tune_setup(ws, base, inits))


def equal_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def final_rows(ws) -> dict[str, dict]:
    rows = {}
    for row in ws.weight_store.rows():
        if row["concept"] not in rows or row["step"] > rows[row["concept"]]["step"]:
            rows[row["concept"]] = row
    return rows


# --- the clock ------------------------------------------------------------------------------


def scores(*psnrs: float, eval_seconds: float = 0.0):
    """A curve's score function giving these PSNRs in turn, each after ``eval_seconds``."""
    values = iter(psnrs)

    def score() -> Quality:
        time.sleep(eval_seconds)
        return Quality(next(values), 0.5)

    return score


def after_step(curve: QualityCurve, step: int):
    """Lightning's hook after training step ``step``; the fake trainer it was given."""
    trainer = SimpleNamespace(global_step=step, should_stop=False)
    curve.on_train_batch_end(trainer, None, None, None, step - 1)
    return trainer


def test_clock_starts_at_the_offset_and_pauses_for_evaluation():
    curve = QualityCurve(scores(11.0, eval_seconds=EVAL_SLEEP), steps=[2], offset_seconds=7.0)
    curve.record(0, 10.0, 0.1)
    assert curve.points[0].seconds == 7.0  # step 0: the init's cost, nothing trained yet
    curve.on_train_start(None, None)
    time.sleep(0.05)
    after_step(curve, 1)  # not a step of its schedule: nothing scored, the clock runs on
    after_step(curve, 2)
    curve.on_train_batch_start(None, None, None, 3)  # Lightning's next batch restarts the clock
    time.sleep(0.05)
    curve.on_train_end(None, None)
    stopped_at = curve.seconds
    time.sleep(0.05)
    assert curve.seconds == stopped_at  # the clock is paused after training
    first = curve.points[1].seconds - 7.0
    assert 0.05 <= first < 0.05 + EVAL_SLEEP / 2
    assert 0.1 <= stopped_at - 7.0 < 0.1 + EVAL_SLEEP / 2  # the evaluation's 0.3 s not counted
    assert [p.step for p in curve.points] == [0, 2]


def test_reaching_the_target_stops_the_trainer():
    curve = QualityCurve(scores(11.9, 12.0), steps=[2, 4], target_psnr=12.0)
    curve.record(0, 10.0, 0.1)
    assert not curve.reached_target
    curve.on_train_start(None, None)
    assert not after_step(curve, 2).should_stop
    assert after_step(curve, 4).should_stop  # equal counts as reached
    assert curve.reached_target
    assert not QualityCurve().reached_target  # no target, no points: never stops


@pytest.mark.parametrize(("steps", "every", "log_until", "expected"), [
    (200, 10, 32, [1, 2, 4, 8, 10, 16, 20, 30, 32, *range(40, 201, 10)]),
    (40, 50, 32, [1, 2, 4, 8, 16, 32]),  # a budget shorter than eval_every: the prefix alone
    (6, 2, 0, [2, 4, 6]),  # no prefix: every eval_every, as before the knob
    (5, 10, 40, [1, 2, 4]),  # never past the budget
])
def test_evaluations_are_log_spaced_at_the_start_then_every_eval_every(steps, every, log_until,
                                                                       expected):
    assert evaluation_steps(steps, every, log_until) == expected


def test_a_real_fine_tune_is_scored_at_the_log_spaced_steps_then_every_eval_every(run):
    concept = run.ws.test_concepts[0]
    result, _ = run_method(run.setup, concept, "e2gan_lora", "standard", 7, 3, log_eval_until=4)
    assert [p["step"] for p in result.curve] == [0, 1, 2, 3, 4, 6]
    seconds = [p["seconds"] for p in result.curve]
    assert seconds == sorted(seconds) and len(set(seconds)) == len(seconds)


def test_evaluation_time_is_excluded_from_a_real_fine_tune(run, monkeypatch):
    real = finetuner.evaluate

    def slow_evaluation(*args):
        time.sleep(EVAL_SLEEP)
        return real(*args)

    monkeypatch.setattr(finetuner, "evaluate", slow_evaluation)
    concept = run.ws.test_concepts[0]
    result, _ = run_method(run.setup, concept, "e2gan_lora", "standard", 4, 2)
    assert [p["step"] for p in result.curve] == [0, 2, 4]
    seconds = [p["seconds"] for p in result.curve]
    assert seconds[0] == 0.0 and seconds == sorted(seconds)
    # Two evaluations slept 0.6 s inside trainer.fit; the clock must not have counted them.
    assert result.train_seconds > 2 * EVAL_SLEEP
    assert seconds[-1] < result.train_seconds - 1.5 * EVAL_SLEEP


def test_the_clock_runs_again_after_each_evaluation(run):
    concept = run.ws.test_concepts[0]
    result, _ = run_method(run.setup, concept, "e2gan_lora", "standard", 6, 2)
    seconds = [p["seconds"] for p in result.curve]
    assert seconds[0] < seconds[1] < seconds[2] < seconds[3], seconds


def test_generation_seconds_are_included_in_every_point(run, monkeypatch):
    concept = run.ws.test_concepts[0]
    standard = run.inits.standard_state
    monkeypatch.setattr(run.inits, "get",
                        lambda kind, c: AdapterInit(kind, standard, seconds=50.0))
    result, _ = run_method(run.setup, concept, "denoised_init", "generated", 4, 2)
    assert result.init_seconds == 50.0 and result.curve[0]["seconds"] == 50.0
    assert all(50.0 < p["seconds"] < 50.0 + result.train_seconds for p in result.curve[1:])


def test_a_real_generated_init_charges_its_generation_time(run):
    concept = run.ws.test_concepts[0]
    result, _ = run_method(run.setup, concept, "denoised_init", "generated", 0, 2)
    assert result.init_seconds > 0 and result.info == {"prompt": concept.prompt}
    assert result.curve == [result.curve[0]] and result.curve[0]["seconds"] == result.init_seconds


# --- stopping -------------------------------------------------------------------------------


def test_a_target_below_the_start_stops_before_any_training(run):
    concept = run.ws.test_concepts[0]
    result, _ = run_method(run.setup, concept, "e2gan_lora", "standard", 20, 2,
                           target_psnr=-math.inf)
    assert [p["step"] for p in result.curve] == [0] and result.train_seconds == 0.0


def test_a_target_reached_during_training_stops_it_at_that_evaluation(run):
    concept = run.ws.test_concepts[0]
    full, _ = run_method(run.setup, concept, "pix2pix_scratch", None, 8, 2)
    start = full.curve[0]["psnr"]
    later = [p for p in full.curve[1:-1] if p["psnr"] > start]
    assert later, "pix2pix from scratch should improve on its random start within 6 steps"
    target = later[0]["psnr"]
    stopped, _ = run_method(run.setup, concept, "pix2pix_scratch", None, 8, 2,
                            target_psnr=target)
    assert stopped.final["step"] == later[0]["step"] < 8
    # CPU training is deterministic: the stopped curve is the start of the full one.
    assert [(p["step"], p["psnr"]) for p in stopped.curve] == [
        (p["step"], p["psnr"]) for p in full.curve[: len(stopped.curve)]
    ]


# --- init sources -----------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_init_kind_loads_into_the_adapter(run, split):
    concept = (run.ws.train_concepts if split == "train" else run.ws.test_concepts)[0]
    adapter = instantiate(run.ws.cfg.adapter)
    generator = adapter.attach(run.base.fresh_copy()[0])
    # the kinds that read example pairs need a generator trained with them: tests/test_examples.py
    for kind in (k for k in INITS if not method_of_init(k).needs_examples):
        init = run.inits.get(kind, concept)
        assert init.kind == kind
        adapter.load_state(generator, init.state)
        assert equal_states(adapter.state(generator), init.state), kind


def test_standard_mean_nearest_trained_are_what_they_say(run):
    ws, inits = run.ws, run.inits
    concept = ws.train_concepts[0]
    adapter = instantiate(ws.cfg.adapter)
    adapter.attach(run.base.fresh_copy()[0])
    assert equal_states(inits.get("standard", concept).state, adapter.standard_state())

    rows = final_rows(ws)
    assert {r["step"] for r in rows.values()} == {4}
    train = [ws.weight_store.load(rows[c.id]) for c in ws.train_concepts]
    mean = inits.get("mean", concept)
    assert mean.info == {"concepts": 2}
    for key in mean.state:
        assert torch.allclose(mean.state[key], (train[0][key] + train[1][key]) / 2, atol=1e-7)

    for c in ws.concepts:
        nearest = inits.get("nearest", c)
        assert nearest.info["concept"] != c.id and rows[nearest.info["concept"]]["split"] == "train"
        assert -1 <= nearest.info["cosine"] <= 1
        assert equal_states(nearest.state, ws.weight_store.load(rows[nearest.info["concept"]]))
        assert equal_states(inits.get("trained", c).state, ws.weight_store.load(rows[c.id]))
    other = ws.train_concepts[1]
    assert inits.get("nearest", concept).info["concept"] == other.id  # the only other one


def test_generated_and_shuffled_inits_use_the_right_prompt(run):
    ws, inits = run.ws, run.inits
    for concept in ws.concepts:
        generated = inits.get("generated", concept)
        expected = run.generator.generate(Condition.of_text(ws.embed([concept.prompt]))).state
        assert equal_states(generated.state, expected) and generated.seconds > 0
        assert generated.info == {"prompt": concept.prompt}
        shuffled = inits.get("shuffled", concept)
        assert shuffled.info["prompt"] != concept.prompt and shuffled.seconds > 0
        assert shuffled.info["prompt"] in {c.prompt for c in ws.train_concepts}
        wrong = run.generator.generate(
            Condition.of_text(ws.embed([shuffled.info["prompt"]]))).state
        assert equal_states(shuffled.state, wrong)


def test_init_sources_refuse_what_they_cannot_build(run):
    concept = run.ws.test_concepts[0]
    without_generator = InitSources(run.ws.weight_store, lambda: run.inits._train_rows,
                                    lambda: list(run.inits._final_rows.values()),
                                    run.ws.text_encoder, run.inits.standard_state)
    for kind in ("generated", "shuffled"):
        with pytest.raises(ValueError, match="needs a trained weight generator.*make generator"):
            without_generator.get(kind, concept)
    with pytest.raises(ConfigError, match="reads example pairs needs a weight generator trained "
                                          "with example pairs, but no weight generator is "
                                          "loaded.*diffusion.examples.k=8"):
        without_generator.get("generated_examples", concept)
    with pytest.raises(ValueError, match="unknown init 'random'"):
        run.inits.get("random", concept)
    stranger = SimpleNamespace(id="not+in+store", prompt="a stranger")
    with pytest.raises(IncompleteStoreError,
                       match=r"no trained adapter for not\+in\+store.*make dataset"):
        run.inits.get("trained", stranger)


def test_standard_init_is_a_copy(run):
    concept = run.ws.test_concepts[0]
    first = run.inits.get("standard", concept).state
    key = next(iter(first))
    first[key].add_(1.0)
    assert not torch.equal(run.inits.get("standard", concept).state[key], first[key])


# --- methods --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pix2pix_scratch", "e2gan_lora"])
def test_methods_return_curves_from_step_zero_to_the_budget(run, method):
    concept = run.ws.test_concepts[0]
    result, module = run_method(run.setup, concept, method, METHODS[method].init, 4, 2)
    assert result.method == method and result.concept == concept.id
    assert [p["step"] for p in result.curve] == [0, 2, 4]
    assert result.zero_shot == result.curve[0] and result.final == result.curve[-1]
    for point in result.curve:
        assert set(point) == {"step", "seconds", "psnr", "ssim"}
    # The curve ends at the weights returned: the module's generator scores its final point.
    pairs, text = run.ws.pair_store.load(concept.id), run.ws.embed([concept.prompt])
    final = evaluate(module.generator, images_to_tensor(pairs.val_source),
                     images_to_tensor(pairs.val_target), text.tokens[0], text.mask[0])
    assert result.final["psnr"] == pytest.approx(final.psnr, abs=1e-4)
    assert result.final["ssim"] == pytest.approx(final.ssim, abs=1e-4)
    size = run.ws.cfg.data.size
    assert result.samples["start"].shape == result.samples["end"].shape
    assert result.samples["start"].shape[1:] == (3, size, size)
    assert (module.adapter is None) == (METHODS[method].init is None)


def test_e2gan_starts_at_the_base_quality_and_pix2pix_from_scratch(run):
    """Zero-shot, e2gan_lora (standard init: the base's output) scores exactly the base."""
    concept = run.ws.train_concepts[0]
    e2gan, _ = run_method(run.setup, concept, "e2gan_lora", "standard", 0, 2)
    scratch, _ = run_method(run.setup, concept, "pix2pix_scratch", None, 0, 2)
    evaluator = adapter_evaluator(run.ws, run.base)
    base = evaluator.quality(concept, evaluator.standard_state)
    assert e2gan.zero_shot["psnr"] == pytest.approx(base.psnr, abs=1e-4)
    assert e2gan.zero_shot["ssim"] == pytest.approx(base.ssim, abs=1e-4)
    assert abs(scratch.zero_shot["psnr"] - base.psnr) > 0.1


def test_finetune_stage_writes_the_curve(run, tmp_path):
    concept = run.ws.test_concepts[0]
    ws = entry_workspace("finetune", run.artifacts, f"concept={concept.id}", "init=mean",
                         "steps=2", "eval_every=2", f"paths.run_dir={tmp_path}",
                         f"paths.base_dir={run.ws.cfg.paths.base_dir}",
                         f"paths.pairs_dir={run.ws.cfg.paths.pairs_dir}",
                         f"paths.weights_dir={run.ws.cfg.paths.weights_dir}")
    summary = finetune_one(ws)
    assert summary["init"] == "mean" and summary["final"]["step"] == 2
    record = json.loads((tmp_path / "finetune" / f"{concept.id}-mean.json").read_text())
    assert record["method"] == "mean_init" and [p["step"] for p in record["curve"]] == [0, 2]
    bad = entry_workspace("finetune", run.artifacts, f"concept={concept.id}", "init=random")
    with pytest.raises(ValueError, match="init='random': use one of"):
        finetune_one(bad)
