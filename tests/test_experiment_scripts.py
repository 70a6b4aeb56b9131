"""The experiment scripts that run stages in their own process build their Workspace as the
commands do (issue 22 #5): the config composed the same way and checked (``config_checks``)
through ``weightgen.cli.app.compose_workspace``. Composing only: nothing is measured here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from helpers import compose_config
from omegaconf import OmegaConf

from weightgen.bench.methods import BASELINE, MEAN, REFERENCE, TEXT_ONLY, WITH_EXAMPLES
from weightgen.cli.app import compose_workspace
from weightgen.errors import ConfigError

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
BAD_KNOB = "diffusion.steps=0"  # refused by check_config (it would write an untrained generator)


def script(name: str) -> ModuleType:
    """``experiments/<name>/run.py`` imported as a module (its ``__main__`` part does not run)."""
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_workspace_is_the_commands_config_checked():
    overrides = ["experiment=bench", "bench.n_unseen=3"]
    ws = compose_workspace(overrides)
    assert OmegaConf.to_container(ws.cfg) == OmegaConf.to_container(compose_config(overrides))
    with pytest.raises(ConfigError, match="bench.n_unseen=-1 is not allowed"):
        compose_workspace(["bench.n_unseen=-1"])


def entry(*overrides: str) -> dict:
    """A made-up configuration of experiments/generalisation/configs.yaml."""
    return {"name": "made_up", "note": "", "overrides": list(overrides)}


@pytest.mark.parametrize("name", ["generalisation", "finetune_recipe", "builder_speed"])
def test_each_script_builds_its_workspace_through_the_config_checks(name):
    module = script(name)
    build = {
        "generalisation": lambda *extra: module.workspace(entry(*extra)),
        "finetune_recipe": lambda *extra: module.workspace(
            BASELINE, {"name": "default", "recipe": None}, 2, None, list(extra)),
        "builder_speed": lambda *extra: module.workspace(["experiment=quickstart", *extra], 8),
    }[name]
    assert build().cfg.diffusion.steps > 0
    with pytest.raises(ConfigError, match=f"{BAD_KNOB} is not allowed"):
        build(BAD_KNOB)


def test_generalisation_headlines_a_method_it_benchmarks():
    """Text only where it runs (the table's speed-up columns); else the first generated method,
    which ``--generated`` with the text + examples method alone used to leave out (refused now:
    bench.headline must be one of bench.methods)."""
    module = script("generalisation")
    default = module.workspace(entry())
    assert default.cfg.bench.headline == TEXT_ONLY and TEXT_ONLY in default.cfg.bench.methods
    examples_only = module.workspace(entry("diffusion.examples.k=2"), (WITH_EXAMPLES,))
    assert examples_only.cfg.bench.headline == WITH_EXAMPLES
    assert TEXT_ONLY not in examples_only.cfg.bench.methods


def test_finetune_recipe_replaces_the_presets_recipes_with_its_own():
    """A method the bench preset has no recipe for, and a recipe with keys the preset's lack,
    compose (Hydra merged the override into the preset's recipes and refused both); the bench
    runs exactly the recipe measured, and headlines its method."""
    module = script("finetune_recipe")
    recipe = {"optimizer": {"lr": 4.0e-4}, "lr_scheduler": {"warmup_steps": 20}}
    ws = module.workspace(MEAN, {"name": "lr_4e-4_warmup_20", "recipe": recipe}, 2, None, [])
    assert OmegaConf.to_container(ws.cfg.bench.recipes) == {MEAN: recipe}
    assert list(ws.cfg.bench.methods) == [REFERENCE, MEAN] and ws.cfg.bench.headline == MEAN
    default = module.workspace(BASELINE, {"name": "default", "recipe": None}, 2, None, [])
    assert default.cfg.bench.recipes is None
