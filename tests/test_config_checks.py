"""Every count/size knob is checked when an entry point starts, before any work (issue 14 #2, #3)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import TINY, TINY_GENERATOR, compose_config
from hydra import compose, initialize_config_dir

from weightgen.cli.app import CONFIG_DIR, entry_point
from weightgen.config_checks import check_config, check_pick
from weightgen.errors import ConfigError

PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_every_preset_passes(preset):
    check_config(compose_config([] if preset is None else [f"experiment={preset}"]))


@pytest.mark.parametrize(("name", "extra"), [("finetune", ["concept=x"]), ("generate", []),
                                             ("new_concept", [])])
def test_every_entry_config_passes_at_test_size(name, extra):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        check_config(compose(name, overrides=[*TINY, *TINY_GENERATOR, *extra]))


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("bench.n_unseen=-1", "an int >= 1"),
        ("bench.n_seen=-2", "an int >= 0"),
        ("bench.pix2pix_steps=0", "an int >= 1"),
        ("bench.finetune_steps=0", "an int >= 1"),
        ("bench.eval_every=0", "an int >= 1"),
        ("bench.target_tolerance_db=-0.5", "a number >= 0"),
        ("diffusion.steps=0", "untrained generator"),
        ("diffusion.batch_size=0", "an int >= 1"),
        ("diffusion.val_every=-5", "an int >= 1"),
        ("diffusion.sampling.steps=0", "an int >= 1"),
        ("diffusion.cond_drop_prob=1.5", "a number in [0, 1]"),
        ("diffusion.data.n_concepts=0", "null or an int >= 1"),
        ("diffusion.optimizer.lr=0", "a number > 0"),
        ("gan.optimizer.lr=0", "a number > 0 (the GAN learning rate)"),
        ("gan.lr_scheduler.decay_start=1.5", "a number in [0, 1]"),
        ("builder.base_steps=0", "untrained base"),
        ("builder.adapter_steps=-1", "an int >= 1"),
        ("builder.grid_images=0", "an int >= 1"),
        ("builder.processes=0", "an int >= 1 (worker processes"),
        ("builder.processes=1.5", "an int >= 1"),
        ("builder.processes=two", "an int >= 1"),
        ("data.n_train=0", "an int >= 1"),
        ("data.n_val=0", "an int >= 1"),
        ("data.size=-8", "an int >= 4"),
        ("data.batch_size=0", "an int >= 1"),
        ("data.max_zoom=0.5", "a number >= 1"),
        ("concepts.n_train=0", "null or an int >= 1"),
        ("concepts.n_test=-1", "null or an int >= 0"),
        ("tokenizer.block_size=0", "an int >= 1"),
        ("tokenizer.basis_rank=0", "null or an int >= 1"),
        ("study.finetune_concepts=0", "an int >= 1"),
        ("study.n_train_eval=-1", "an int >= 0"),
        ("adapter.rank=0", "an int >= 1"),
        ("gan.generator.ngf=0", "an int >= 1"),
        ("num_threads=0", "null or an int >= 1"),
        ("lock_timeout_s=-1", "null or a number >= 0"),
        ("bench.n_unseen=two", "an int >= 1"),
        ("diffusion.steps=2.5", "an int >= 1"),
        ("bench.controls.k_blend=0", "an int >= 1 (training adapters"),
        ("bench.controls.seed=-1", "an int >= 0"),
        ("bench.controls.ridge_alphas=[]", "a non-empty list of positive numbers"),
        ("bench.controls.ridge_alphas=[-1]", "a non-empty list of positive numbers"),
        ("bench.controls.ridge_alphas=0.1", "a non-empty list of positive numbers"),
    ],
)
def test_a_bad_knob_is_a_config_error_naming_key_value_and_what_is_allowed(override, allowed):
    key, value = override.split("=")
    with pytest.raises(ConfigError) as err:
        check_config(compose_config([*TINY, override]))
    message = str(err.value)
    assert message.startswith(f"{key}=") and value in message.split(" ")[0]
    assert "use " in message and allowed in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("concepts.n_test=99", "concepts.n_test=99 is more than the 24 held-out concepts"),
        ("concepts.n_train=999", "concepts.n_train=999 is more than the 273 train concepts"),
        ("data.batch_size=17", "data.batch_size=17 is more than data.n_train=16 crops"),
        ("data.size=18", "data.size=18 is not a multiple of the generator's stride 4; use e.g. 16"),
        ("builder.checkpoint_steps=[2,3]", "use distinct ints in 1..builder.adapter_steps"),
        ("builder.checkpoint_steps=[4,4]", "use distinct ints in 1..builder.adapter_steps"),
        ("builder.checkpoint_steps=[]", "use distinct ints in 1..builder.adapter_steps"),
        ("builder.shard=2/2", "builder.shard='2/2': write it as i/n"),
        ("diffusion.sampling.steps=1001", "diffusion.sampling.steps=1001 is more than the 1000"),
        ("bench.headline=e2gan", "bench.headline names 'e2gan', which is no benchmark method; "
                                 "use one of pix2pix_scratch, e2gan_lora"),
        ("bench.headline=denoised_examples_init",
         "bench.headline=denoised_examples_init is not one of bench.methods"),
    ],
)
def test_knobs_bounded_by_other_knobs_or_the_concept_set(override, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        check_config(compose_config([*TINY, override]))


def test_a_stage_pick_larger_than_the_run_names_both_counts():
    check_pick("bench.n_unseen", 2, 2, "concepts.n_test")
    with pytest.raises(ConfigError, match=r"bench.n_unseen=3 is more than the run's 2 concepts "
                                          r"\(concepts.n_test\); use at most 2"):
        check_pick("bench.n_unseen", 3, 2, "concepts.n_test")


def test_the_entry_point_checks_before_any_work(tmp_path, monkeypatch, capsys):
    """weightgen-* start through entry_point: a bad knob stops them before the task runs."""
    started = []
    main = entry_point(started.append, "weightgen.cli.bench")
    monkeypatch.setattr(sys, "argv", ["weightgen-bench", *TINY, f"paths.artifacts={tmp_path}",
                                      "bench.n_unseen=-1"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises((SystemExit, ConfigError)) as err:
        main()
    if isinstance(err.value, SystemExit):  # Hydra reports the error and exits non-zero
        assert err.value.code not in (0, None)
        captured = capsys.readouterr()
        assert "bench.n_unseen=-1 is not allowed" in captured.err + captured.out
    assert started == []
