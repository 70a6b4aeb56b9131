"""`weightgen-<command> --help`: the command's purpose and the config groups it reads; the
commands import the training stack only once their config is composed and checked."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from weightgen.cli.app import CONFIG_DIR, stage_task  # importing it registers the help resolver

CLI_DIR = Path(import_module("weightgen.cli").__file__).parent
COMMANDS = sorted(p.stem for p in CLI_DIR.glob("*.py")
                  if hasattr(import_module(f"weightgen.cli.{p.stem}"), "main"))
OWN_CONFIG = {"generate": "generate", "finetune": "finetune", "new_concept": "new_concept",
              "apply": "apply", "export": "export"}
ROOT = Path(__file__).resolve().parents[1]


def test_every_command_is_found():
    assert {"pairs", "dataset", "train_generator", "bench", "pipeline", "apply"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_header_is_the_commands_purpose_and_groups(command):
    doc = inspect.getdoc(import_module(f"weightgen.cli.{command}"))
    assert doc.startswith(f"weightgen-{command.replace('_', '-')}")
    assert "Config groups" in doc
    with initialize_config_dir(config_dir=CONFIG_DIR, job_name=command, version_base="1.3"):
        cfg = compose(OWN_CONFIG.get(command, "weightgen"), return_hydra_config=True)
    assert cfg.hydra.help.header == doc
    assert cfg.hydra.help.template.startswith(doc)


def test_dataset_help_prints_its_purpose_groups_and_options():
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([Path(sys.executable).parent / "weightgen-dataset", "--help"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("weightgen-dataset: base GAN + per-concept adapters")
    assert "Config groups it reads: concepts, data, editor, text_encoder, gan, adapter, " \
           "builder, trainer," in done.stdout
    assert "adapter: full, lora" in lines and "trainer: cpu, ddp, default, gpu" in lines
    assert "--cfg job" in done.stdout


def stage_of(command: str) -> str | None:
    """The stage path a command module hands to ``entry_point`` (None: its own Hydra app)."""
    tree = ast.parse((CLI_DIR / f"{command}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "entry_point":
            return node.args[0].value
    return None


STAGES = {command: stage_of(command) for command in COMMANDS}


@pytest.mark.parametrize("command", [c for c, stage in STAGES.items() if stage is not None])
def test_each_command_runs_a_stage_function_that_exists(command):
    """The stage is named as a string (imported after the checks): a typo would otherwise show
    only when the command runs. Named under weightgen.stages: the cli -> stages layering."""
    assert STAGES[command].startswith("weightgen.stages.")
    assert callable(stage_task(STAGES[command]))


def test_every_command_but_apply_and_export_starts_through_entry_point():
    assert {c for c, stage in STAGES.items() if stage is None} == {"apply", "export"}


HEAVY = ("torch", "lightning", "peft", "diffusers", "transformers")


def test_the_command_modules_import_no_training_stack():
    """``--help`` and a bad run folder are answered from the command module and Hydra alone."""
    imports = "; ".join(f"import weightgen.cli.{command}" for command in COMMANDS)
    done = subprocess.run([sys.executable, "-c", f"import sys; {imports}; "
                           f"print(sorted(set(sys.modules) & set({HEAVY!r})))"],
                          capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(ROOT)},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
