"""The experiment scripts that run stages in their own process build their Workspace as the
commands do (issue 22 #5): the config composed the same way and checked (``config_checks``)
through ``weightgen.cli.app.compose_workspace``. Composing only: nothing is measured here."""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
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
            BASELINE, {"name": "default", "recipe": None}, "val", list(extra)),
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


def test_finetune_recipe_runs_exactly_its_recipe_on_the_validation_split():
    """One bench per (method, recipe): the preset's recipes replaced, not merged (Hydra refused a
    method or key the preset lacks), every validation concept, the recipe's own folder."""
    module = script("finetune_recipe")
    recipe = {"optimizer": {"lr": 4.0e-4}, "lr_scheduler": {"warmup_steps": 20}}
    ws = module.workspace(MEAN, {"name": "lr_4e-4_warmup_20", "recipe": recipe}, "val", [])
    assert OmegaConf.to_container(ws.cfg.bench.recipes) == {MEAN: recipe}
    assert list(ws.cfg.bench.methods) == [REFERENCE, MEAN] and ws.cfg.bench.headline == MEAN
    assert ws.cfg.bench.split == "val" and ws.cfg.bench.n_unseen is None
    assert ws.cfg.paths.bench_dir.endswith("recipes/val/lr_4e-4_warmup_20")
    default = module.workspace(BASELINE, {"name": "default", "recipe": None}, "val", [])
    assert default.cfg.bench.recipes is None


def test_finetune_recipe_grids_every_fine_tuned_method_and_chooses_on_steps():
    """The default methods are the bench's except pix2pix (it keeps its own schedule); a method
    gets a choice only once every recipe of the grid measured it: most concepts at the target,
    then fewest median steps."""
    module = script("finetune_recipe")
    methods = module.fine_tuned_methods([])
    assert methods[:2] == [BASELINE, WITH_EXAMPLES]  # the bench preset's headline second
    assert REFERENCE not in methods and {MEAN, TEXT_ONLY} <= set(methods)
    grid = [{"name": "slow", "recipe": {"optimizer": {"lr": 1.0e-4}}},
            {"name": "fast", "recipe": {"optimizer": {"lr": 1.0e-3}}}]

    def measured(method, recipe, reached, steps):
        return {"method": method, "recipe": recipe["name"], "overrides": recipe["recipe"],
                "reached": reached, "concepts": 8, "steps_to_target": steps,
                "seconds_to_target": steps / 10, "zero_shot_psnr": 15.0, "final_psnr": 24.0}

    rows = [measured(BASELINE, grid[0], 8, 50), measured(BASELINE, grid[1], 7, 20),
            measured(MEAN, grid[0], 8, 60), measured(MEAN, grid[1], 8, 30),
            measured(TEXT_ONLY, grid[0], 8, 10)]
    assert module.chosen(rows, grid) == {BASELINE: grid[0]["recipe"], MEAN: grid[1]["recipe"]}
    marked = [line for line in module.table(rows, grid).splitlines() if "**best**" in line]
    assert [line.split(" | ")[:2] for line in marked] == [  # none for a method partway through
        [f"| {BASELINE}", "`slow`"], [f"| {MEAN}", "`fast`"]]


def test_finetune_recipe_variants_rerun_generated_starts_only_and_pool_their_concepts(tmp_path):
    """--variant (e.g. the generator's seeds): each gets its own bench folder; a start that needs
    no generator runs under the first only (the variants cannot move it); a row pools the new
    concepts of every variant's bench; rows are re-read from --out, recipes outside the grid
    dropped."""
    module = script("finetune_recipe")
    variants = [["seed0"], ["seed1", "diffusion.seed=1"]]
    assert module.measured_variants(BASELINE, variants) == [["seed0"]]
    assert module.measured_variants(WITH_EXAMPLES, variants) == variants
    entry = {"name": "lr_4e-4", "recipe": {"optimizer": {"lr": 4.0e-4}}}
    ws = module.workspace(WITH_EXAMPLES, entry, "val", ["diffusion.seed=1"], "seed1")
    assert ws.cfg.paths.bench_dir.endswith("recipes/val/seed1/lr_4e-4")
    assert ws.cfg.diffusion.seed == 1

    def bench(*steps):
        return {"concepts": [{"seen": False, "methods": {WITH_EXAMPLES: {
            "steps_to_target": n, "seconds_to_target": None if n is None else n / 10,
            "zero_shot_psnr": 20.0, "final_psnr": 24.0}}} for n in steps]
            + [{"seen": True, "methods": {WITH_EXAMPLES: {}}}]}

    pooled = module.row(WITH_EXAMPLES, entry, [bench(10, 30), bench(20, None)], "val")
    assert (pooled["variants"], pooled["concepts"], pooled["reached"]) == (2, 4, 3)
    assert pooled["steps_to_target"] == 20
    grid = [entry]
    module.write([pooled], grid, "val", tmp_path)
    assert module.stored_rows(tmp_path, grid) == [pooled]
    assert module.stored_rows(tmp_path, [{"name": "lr_8e-4", "recipe": None}]) == []
    assert yaml.safe_load((tmp_path / "chosen.yaml").read_text()) == {
        WITH_EXAMPLES: entry["recipe"]}


def test_the_bench_preset_fine_tunes_each_method_with_its_validation_choice():
    """conf/experiment/bench.yaml's recipes are the grid's chosen.yaml, method for method: a
    method the grid has chosen for trains the bench with that recipe and no other; a method not
    yet through the grid has no recipe there (it trains with the gan group as it is)."""
    chosen = yaml.safe_load((EXPERIMENTS / "finetune_recipe" / "chosen.yaml").read_text())
    bench = compose_config(["experiment=bench"]).bench
    assert OmegaConf.to_container(bench.recipes) == chosen
    assert set(chosen) <= set(bench.methods)


@pytest.mark.parametrize(("configs", "grid"), [("tuned.yaml", "recipes"),
                                               ("tuned_265.yaml", "recipes_265")])
def test_the_tuned_scaling_point_fine_tunes_each_start_with_the_stores_validation_choice(configs,
                                                                                         grid):
    """experiments/scaling/tuned.yaml (tuned_265.yaml) fine-tunes every start of the 96- (265-)
    concept point with the recipe the grid at that size chose on validation (<grid>/chosen.yaml),
    method for method, and no other recipe."""
    chosen = yaml.safe_load((EXPERIMENTS / "scaling" / grid / "chosen.yaml").read_text())
    base = yaml.safe_load((EXPERIMENTS / "scaling" / configs).read_text())["base"]
    bench = compose_config(["experiment=bench", *base]).bench
    assert OmegaConf.to_container(bench.recipes) == chosen
    assert {BASELINE, WITH_EXAMPLES} <= set(chosen)


def test_generalisation_table_only_with_nothing_measured_says_so(tmp_path, monkeypatch, capsys):
    """--table-only over an empty artifacts root: one usage error naming the fix, exit 2 and no
    table written (it crashed on an empty min() before). The script runs as ``__main__`` in this
    process (a subprocess would pay the imports for nothing)."""
    configs = tmp_path / "nothing_measured.yaml"
    configs.write_text("- {name: a, note: '', overrides: []}\n")
    monkeypatch.setenv("WEIGHTGEN_ARTIFACTS", str(tmp_path))
    script_path = EXPERIMENTS / "generalisation" / "run.py"
    monkeypatch.setattr(sys, "argv", [str(script_path), "--configs", str(configs), "--table-only"])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(str(script_path), run_name="__main__")
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert "has been measured" in error and "run without --table-only" in error
    assert not (EXPERIMENTS / "generalisation" / configs.stem).exists()


def test_the_levers_against_the_controls_are_chosen_on_the_validation_split():
    """issue 24's configurations compose as the commands do, each on the validation split (never
    the reported test split), and are tabulated against the controls."""
    module = script("generalisation")
    configs = EXPERIMENTS / "generalisation" / "against_controls.yaml"
    assert module.table_of(configs) is module.controls_table
    assert module.table_of(EXPERIMENTS / "generalisation" / "levers.yaml") is (
        module.generalisation_table)
    entries = module.read_configs(configs)
    for configuration in entries:  # the split set by the base and never again
        splits = [o for o in module.overrides(configuration) if o.startswith("bench.split=")]
        assert splits == ["bench.split=val"], configuration["name"]
    ws = module.workspace(entries[1])  # one composed as the commands do (each takes seconds)
    assert ws.cfg.bench.split == "val" and ws.cfg.diffusion.prior == "examples_ridge"
    assert ws.cfg.paths.generator_dir.endswith(f"generalisation/{entries[1]['name']}")


# Configuration files on the 265-concept store; an entry name they share is one generator folder.
STORE_265 = [EXPERIMENTS / "scaling" / "against_controls.yaml",
             EXPERIMENTS / "scaling" / "examples_k.yaml",
             EXPERIMENTS / "scaling" / "capacity.yaml",
             EXPERIMENTS / "scaling" / "set_encoder.yaml",
             EXPERIMENTS / "scaling" / "speedups.yaml",
             EXPERIMENTS / "generalisation" / "text_parts.yaml"]


def test_the_scaling_curve_is_tabulated_as_a_curve_beside_its_file():
    module = script("generalisation")
    configs = EXPERIMENTS / "scaling" / "against_controls.yaml"
    assert module.table_of(configs) is module.scaling_table
    assert module.table_of(EXPERIMENTS / "generalisation" / "text_parts.yaml") is (
        module.controls_table)
    assert module.output_folder(configs) == EXPERIMENTS / "scaling" / "against_controls"
    assert module.output_folder(EXPERIMENTS / "generalisation" / "configs.yaml") == (
        EXPERIMENTS / "generalisation")


@pytest.mark.parametrize("configs", STORE_265, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_265_concept_studies_train_on_the_validation_split_and_report_the_test_split(configs):
    """issue 24's studies on the 265-concept store (the scaling curve, the k-curve, the clauses
    view): every generator is trained and scored on the val split; the test split only re-scores
    a trained one (``sampling_of``)."""
    module = script("generalisation")
    for entry in module.read_configs(configs):
        split = [o for o in module.overrides(entry) if o.startswith("bench.split=")][-1]
        assert split == ("bench.split=test" if "sampling_of" in entry else "bench.split=val")
        assert ("run_name=bench273" in module.overrides(entry)) and (
            "concepts.n_train=null" in module.overrides(entry))


def test_an_entry_the_265_concept_studies_share_is_one_configuration():
    """A name in two files is one generator folder (artifacts/<run>/generalisation/<name>/): the
    second file reuses the first's generator and zero-shot table, so both must mean the same
    overrides, up to which held-out concepts a fine-tune runs on and its methods' recipes
    (``bench.n_unseen``, ``bench.recipes``: the bench only, which writes its own subfolder)."""
    module = script("generalisation")
    seen: dict[str, tuple[list[str], Path]] = {}
    shared = set()
    for configs in STORE_265:
        for entry in module.read_configs(configs):
            overrides = [o for o in module.overrides(entry)
                         if not o.startswith(("bench.n_unseen=", "+bench.recipes."))]
            first = seen.setdefault(entry["name"], (overrides, configs))
            assert first[0] == overrides, (entry["name"], first[1], configs)
            shared |= {entry["name"]} if first[1] != configs else set()
    assert {"concepts_265", "test_concepts_265"} <= shared  # what the files say they reuse


def test_a_fine_tune_of_a_configuration_runs_the_chosen_methods_pix2pix_first():
    """run.py --bench --reused ... --generated ...: bench.methods is the generator-free methods
    asked for (pix2pix first: it sets the target), then the generated inits; the headline is the
    text-only init where it runs."""
    module = script("generalisation")
    entry = {e["name"]: e for e in module.read_configs(EXPERIMENTS / "scaling" / "speedups.yaml")}[
        "test_concepts_24"]
    reused = ("pix2pix_scratch", "e2gan_lora", "trained_init")
    chosen = module.overrides(entry, ("denoised_examples_init", "knn_examples_init"), reused)
    assert "bench.methods=[pix2pix_scratch,e2gan_lora,trained_init,denoised_examples_init," \
           "knn_examples_init]" in chosen
    assert "bench.headline=denoised_examples_init" in chosen
    assert "bench.headline=denoised_init" in module.overrides(entry, ("denoised_init",), reused)
    assert module.bench_methods(entry)[:len(module.REUSED_METHODS)] == module.REUSED_METHODS
    assert "bench.n_unseen=16" in chosen and "diffusion.data.n_concepts=24" in chosen


def test_threads_pin_every_configuration_after_its_base_and_compose():
    """run.py --threads N: num_threads=N comes after each configuration's base, so two runs side
    by side do not each take every core; the composed config carries it."""
    module = script("generalisation")
    configs = module.read_configs(EXPERIMENTS / "scaling" / "speedups.yaml")
    assert module.with_threads(configs, None) is configs
    pinned = {e["name"]: e for e in module.with_threads(configs, 1)}
    chosen = module.overrides(pinned["test_concepts_96_seed1"])
    assert chosen.index("num_threads=1") < chosen.index("diffusion.seed=1")
    assert module.workspace(pinned["concepts_24"]).cfg.num_threads == 1


def test_adapter_recipes_are_compared_concept_by_concept_with_the_reference(tmp_path):
    """experiments/adapter_recipe: each recipe trains a probe run beside the run (its base and
    pairs), and the table's differences and speed are paired with the reference recipe's."""
    module = script("adapter_recipe")
    spec = yaml.safe_load((EXPERIMENTS / "adapter_recipe" / "recipes.yaml").read_text())
    assert spec["reference"] in [r["name"] for r in spec["recipes"]]
    for recipe in spec["recipes"]:  # each composes as the command would
        overrides = module.probe_overrides(["experiment=bench", "run_name=bench273"], tmp_path,
                                           recipe, "0/38")
        cfg = compose_config(overrides)
        assert cfg.run_name == f"bench273_recipe_{recipe['name']}"
        assert cfg.paths.base_dir == f"{tmp_path}/base" and cfg.builder.stage == "adapters"
        assert max(cfg.builder.checkpoint_steps) == cfg.builder.adapter_steps
    results = {"concepts": ["a", "b", "c"], "reference": "slow", "recipes": {
        "slow": {"note": "", "steps": 300, "final_psnr": {"a": 20.0, "b": 22.0, "c": 24.0},
                 "curves": {}, "seconds": {"a": 90.0, "b": 80.0, "c": 100.0}},
        "fast": {"note": "", "steps": 100, "final_psnr": {"a": 21.0, "b": 21.5, "c": 24.5},
                 "curves": {}, "seconds": {"a": 30.0, "b": 30.0, "c": 20.0}}}}
    module.summarise(results)
    fast = results["recipes"]["fast"]["summary"]
    assert (fast["wins"], fast["losses"], fast["median_difference_db"]) == (2, 1, 0.5)
    assert fast["speed_vs_reference"] == 3.0
    assert "| `fast`:  | 100 | 21.50 | +0.50 (2-1) | 30.0 | 3.00x |" in module.markdown(results)


def test_the_ensemble_grid_averages_every_subset_of_the_controls_with_and_without_the_generator():
    """experiments/scaling/ensemble.py: each side chosen from the same subsets of the controls
    (the generator's side: each with the generator's adapter added), pooled per size over seeds."""
    spec = importlib.util.spec_from_file_location("ensemble_grid",
                                                  EXPERIMENTS / "scaling" / "ensemble.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    combos = module.combinations()
    generator_side = [c for c in combos if "G" in c]
    controls_side = [c for c in combos if "G" not in c] + ["R", "B", "T"]
    assert combos[:len(generator_side)] == generator_side and len(combos) == 11
    assert sorted(c.replace("G", "") for c in generator_side) == sorted(controls_side)

    def row(g, r, b):
        return {"concept": "c", "split": "val", "G": g, "R": r, "B": b, "T": 0.0, "M": 10.0,
                **{c: 15.0 for c in combos}}

    records = {"concepts_96": {"split": "val", "train_concepts": 96,
                               "rows": [row(20.0, 18.0, 17.0), row(16.0, 18.0, 17.0)]},
               "concepts_96_seed1": {"split": "val", "train_concepts": 96,
                                     "rows": [row(22.0, 18.0, 19.0), row(21.0, 18.0, 17.0)]}}
    markdown = module.table(records)
    # G: seed medians 18 and 21.5 -> 19.75; above R, B and M on 3 of 4 concept-seeds
    assert "| val | 96 | 2 | 19.75 (3/4) | 18.00 (0/4) |" in markdown
