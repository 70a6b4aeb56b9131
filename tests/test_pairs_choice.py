"""Choosing a new concept's start on the example pairs it comes with (issue 24, item 4):
``finetune/pairs_choice.py``, ``gan/pair_loss.py``, the init ``pairs_choice`` and the bench
method ``pairs_choice_init``. Hand-made cases first (a tiny GAN, no trained run), then the same
on the tiny trained run with an example-pairs generator (slow)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import compose_config, record_method_runs, run_workspace

from weightgen.concepts.spec import Concept
from weightgen.config_checks import check_config
from weightgen.data.datamodule import images_to_tensor
from weightgen.data.pairs import PairStore
from weightgen.errors import ConfigError
from weightgen.finetune.controls import ControlInputs
from weightgen.finetune.init_kinds import check_choice_candidates
from weightgen.finetune.inits import AdapterInit, InitSources
from weightgen.finetune.pairs_choice import choose_on_pairs, sample_name
from weightgen.gan.adapters import FullDeltaAdapter
from weightgen.gan.base import BaseGAN
from weightgen.gan.discriminator import PatchDiscriminator
from weightgen.gan.evaluate import generate
from weightgen.gan.generator import E2GANGenerator
from weightgen.gan.pair_loss import PairLoss
from weightgen.stages.artifacts import default_inits, load_base, load_generator
from weightgen.text.base import TextEmbedding

# --- hand-made: a tiny GAN whose pairs one candidate reproduces --------------------------------


def tiny_base() -> BaseGAN:
    torch.manual_seed(0)
    return BaseGAN(E2GANGenerator(ngf=4, text_dim=8), PatchDiscriminator(ndf=4, n_layers=1), {})


def tiny_text() -> TextEmbedding:
    generator = torch.Generator().manual_seed(1)
    return TextEmbedding(torch.randn(1, 4, 8, generator=generator),
                         torch.tensor([[True, True, False, False]]),
                         torch.randn(1, 8, generator=generator))


def shifted(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """A full-delta adapter state other than the base: every delta drawn at random."""
    generator = torch.Generator().manual_seed(seed)
    return {k: 0.05 * torch.randn(v.shape, generator=generator) for k, v in state.items()}


@pytest.fixture(scope="module")
def hand_made() -> dict:
    """A tiny base, the concept's own adapter and its k pairs: the targets are what base + its
    own adapter make of the sources, so that adapter reproduces them exactly."""
    base, text = tiny_base(), tiny_text()
    scorer = PairLoss(base, FullDeltaAdapter())
    standard = scorer.adapter.standard_state()
    own = shifted(standard, seed=2)
    sources = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    scorer.adapter.load_state(scorer.generator, own)
    targets = generate(scorer.generator, sources, text.tokens[0], text.mask[0])
    return {"scorer": scorer, "text": text, "standard": standard, "own": own,
            "decoy": shifted(standard, seed=4), "sources": sources, "targets": targets}


def test_the_pair_loss_is_the_fine_tunes_l1_of_base_plus_adapter_on_the_pairs(hand_made):
    scorer, text, sources = hand_made["scorer"], hand_made["text"], hand_made["sources"]
    own = scorer(hand_made["own"], sources, hand_made["targets"], text)
    assert own.l1 == 0.0 and own.psnr == float("inf")
    base_output = generate(tiny_base().generator, sources, text.tokens[0], text.mask[0])
    standard = scorer(hand_made["standard"], sources, hand_made["targets"], text)
    assert standard.l1 == pytest.approx(float(F.l1_loss(base_output, hand_made["targets"])))
    assert standard.l1 > 0 and standard.psnr < float("inf")


def candidates_of(hand_made: dict, seconds: dict[str, float]) -> dict:
    return {name: (lambda name=name: AdapterInit(name, hand_made[name], seconds[name],
                                                 {"made": name}))
            for name in seconds}


def test_the_candidate_that_is_the_concepts_own_adapter_wins_and_its_seconds_add_up(hand_made):
    scorer, text = hand_made["scorer"], hand_made["text"]
    seconds = {"standard": 0.25, "decoy": 0.5, "own": 0.125}

    def score(state):
        return scorer(state, hand_made["sources"], hand_made["targets"], text)

    choice = choose_on_pairs(candidates_of(hand_made, seconds), score, setup_seconds=0.0625)
    assert choice.chosen == "own" and choice.start.state is hand_made["own"]
    assert choice.scores["own"].l1 == 0.0
    assert min(choice.scores["standard"].l1, choice.scores["decoy"].l1) > 0
    assert choice.candidate_seconds == seconds
    assert choice.scoring_seconds > 0.0625  # the set-up, then three scorings
    assert choice.seconds == pytest.approx(0.875 + choice.scoring_seconds)
    info = choice.info()
    assert info["chosen"] == "own" and info["chosen_info"] == {"made": "own"}
    assert set(info["scores"]) == set(seconds)
    assert info["scores"]["decoy"] == {"l1": choice.scores["decoy"].l1,
                                       "psnr": choice.scores["decoy"].psnr}
    # without the own adapter the better of the others wins; among equals the first listed
    others = choose_on_pairs(candidates_of(hand_made, {"standard": 0.0, "decoy": 0.0}), score)
    assert others.chosen == min(("standard", "decoy"), key=lambda n: others.scores[n].l1)
    tie = choose_on_pairs({"first": lambda: AdapterInit("a", hand_made["standard"]),
                           "second": lambda: AdapterInit("b", hand_made["standard"])}, score)
    assert tie.chosen == "first"


def controls(candidates, samples: int = 0, n_concepts: int | None = None) -> ControlInputs:
    return ControlInputs(k_blend=3, ridge_alphas=(0.1, 1.0), seed=0,
                         choice_candidates=tuple(candidates), choice_samples=samples,
                         ensembles={},
                         heldout=[], validation=[], training_phrasings=dict,
                         n_concepts=n_concepts)


def bare_sources(candidates, samples: int = 0, seed: int = 3,
                 n_concepts: int | None = None) -> InitSources:
    return InitSources(None, list, list, None, {}, sampling={"seed": seed},
                       controls=controls(candidates, samples, n_concepts))


def test_the_candidates_are_the_listed_kinds_then_generator_samples_under_the_next_seeds():
    sources = bare_sources(["mean", "examples_ridge"], samples=2, seed=3)
    assert list(sources.choice_candidates()) == ["mean", "examples_ridge", sample_name(4),
                                                 sample_name(5)]
    assert sample_name(4) == "generated_examples_seed4"
    assert list(bare_sources(["mean"]).choice_candidates()) == ["mean"]


class CountingEncoder:
    """A stand-in pair encoder: mean pixel of each pair, every call counted."""

    def __init__(self):
        self.calls = 0

    def features(self, sources, targets):
        self.calls += 1
        return torch.tensor(np.stack([sources, targets]).mean(axis=(2, 3, 4)).T, dtype=torch.float32)


def test_the_choice_encodes_a_concepts_pairs_once_and_counts_the_seconds_once():
    """Several candidates read the same k pairs: inside sharing_example_vectors the first pays the
    encoding, the others reuse it at 0 s; outside, each init encodes and pays its own."""
    encoder = CountingEncoder()
    generator = SimpleNamespace(examples_k=2, example_standardiser=lambda features: features)
    pairs = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    sources = InitSources(None, list, list, None, {}, generator=generator, sampling={"seed": 0},
                          example_pairs=lambda concept_id: (pairs, 255 - pairs),
                          pair_encoder=lambda: encoder)
    with sources.sharing_example_vectors():
        first, picked, _ = sources.example_vector("c")
        again, picked_again, seconds = sources.example_vector("c")
    assert encoder.calls == 1 and seconds == 0.0
    assert torch.equal(first, again) and picked == picked_again
    alone = sources.example_vector("c")
    assert encoder.calls == 2 and torch.equal(alone[0], first)


def test_the_stored_settings_change_with_the_candidates_and_their_knobs():
    concept = Concept("c", "a prompt", instruction="x", split="test")
    settings = bare_sources(["mean", "examples_nearest"]).settings("pairs_choice", concept)
    assert settings == {"candidates": {"mean": {}, "examples_nearest": {}}, "samples": 0}
    assert bare_sources(["mean", "examples_nearest"], samples=1).settings(
        "pairs_choice", concept) != settings
    assert bare_sources(["mean"]).settings("pairs_choice", concept) != settings
    blended = bare_sources(["mean", "examples_blend"]).settings("pairs_choice", concept)
    assert blended["candidates"]["examples_blend"] == {"k_blend": 3}  # the candidate's own knob


def test_a_control_read_from_a_training_subset_is_stored_with_it():
    """A bench run of a control made on diffusion.data.n_concepts=24 must not be reused on 96
    (or on every training concept); a generator's run depends on the generator instead, and a run
    on the whole training set keeps the settings it was stored with."""
    concept = Concept("c", "a prompt", instruction="x", split="test")
    subset = bare_sources(["mean", "examples_ridge"], n_concepts=24)
    whole = bare_sources(["mean", "examples_ridge"])
    for kind in ("mean", "nearest", "examples_nearest", "examples_blend", "examples_ridge",
                 "text_ridge"):
        assert subset.settings(kind, concept)["n_concepts"] == 24
        assert "n_concepts" not in whole.settings(kind, concept)
        assert subset.settings(kind, concept) != bare_sources(
            ["mean"], n_concepts=96).settings(kind, concept)
    for kind in ("standard", "trained", "generated", "generated_examples"):
        assert subset.settings(kind, concept) == whole.settings(kind, concept) == {}
    choice = subset.settings("pairs_choice", concept)["candidates"]
    assert choice == {"mean": {"n_concepts": 24}, "examples_ridge": {
        "ridge_alphas": [0.1, 1.0], "validation_concepts": [], "n_concepts": 24}}


@pytest.mark.parametrize(("candidates", "message"), [
    ([], r"\[\]: it is empty"),
    (["mean", "trained"], r"'trained' is the concept's own adapter, the ceiling"),
    (["generated_examples_shuffled"], r"is a control: another concept's pairs"),
    (["pairs_choice"], r"'pairs_choice' is the choice itself"),
    (["mean", "meen"], r"'meen' is no init kind"),
    (["mean", "mean"], r"mean appears twice"),
])
def test_a_candidate_list_that_cannot_be_chosen_from_is_a_config_error(candidates, message):
    with pytest.raises(ConfigError, match=r"bench.controls.choice.candidates=.*" + message
                       + r".*; use a list of distinct init kinds out of standard, mean, "):
        check_choice_candidates(candidates)
    assert check_choice_candidates(["mean", "standard"]) == ("mean", "standard")


def test_the_commands_check_the_choice_knobs_before_any_work():
    check_config(compose_config())  # the defaults pass
    with pytest.raises(ConfigError, match="'trained' is the concept's own adapter"):
        check_config(compose_config(["bench.controls.choice.candidates=[mean,trained]"]))
    with pytest.raises(ConfigError, match=r"bench.controls.choice.samples=-1 is not allowed"):
        check_config(compose_config(["bench.controls.choice.samples=-1"]))


# --- on the tiny trained run with an example-pairs generator (slow) ---------------------------

CHOICE = ["bench.controls.k_blend=2", "bench.controls.choice.samples=1"]


def own_l1(ws, state, concept, sources, targets) -> float:
    """The fine-tune's L1 of base + ``state`` on uint8 pairs, computed here from scratch."""
    from hydra.utils import instantiate

    adapter = instantiate(ws.cfg.adapter)
    generator = adapter.attach(load_base(ws).fresh_copy()[0])
    adapter.load_state(generator, state)
    text = ws.embed([concept.prompt])
    outputs = generate(generator, images_to_tensor(sources), text.tokens[0], text.mask[0])
    return float(F.l1_loss(outputs, images_to_tensor(targets)))


def test_the_choice_scores_the_k_training_pairs_the_generator_reads_never_the_validation_pairs(
        examples_run, monkeypatch):
    ws = run_workspace(examples_run["artifacts"], *examples_run["overrides"], *CHOICE)
    inits = default_inits(ws, load_base(ws), load_generator(ws))
    concept = ws.test_concepts[0]
    chosen = inits.get("pairs_choice", concept)
    info = chosen.info
    candidates = [*ws.cfg.bench.controls.choice.candidates, sample_name(1)]
    assert list(info["scores"]) == candidates == list(info["candidate_seconds"])
    # the pairs are the generator's own k (its seeded choice among the training pairs)
    picked = inits.get("generated_examples", concept).info["example_pairs"]
    assert info["example_pairs"] == picked and len(picked) == 2
    pairs = ws.pair_store.load(concept.id)
    sources, targets = pairs.train_source[picked], pairs.train_target[picked]
    for name in candidates:
        state = (inits.generated_examples(concept, seed=1) if name == sample_name(1)
                 else inits.get(name, concept)).state
        assert info["scores"][name]["l1"] == pytest.approx(
            own_l1(ws, state, concept, sources, targets), rel=1e-5), name
    assert info["chosen"] == min(candidates, key=lambda n: info["scores"][n]["l1"])
    winner = (inits.generated_examples(concept, seed=1) if info["chosen"] == sample_name(1)
              else inits.get(info["chosen"], concept))
    assert all(torch.equal(chosen.state[k], winner.state[k]) for k in winner.state)
    assert chosen.seconds == pytest.approx(sum(info["candidate_seconds"].values())
                                           + info["scoring_seconds"])
    assert info["scoring_seconds"] > 0
    # other validation pairs change nothing: the choice never reads them
    real_load = PairStore.load

    def other_validation(store, concept_id):
        loaded = real_load(store, concept_id)
        return replace(loaded, val_source=255 - loaded.val_source,
                       val_target=255 - loaded.val_target)

    monkeypatch.setattr(PairStore, "load", other_validation)
    again = default_inits(ws, load_base(ws), load_generator(ws)).get("pairs_choice", concept)
    assert again.info["scores"] == info["scores"]
    # and the scores are not those of the validation pairs
    val_l1 = own_l1(ws, winner.state, concept, pairs.val_source, pairs.val_target)
    assert info["scores"][info["chosen"]]["l1"] != pytest.approx(val_l1, rel=1e-6)


def test_the_choice_goes_through_the_bench_and_its_candidates_are_its_runs_settings(
        examples_run, tmp_path, monkeypatch):
    from weightgen.stages.bench import run_benchmark

    bench = tmp_path / "bench"
    settings = [*examples_run["overrides"], *CHOICE, f"paths.bench_dir={bench}",
                "bench.methods=[pix2pix_scratch,ridge_examples_init,pairs_choice_init]",
                "bench.headline=pairs_choice_init", "bench.n_unseen=1", "bench.n_seen=0",
                "bench.pix2pix_steps=4", "bench.finetune_steps=2", "bench.eval_every=2"]
    summary = run_benchmark(run_workspace(examples_run["artifacts"], *settings))
    results = json.loads((bench / "results.json").read_text())
    row = results["concepts"][0]
    run = row["methods"]["pairs_choice_init"]
    info = run["info"]
    assert info["chosen"] in info["scores"] and len(info["scores"]) == 6  # 5 kinds + 1 sample
    assert run["init_seconds"] == pytest.approx(sum(info["candidate_seconds"].values())
                                                + info["scoring_seconds"])
    assert run["curve"][0]["seconds"] == run["init_seconds"]  # charged like generation
    assert summary["zero_shot_psnr"]["pairs_choice_init"] is not None
    assert summary["choice_wins"] == {"pairs_choice_init": {info["chosen"]: 1}}
    kind = row["kind"]
    assert summary["by_kind"][kind]["choice_wins"] == summary["choice_wins"]
    markdown = (bench / "results.md").read_text()
    assert (f"- pairs_choice_init chose on the example pairs, on 1 {kind} concept(s): "
            f"{info['chosen']} 1") in markdown
    assert f" ({info['chosen']}) |" in markdown  # the per-concept table names the candidate
    stored = json.loads((bench / "runs" / row["concept"] / "pairs_choice_init.json").read_text())
    assert stored["settings"]["init"]["candidates"]["examples_blend"] == {"k_blend": 2}
    assert stored["settings"]["init"]["samples"] == 1
    # another candidate list reruns the choice alone
    calls = record_method_runs(monkeypatch)
    run_benchmark(run_workspace(examples_run["artifacts"], *settings,
                                "bench.controls.choice.candidates=[mean,examples_ridge]"))
    assert calls == [(row["concept"], "pairs_choice_init")]
