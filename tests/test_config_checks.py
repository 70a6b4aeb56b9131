"""Every count/size knob is checked when an entry point starts, before any work (issue 14 #2, #3)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY, TINY_GENERATOR, compose_config
from hydra.utils import instantiate

import weightgen.stages.bench as bench_stage
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
    check_config(compose_config([*TINY, *TINY_GENERATOR, *extra], name))


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
        ("concepts.n_val=-1", "null or an int >= 0"),
        ("bench.log_eval_until=-1", "an int >= 0"),
        ("bench.profile_max_tau=1", "an int >= 2"),
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
        ("concepts.n_test=99", "concepts.n_test=99 is more than the 24 held-out test concepts"),
        ("concepts.n_val=9", "concepts.n_val=9 is more than the 8 validation concepts"),
        ("concepts.n_train=999", "concepts.n_train=999 is more than the 265 train concepts"),
        ("bench.split=train", "bench.split='train' is no held-out split: use bench.split=val"),
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
    monkeypatch.setattr(bench_stage, "run_benchmark", started.append)
    main = entry_point("weightgen.stages.bench:run_benchmark", "weightgen.cli.bench")
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


# --- issue 21: every recipe value and the smallest trainable crop, before any work --------------


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("{denoised_init: {optimizer: {lr: -1}}}",
         "bench.recipes.denoised_init.optimizer.lr=-1 is not allowed: use a number > 0"),
        ("{e2gan_lora: {lr_scheduler: {warmup_steps: -5}}}",
         "bench.recipes.e2gan_lora.lr_scheduler.warmup_steps=-5 is not allowed: use an int >= 0"),
        ("{mean_init: {lr_scheduler: {decay: step}}}",
         "bench.recipes.mean_init.lr_scheduler.decay='step' is not allowed: use one of constant, "
         "linear, cosine"),
        ("{mean_init: {loss: {gan_mode: wgan}}}",
         "bench.recipes.mean_init.loss.gan_mode='wgan' is not allowed: use one of lsgan, vanilla"),
        ("{nearest_init: {lr_scheduler: {decay_start: 2}}}",
         "bench.recipes.nearest_init.lr_scheduler.decay_start=2 is not allowed: use a number in "
         "[0, 1]"),
        ("{denoised_init: {optimizer: {betas: [0.5, 1.5]}}}",
         "bench.recipes.denoised_init.optimizer cannot build an optimiser (Invalid beta parameter"),
        ("{denoised_init: {optimizer: {lrr: 0.1}}}",
         "bench.recipes.denoised_init.optimizer cannot build an optimiser (.*lrr"),
        ("{denoised_init: {lr_scheduler: {warmup: 3}}}",
         "bench.recipes.denoised_init.lr_scheduler cannot build a schedule (.*warmup"),
    ],
)
def test_every_bench_recipe_value_is_checked_before_any_work(recipe, expected):
    with pytest.raises(ConfigError) as err:
        check_config(compose_config([*TINY, f"bench.recipes={recipe}"]))
    assert re.match(re.escape(expected).replace(r"\.\*", ".*"), str(err.value)), str(err.value)


def test_a_good_recipe_passes_and_the_gan_group_itself_is_built_too():
    check_config(compose_config([*TINY, "bench.recipes={denoised_init: {optimizer: {lr: 1.0e-4}, "
                                        "lr_scheduler: {warmup_steps: 20}}}"]))
    with pytest.raises(ConfigError, match=r"^gan.optimizer cannot build an optimiser \(Invalid "
                                          r"beta parameter.*fix the values under gan.optimizer"):
        check_config(compose_config([*TINY, "gan.optimizer.betas=[2,0.9]"]))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.size=4"], "data.size=4 is smaller than the generator (E2GANGenerator) trains on: "
                          "use data.size >= 8"),
        (["data.size=8"], "data.size=8 is smaller than the discriminator (PatchDiscriminator with "
                          "gan.discriminator.n_layers=2) trains on: use data.size >= 12"),
        (["data.size=20", "gan.discriminator.n_layers=3"], "use data.size >= 24"),
    ],
)
def test_a_crop_smaller_than_the_gan_trains_on_is_refused(overrides, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        check_config(compose_config([*TINY, *overrides]))


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_the_smallest_allowed_crop_trains_and_one_step_smaller_does_not(n_layers):
    """The bound is the networks' real one: one GAN training step at the smallest allowed size
    runs, and at the next smaller multiple of 4 it fails (as the base GAN did)."""
    cfg = compose_config([*TINY, f"gan.discriminator.n_layers={n_layers}"])
    sizes = [size for size in range(4, 64, 4)
             if _passes(compose_config([*TINY, f"gan.discriminator.n_layers={n_layers}",
                                        f"data.size={size}"]))]
    smallest = sizes[0]
    assert sizes == list(range(smallest, 64, 4))
    assert _one_training_step(cfg, smallest)
    assert not _one_training_step(cfg, smallest - 4)


def _passes(cfg) -> bool:
    try:
        check_config(cfg)
    except ConfigError:
        return False
    return True


def _one_training_step(cfg, size: int) -> bool:
    generator, discriminator = instantiate(cfg.gan.generator, text_dim=8), instantiate(
        cfg.gan.discriminator)
    image, text = torch.randn(2, 3, size, size), torch.randn(2, 3, 8)
    try:
        fake = generator(image, text, torch.ones(2, 3, dtype=torch.bool))
        discriminator(image, fake).mean().backward()
    except (ValueError, RuntimeError):
        return False
    return True
