"""The ensemble starts (issue 24): ``finetune/ensemble.py``, the inits ``ensemble`` and
``controls_ensemble`` and their bench methods. Hand-made states first, then the tiny trained run
with an example-pairs generator (slow)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import compose_config, run_workspace

from weightgen.bench.methods import CONTROLS_ENSEMBLE, ENSEMBLE, METHODS
from weightgen.concepts.spec import Concept
from weightgen.config_checks import check_config
from weightgen.errors import ConfigError
from weightgen.finetune.controls import ControlInputs
from weightgen.finetune.ensemble import average, mean_state
from weightgen.finetune.init_kinds import check_ensemble_members
from weightgen.finetune.inits import AdapterInit, InitSources
from weightgen.stages.artifacts import default_inits, load_base, load_generator


def states() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [{"w": torch.randn(3, 2, generator=generator), "b": torch.randn(2, generator=generator)}
            for _ in range(3)]


def test_the_mean_state_is_the_tensor_wise_mean():
    made = states()
    mean = mean_state(made)
    assert torch.allclose(mean["w"], (made[0]["w"] + made[1]["w"] + made[2]["w"]) / 3)
    assert torch.allclose(mean["b"], (made[0]["b"] + made[1]["b"] + made[2]["b"]) / 3)
    assert torch.equal(mean_state(made[:1])["w"], made[0]["w"])
    with pytest.raises(ValueError, match="the members' keys differ"):
        mean_state([made[0], {"w": made[1]["w"]}])


def test_an_ensembles_seconds_are_its_members_own_plus_the_averaging():
    made = states()
    members = {name: (lambda i=i, name=name: AdapterInit(name, made[i], 0.25 * (i + 1),
                                                         {"made": name}))
               for i, name in enumerate(("a", "b", "c"))}
    state, seconds, info = average(members)
    assert torch.allclose(state["w"], mean_state(made)["w"])
    assert 1.5 <= seconds < 1.6  # 0.25 + 0.5 + 0.75, and the averaging
    assert info["members"] == ["a", "b", "c"]
    assert info["member_seconds"] == {"a": 0.25, "b": 0.5, "c": 0.75}
    assert info["member_info"]["b"] == {"made": "b"}
    with pytest.raises(ValueError, match="at least one member"):
        average({})


@pytest.mark.parametrize(("kind", "members", "message"), [
    ("ensemble", [], r"members=\[\]: it is empty"),
    ("ensemble", ["mean", "trained"], r"'trained' is the concept's own adapter, the ceiling"),
    ("ensemble", ["mean", "ensemble"], r"'ensemble' is an ensemble itself"),
    ("ensemble", ["pairs_choice"], r"average its candidates instead"),
    ("ensemble", ["mean", "mean"], r"mean appears twice"),
    ("controls_ensemble", ["examples_ridge", "generated_examples"],
     r"controls=.*'generated_examples' is the weight generator's, and this ensemble is its control"),
    ("controls_ensemble", ["generated"], r"'generated' is the weight generator's"),
])
def test_a_member_list_that_cannot_be_averaged_is_a_config_error(kind, members, message):
    with pytest.raises(ConfigError, match=r"bench.controls.ensemble\..*" + message
                       + r".*; use a list of distinct init kinds out of standard, mean, "):
        check_ensemble_members(kind, members)
    assert check_ensemble_members("controls_ensemble", ["examples_ridge", "examples_blend"]) == (
        "examples_ridge", "examples_blend")
    assert check_ensemble_members("ensemble", ["generated_examples", "mean"]) == (
        "generated_examples", "mean")


def test_the_commands_check_the_ensemble_members_before_any_work():
    check_config(compose_config())  # the defaults pass
    with pytest.raises(ConfigError, match=r"bench.controls.ensemble.controls=.*'generated'"):
        check_config(compose_config(["bench.controls.ensemble.controls=[mean,generated]"]))
    with pytest.raises(ConfigError, match=r"bench.controls.ensemble.members=.*it is empty"):
        check_config(compose_config(["bench.controls.ensemble.members=[]"]))


def test_the_two_ensembles_are_bench_methods_that_need_the_examples_generator():
    for name, kind in ((ENSEMBLE, "ensemble"), (CONTROLS_ENSEMBLE, "controls_ensemble")):
        assert METHODS[name].init == kind
        assert METHODS[name].needs_generator and METHODS[name].needs_examples


def sources(members=("mean", "standard"), controls=("mean", "nearest"),
            n_concepts: int | None = None) -> InitSources:
    """Init sources with a hand-made standard state and mean, no store or generator."""
    made = states()
    knobs = ControlInputs(k_blend=3, ridge_alphas=(0.1, 1.0), seed=0, choice_candidates=(),
                          choice_samples=0, ensembles={"ensemble": tuple(members),
                                                       "controls_ensemble": tuple(controls)},
                          heldout=[], validation=[],
                          training_phrasings=dict, n_concepts=n_concepts)
    built = InitSources(None, list, list, None, made[0], controls=knobs)
    built.__dict__["_mean"] = made[1]  # the cached mean adapter, as if read from a store
    built.__dict__["_train_rows"] = [{"concept": "t"}]
    return built


CONCEPT = Concept("c", "a prompt", instruction="x", split="test")


def test_the_ensemble_init_is_the_mean_of_its_members_inits():
    made = states()
    init = sources(members=("mean", "standard")).get("ensemble", CONCEPT)
    assert init.kind == "ensemble" and init.info["members"] == ["mean", "standard"]
    assert torch.allclose(init.state["w"], (made[0]["w"] + made[1]["w"]) / 2)
    alone = sources(members=("standard",)).get("ensemble", CONCEPT)
    assert torch.equal(alone.state["w"], made[0]["w"])


def test_the_controls_ensemble_refuses_generated_weights_when_it_is_made():
    bad = sources(controls=("mean", "generated_examples"))
    with pytest.raises(ConfigError, match="bench.controls.ensemble.controls="):
        bad.get("controls_ensemble", CONCEPT)
    with pytest.raises(ConfigError, match="bench.controls.ensemble.controls="):
        bad.prepare("controls_ensemble")


def test_the_stored_settings_change_with_the_members_and_their_knobs():
    settings = sources(members=("mean", "examples_blend")).settings("ensemble", CONCEPT)
    assert settings == {"members": {"mean": {}, "examples_blend": {"k_blend": 3}}}
    assert sources(members=("mean",)).settings("ensemble", CONCEPT) != settings
    subset = sources(controls=("mean", "examples_ridge"), n_concepts=24)
    members = subset.settings("controls_ensemble", CONCEPT)["members"]
    assert members["mean"] == {"n_concepts": 24}
    assert members["examples_ridge"]["n_concepts"] == 24


# --- on the tiny trained run with an example-pairs generator (slow) ---------------------------

ENSEMBLES = ["bench.controls.k_blend=2",
             "bench.controls.ensemble.members=[generated_examples,examples_ridge,examples_blend]",
             "bench.controls.ensemble.controls=[examples_ridge,examples_blend]"]


def test_the_ensembles_average_the_inits_of_the_run_and_encode_the_pairs_once(examples_run):
    ws = run_workspace(examples_run["artifacts"], *examples_run["overrides"], *ENSEMBLES)
    inits = default_inits(ws, load_base(ws), load_generator(ws))
    concept = ws.test_concepts[0]
    members = {kind: inits.get(kind, concept)
               for kind in ("generated_examples", "examples_ridge", "examples_blend")}
    ensemble = inits.get("ensemble", concept)
    for key, value in ensemble.state.items():
        expected = sum(m.state[key] for m in members.values()) / 3
        assert torch.allclose(value, expected, atol=1e-6), key
    controls = inits.get("controls_ensemble", concept)
    for key, value in controls.state.items():
        expected = (members["examples_ridge"].state[key] + members["examples_blend"].state[key]) / 2
        assert torch.allclose(value, expected, atol=1e-6), key
    # the three members read the same k pairs: only the first pays their encoding
    seconds = ensemble.info["member_seconds"]
    first = ensemble.info["member_info"]["generated_examples"]
    assert first["encoding_seconds"] > 0
    assert ensemble.info["member_info"]["examples_ridge"]["encoding_seconds"] == 0.0
    assert ensemble.seconds >= sum(seconds.values())


def test_the_ensembles_go_through_the_bench(examples_run, tmp_path):
    from weightgen.stages.bench import run_benchmark

    bench = tmp_path / "bench"
    settings = [*examples_run["overrides"], *ENSEMBLES, f"paths.bench_dir={bench}",
                f"bench.methods=[pix2pix_scratch,e2gan_lora,{ENSEMBLE},{CONTROLS_ENSEMBLE}]",
                f"bench.headline={ENSEMBLE}", "bench.n_unseen=1", "bench.n_seen=0",
                "bench.pix2pix_steps=4", "bench.finetune_steps=2", "bench.eval_every=2"]
    summary = run_benchmark(run_workspace(examples_run["artifacts"], *settings))
    row = json.loads((bench / "results.json").read_text())["concepts"][0]
    for method, members in ((ENSEMBLE, 3), (CONTROLS_ENSEMBLE, 2)):
        run = row["methods"][method]
        assert len(run["info"]["members"]) == members
        assert run["curve"][0]["seconds"] == run["init_seconds"]  # charged like generation
        assert summary["zero_shot_psnr"][method] is not None
