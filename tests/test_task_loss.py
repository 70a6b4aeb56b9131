"""The generator's objective through the task: generated adapters scored by the frozen base GAN."""

from __future__ import annotations

import functools

import pytest
import torch
from diffusers import DDPMScheduler
from helpers import compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.func import functional_call

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.diffusion.module import WeightDiffusionModule
from weightgen.diffusion.task_loss import TaskLoss
from weightgen.errors import ConfigError
from weightgen.gan.generator import E2GANGenerator
from weightgen.weights.tokenizer import BlockTokenizer

TEXT_DIM, BLOCK = 8, 8
CONCEPTS, ADAPTERS_PER_CONCEPT, PAIRS = 3, 2, 6


@functools.cache
def diffusion_config():
    return compose_config().diffusion


def scheduler(prediction_type: str = "sample") -> DDPMScheduler:
    cfg = OmegaConf.to_container(diffusion_config().scheduler, resolve=True)
    return DDPMScheduler(**(cfg | {"prediction_type": prediction_type}))


def tiny_task(prediction_type: str = "sample", **options) -> dict:
    """A tiny base GAN, 3 concepts x 2 full-delta adapters in a PCA tokenizer, and 6 pairs per
    concept whose targets are the base + the concept's first adapter (reachable edits)."""
    torch.manual_seed(0)
    generator = E2GANGenerator(ngf=4, text_dim=TEXT_DIM)
    params = dict(generator.named_parameters())
    adapters = [{name: 0.05 * torch.randn_like(p) for name, p in params.items()}
                for _ in range(CONCEPTS * ADAPTERS_PER_CONCEPT)]
    tokenizer = BlockTokenizer(BLOCK, normalization="per_tensor", basis="pca").fit(adapters)
    blocks = torch.stack([tokenizer.tokenize(a) for a in adapters]).float()
    concept_index = torch.arange(CONCEPTS).repeat_interleave(ADAPTERS_PER_CONCEPT)
    gan_tokens, gan_mask = torch.randn(CONCEPTS, 4, TEXT_DIM), torch.ones(CONCEPTS, 4, dtype=bool)
    sources = torch.rand(PAIRS, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        targets = torch.stack([functional_call(
            generator, {n: p + adapters[c * ADAPTERS_PER_CONCEPT][n] for n, p in params.items()},
            (sources, gan_tokens[c].expand(PAIRS, -1, -1), gan_mask[c].expand(PAIRS, -1)))
            for c in range(CONCEPTS)])
    loss = TaskLoss(generator, tokenizer, scheduler(prediction_type), gan_tokens, gan_mask,
                    sources, targets, blocks, concept_index,
                    **({"weight": 1.0, "diffusion_weight": 0.0} | options))
    module = WeightDiffusionModule(
        MLPDenoiser(BLOCK, tokenizer.num_blocks, TEXT_DIM, hidden_dim=64, depth=2), scheduler(),
        Condition(torch.randn(CONCEPTS, 5, TEXT_DIM), torch.ones(CONCEPTS, 5, dtype=bool)),
        optimizer=instantiate(diffusion_config().optimizer), lr_scheduler=None,
        task_loss=loss)
    batch = {"blocks": blocks.reshape(-1, BLOCK), "block_index": torch.zeros(len(blocks), dtype=int),
             "concept": concept_index}
    return {"module": module, "generator": generator, "batch": batch, "tokenizer": tokenizer}


def task_l1(module: WeightDiffusionModule, seed: int = 7) -> float:
    """The task loss at fixed draws (concepts, pairs, noise) and the prompts."""
    torch.manual_seed(seed)
    module.eval()
    with torch.no_grad():
        value = float(module.task_loss(module.denoiser, module.task_condition))
    module.train()
    return value


def train(module: WeightDiffusionModule, batch: dict, steps: int, lr: float = 1e-2) -> None:
    optimizer = torch.optim.Adam(module.denoiser.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        module.training_step(batch, 0).backward()
        optimizer.step()


@pytest.mark.slow  # 200 training steps: over 5 s
@pytest.mark.parametrize("timestep", ["last", "random"])
def test_the_task_loss_trains_the_denoiser_only(timestep):
    task = tiny_task(timestep=timestep)
    module, generator = task["module"], task["generator"]
    gan_before = {n: p.clone() for n, p in generator.named_parameters()}
    denoiser_before = [p.clone() for p in module.denoiser.parameters()]
    before = task_l1(module)
    train(module, task["batch"], steps=200, lr=1e-3)
    after = task_l1(module)
    # From pure noise the one-step adapters improve clearly (0.345 -> 0.067 on 1 thread, 0.090 on
    # 2 here). Fewer steps at a higher rate are chaotic: 30 steps at 1e-2 ended above the start
    # with today's packages and 60 at 3e-3 went either way with the thread count. From noised
    # training adapters the draws vary more, so only finiteness is asked there.
    assert 0 < after < (0.93 * before if timestep == "last" else float("inf")), (before, after)
    assert all(torch.equal(p, gan_before[n]) and p.grad is None and not p.requires_grad
               for n, p in generator.named_parameters())
    assert not generator.training
    assert any(not torch.equal(a, b) for a, b in zip(denoiser_before, module.denoiser.parameters(),
                                                     strict=True))


def test_the_step_mixes_the_two_losses_with_their_weights():
    task = tiny_task(weight=0.5, diffusion_weight=2.0)
    module, batch = task["module"], task["batch"]
    module.train()
    torch.manual_seed(3)
    total = module.training_step(batch, 0)
    torch.manual_seed(3)
    diffusion = module.diffusion_loss(batch)
    task_term = module.task_loss(module.denoiser, module.task_condition)
    torch.testing.assert_close(total, 2.0 * diffusion + 0.5 * task_term)
    module.task_loss = None  # off: the step is the diffusion loss, bit for bit
    torch.manual_seed(3)
    assert torch.equal(module.training_step(batch, 0), diffusion)


def test_the_task_loss_applies_every_nth_step_only():
    loss = tiny_task(every=3)["module"].task_loss
    assert [loss.applies_at(step) for step in range(7)] == [True, False, False, True, False,
                                                            False, True]


def test_one_step_generation_is_what_the_last_timestep_scores():
    """timestep=last scores the denoiser's prediction at T-1 from noise: the adapter the one-step
    sampler returns for the same noise."""
    from weightgen.diffusion.sampler import ddim_from, sample_blocks

    task = tiny_task()
    module = task["module"]
    train(module, task["batch"], steps=3)
    text = module.texts[:1]
    sampled = sample_blocks(module.denoiser, ddim_from(dict(module.scheduler.config)), text,
                            task["tokenizer"].num_blocks, BLOCK, seed=5)
    noise = torch.randn(task["tokenizer"].num_blocks, BLOCK,
                        generator=torch.Generator().manual_seed(5))
    module.eval()
    last = module.scheduler.config.num_train_timesteps - 1
    with torch.no_grad():
        direct = module.denoiser(noise, torch.full((len(noise),), last),
                                 torch.arange(len(noise)), text.expand(len(noise)))
    torch.testing.assert_close(sampled, direct)


def test_epsilon_prediction_and_lora_adapters_are_refused():
    with pytest.raises(ConfigError, match="prediction_type=sample"):
        tiny_task(prediction_type="epsilon")
    task = tiny_task()
    lora = {"stem.0.lora_A": torch.randn(2, 3), "stem.0.lora_B": torch.randn(3, 2)}
    tokenizer = BlockTokenizer(BLOCK, basis="pca").fit([lora, {k: v + 1 for k, v in lora.items()}])
    loss = task["module"].task_loss
    with pytest.raises(ConfigError, match="full-delta adapters"):
        TaskLoss(task["generator"], tokenizer, scheduler(), loss.gan_text_tokens,
                 loss.gan_text_mask, loss.sources, loss.targets, loss.blocks, loss.concept_index,
                 weight=1.0)
    with pytest.raises(ConfigError, match="timestep='first'"):
        tiny_task(timestep="first")


@pytest.mark.parametrize(("overrides", "message"), [
    (["diffusion.task_loss.weight=0.1"], "full-delta adapters only"),
    (["adapter=full", "diffusion.task_loss.weight=0.1",
      "diffusion.scheduler.prediction_type=epsilon"], "prediction_type=sample"),
    (["adapter=full", "diffusion.task_loss.weight=-1"], "diffusion.task_loss.weight=-1"),
    (["adapter=full", "diffusion.task_loss.weight=0.1", "diffusion.task_loss.pairs=64"],
     "more than its pool"),
    (["adapter=full", "diffusion.task_loss.weight=0.1", "diffusion.task_loss.pool=999"],
     "more than data.n_train"),
    (["adapter=full", "diffusion.task_loss.every=0"], "diffusion.task_loss.every=0"),
])
def test_a_task_loss_that_cannot_work_is_a_config_error(overrides, message):
    from weightgen.config_checks import check_config

    with pytest.raises(ConfigError, match=message):
        check_config(compose_config(overrides))


def test_the_task_loss_is_off_by_default_and_composes_with_the_bench():
    from weightgen.config_checks import check_config

    assert compose_config().diffusion.task_loss.weight == 0
    check_config(compose_config(["experiment=bench", "diffusion.task_loss.weight=0.1"]))


# A full-delta run small enough to build in seconds: what the task loss is for.
FULL_DELTA_RUN = ["tokenizer.basis=pca", "tokenizer.block_size=16",
                  "denoiser=mlp", "denoiser.hidden_dim=32", "denoiser.depth=1",
                  "diffusion.steps=6", "diffusion.val_every=6", "diffusion.val_concepts=1",
                  "diffusion.lr_scheduler.num_warmup_steps=1", "logger=csv",
                  "trainer.log_every_n_steps=1"]
TASK_ON = ["diffusion.task_loss.weight=0.1", "diffusion.task_loss.pool=8",
           "diffusion.task_loss.every=2"]


@pytest.mark.slow
def test_the_generator_stage_trains_through_the_gan_and_records_it(tmp_path, photos_once):
    import csv
    import json
    from pathlib import Path

    from helpers import TINY, shared_minilm

    from weightgen.stages.dataset import build_weight_dataset
    from weightgen.stages.train_generator import train_weight_generator
    from weightgen.stages.workspace import Workspace

    def tiny_workspace(artifacts, *overrides):
        """The tiny run with full-delta adapters (TINY's LoRA and its rank left out)."""
        tiny = [o for o in TINY if not o.startswith("adapter")] + ["adapter=full"]
        return Workspace(compose_config([*tiny, f"paths.artifacts={artifacts}", *overrides]),
                         text_encoder=shared_minilm())

    build_weight_dataset(tiny_workspace(tmp_path, *FULL_DELTA_RUN))
    ws = tiny_workspace(tmp_path, *FULL_DELTA_RUN, *TASK_ON)
    assert "skipped" not in train_weight_generator(ws)
    folder = Path(ws.cfg.paths.generator_dir)
    identity = json.loads((folder / "generator.json").read_text())["identity"]
    assert identity["diffusion"]["task_loss"] == {
        "weight": 0.1, "diffusion_weight": 1.0, "concepts": 2, "pairs": 4, "pool": 8,
        "timestep": "last", "every": 2}
    rows = list(csv.DictReader(next(folder.glob("logs/**/metrics.csv")).open()))
    task = [float(r["train/task_l1"]) for r in rows if r.get("train/task_l1")]
    assert task and all(0 < value < 2 for value in task)
    assert train_weight_generator(ws)["skipped"]  # the same setting: up to date
    off = train_weight_generator(tiny_workspace(tmp_path, *FULL_DELTA_RUN))  # another: retrains
    assert "skipped" not in off
    identity = json.loads((folder / "generator.json").read_text())["identity"]
    assert "task_loss" not in identity["diffusion"]
