"""GAN networks, the two adapter kinds, and the pix2pix LightningModule."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import compose_config
from torch.utils.data import DataLoader

from weightgen.data.datamodule import ConceptPairsDataset
from weightgen.gan.adapters import FullDeltaAdapter, LoRAAdapter
from weightgen.gan.discriminator import PatchDiscriminator
from weightgen.gan.evaluate import evaluate, generate
from weightgen.gan.generator import E2GANGenerator
from weightgen.gan.module import GANModule
from weightgen.gan.training_options import gan_training_options
from weightgen.training import make_trainer

TEXT_DIM = 8


def tiny_generator(seed: int = 0, **kwargs) -> E2GANGenerator:
    torch.manual_seed(seed)
    return E2GANGenerator(**{"ngf": 4, "text_dim": TEXT_DIM, "heads": 2} | kwargs)


def inputs(n: int = 2, size: int = 16, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, size, size, generator=gen) * 2 - 1
    tokens = torch.randn(n, 3, TEXT_DIM, generator=gen)
    mask = torch.tensor([[True, True, False]] * n)
    return image, tokens, mask


def randomized(state: dict[str, torch.Tensor], seed: int = 5) -> dict[str, torch.Tensor]:
    """An adapter state of the same layout with every entry random (LoRA B no longer zero)."""
    gen = torch.Generator().manual_seed(seed)
    return {k: 0.1 * torch.randn(v.shape, generator=gen) for k, v in state.items()}


def adam_step(generator, adapter) -> None:
    optimizer = torch.optim.Adam(adapter.trainable_parameters(generator), lr=1e-2)
    image, tokens, mask = inputs()
    F.l1_loss(generator(image, tokens, mask), -image).backward()
    optimizer.step()


# --- networks ------------------------------------------------------------------------------


@pytest.mark.parametrize("long_skip", [True, False])
def test_generator_output_shape_and_range(long_skip):
    generator = tiny_generator(long_skip=long_skip)
    image, tokens, mask = inputs(size=24)
    out = generator(image * 50, tokens, mask)  # extreme inputs still land in tanh's range
    assert out.shape == (2, 3, 24, 24)
    assert out.abs().max() <= 1.0 and torch.isfinite(out).all()


def test_generator_rejects_a_size_off_its_stride():
    image, tokens, mask = inputs(size=18)
    with pytest.raises(ValueError, match=r"\(18, 18\) is not a multiple of the generator's stride 4"):
        tiny_generator()(image, tokens, mask)


def test_generator_empty_prompt_gives_no_nan():
    image, tokens, _ = inputs()
    out = tiny_generator()(image, tokens, torch.zeros(2, 3, dtype=torch.bool))
    assert torch.isfinite(out).all()


def test_generator_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        tiny_generator(heads=3)


def test_generator_uses_the_text():
    generator = tiny_generator()
    image, tokens, mask = inputs()
    assert not torch.allclose(generator(image, tokens, mask), generator(image, -tokens, mask))


def test_patch_discriminator_scores_patches():
    discriminator = PatchDiscriminator(ndf=4, n_layers=2)
    image, _, _ = inputs(size=32)
    assert discriminator(image, image).shape == (2, 1, 6, 6)


# --- adapters ------------------------------------------------------------------------------

ADAPTERS = {
    "lora": lambda: LoRAAdapter(rank=2, init_seed=3),
    "full": lambda: FullDeltaAdapter(targets=[r"head\..*", r"transformer\.fc1\..*"], init_seed=3),
}


@pytest.mark.parametrize("kind", ADAPTERS)
def test_only_adapter_weights_train_and_the_base_stays(kind):
    adapter = ADAPTERS[kind]()
    generator = adapter.attach(tiny_generator())
    trainable = {n for n, p in generator.named_parameters() if p.requires_grad}
    if kind == "lora":
        assert trainable and all("lora_" in n for n in trainable)
        assert any(n.startswith("down1.") for n in trainable)
    else:
        assert trainable == {"head.weight", "head.bias", "transformer.fc1.weight",
                             "transformer.fc1.bias"}
    frozen_before = {n: p.clone() for n, p in generator.named_parameters() if n not in trainable}
    trained_before = {n: p.clone() for n, p in generator.named_parameters() if n in trainable}
    adam_step(generator, adapter)
    params = dict(generator.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen_before.items())
    assert any(not torch.equal(params[n], v) for n, v in trained_before.items())
    assert any(v.abs().sum() > 0 for v in adapter.state(generator).values())


@pytest.mark.parametrize("kind", ADAPTERS)
def test_standard_init_gives_exactly_the_base_output(kind):
    base = tiny_generator()
    image, tokens, mask = inputs()
    expected = base(image, tokens, mask)
    adapter = ADAPTERS[kind]()
    generator = adapter.attach(copy.deepcopy(base))
    assert torch.equal(generator(image, tokens, mask), expected)
    standard = adapter.standard_state()
    assert standard.keys() == adapter.state(generator).keys()
    if kind == "full":
        assert all(not v.any() for v in standard.values())
    else:
        assert all(not v.any() for k, v in standard.items() if "lora_B" in k)
        assert all(v.any() for k, v in standard.items() if "lora_A" in k)


@pytest.mark.parametrize("kind", ADAPTERS)
def test_standard_init_is_the_same_for_every_concept(kind):
    """Seeded by init_seed, not by the global RNG: all adapters share one coordinate system."""
    first = ADAPTERS[kind]()
    first.attach(tiny_generator())
    torch.manual_seed(123)
    second = ADAPTERS[kind]()
    second.attach(tiny_generator())
    assert all(torch.equal(v, second.standard_state()[k]) for k, v in first.standard_state().items())


@pytest.mark.parametrize("kind", ADAPTERS)
def test_merged_state_dict_reproduces_base_plus_adapter(kind):
    adapter = ADAPTERS[kind]()
    generator = adapter.attach(tiny_generator())
    state = randomized(adapter.standard_state())
    adapter.load_state(generator, state)
    # (base + delta) - base is delta up to float rounding for the full kind
    assert all(torch.allclose(v, state[k], rtol=0, atol=1e-6)
               for k, v in adapter.state(generator).items())
    image, tokens, mask = inputs()
    expected = generator(image, tokens, mask)
    plain = tiny_generator(seed=99)
    plain.load_state_dict(adapter.merged_state_dict(generator))  # strict: same keys as a plain one
    assert torch.allclose(plain(image, tokens, mask), expected, atol=1e-5)
    assert not torch.allclose(expected, tiny_generator()(image, tokens, mask), atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (experiments/gpu/check.sh)")
@pytest.mark.parametrize("kind", ADAPTERS)
def test_adapter_states_are_cpu_data_while_the_generator_is_on_a_gpu(kind):
    """A trainer moves the generator to its GPU after the adapter attached, and the store's
    checkpoints read the adapter there, mid-training: states stay CPU data."""
    adapter = ADAPTERS[kind]()
    generator = adapter.attach(tiny_generator()).cuda()
    state = randomized(adapter.standard_state())
    adapter.load_state(generator, state)
    read = adapter.state(generator)
    assert {v.device.type for v in read.values()} == {"cpu"}
    assert all(torch.allclose(v, state[k], rtol=0, atol=1e-6) for k, v in read.items())
    assert {v.device.type for v in adapter.merged_state_dict(generator).values()} == {"cpu"}


@pytest.mark.parametrize("kind", ADAPTERS)
def test_load_state_rejects_other_layouts(kind):
    adapter = ADAPTERS[kind]()
    generator = adapter.attach(tiny_generator())
    state = adapter.standard_state()
    key = sorted(state)[0]
    with pytest.raises(ValueError, match=r"missing \[.*\], unexpected \['other.weight'\]"):
        adapter.load_state(generator, {k: v for k, v in state.items() if k != key}
                           | {"other.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=rf"adapter tensor {key}: shape \(1, 1\)"):
        adapter.load_state(generator, state | {key: torch.zeros(1, 1)})


def test_lora_rank_and_targets_are_honoured():
    adapter = LoRAAdapter(rank=3, targets=[r"down1\.0"], rank_pattern={"down1.0": 2})
    generator = adapter.attach(tiny_generator())
    state = adapter.state(generator)
    assert set(state) == {"down1.0.lora_A.weight", "down1.0.lora_B.weight"}
    assert state["down1.0.lora_A.weight"].shape[0] == 2


def test_adapter_matching_no_layer_is_an_error():
    with pytest.raises(ValueError, match="matched no layer of the generator"):
        LoRAAdapter(targets=["nothing_here"]).attach(tiny_generator())
    with pytest.raises(RuntimeError, match="attach the adapter"):
        LoRAAdapter().standard_state()


# --- the LightningModule -------------------------------------------------------------------


def test_gan_module_argument_errors():
    tokens, mask = torch.zeros(1, 3, TEXT_DIM), torch.ones(1, 3, dtype=torch.bool)
    options = gan_training_options(compose_config().gan)
    with pytest.raises(ValueError, match="needs a discriminator"):
        GANModule(tiny_generator(), None, tokens, mask, **options | {"gan_weight": 1.0})
    with pytest.raises(ValueError, match="unknown gan.loss.gan_mode 'wgan'"):
        GANModule(tiny_generator(), PatchDiscriminator(4, 2), tokens, mask,
                  **options | {"gan_mode": "wgan"})


def test_the_ddp_trainer_steps_the_gan_module():
    """One GAN step is two backward passes (discriminator, then generator), and the first leaves
    the generator's weights without a gradient: `trainer=ddp` must let DDP find unused weights
    (one CPU process with gloo; on a GPU the quickstart's base GAN stopped at its first step)."""
    sources, tokens, mask = inputs(n=8)
    cfg = compose_config(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=1"])
    module = GANModule(tiny_generator(), PatchDiscriminator(ndf=4, n_layers=2), tokens[:1],
                       mask[:1], **gan_training_options(cfg.gan))
    loader = DataLoader(ConceptPairsDataset(sources, (-sources).unsqueeze(0), flip=False),
                        batch_size=4)
    trainer = make_trainer(cfg.trainer, max_steps=2, val_every=None)
    try:
        trainer.fit(module, loader)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert trainer.global_step == 2


@pytest.mark.parametrize(
    ("gan_weight", "with_adapter"), [(0.0, False), (1.0, False), (1.0, True)],
    ids=["l1_only", "gan", "gan_lora"],
)
def test_tiny_overfit_lowers_the_l1_loss(gan_weight, with_adapter):
    gen = torch.Generator().manual_seed(0)
    sources = torch.rand(8, 3, 16, 16, generator=gen) * 2 - 1
    targets = (-sources).unsqueeze(0)  # one concept: invert
    tokens, mask = torch.randn(1, 3, TEXT_DIM, generator=gen), torch.ones(1, 3, dtype=torch.bool)
    generator = tiny_generator()
    adapter = LoRAAdapter(rank=4) if with_adapter else None
    if adapter is not None:
        generator = adapter.attach(generator)
    base = {n: p.clone() for n, p in generator.named_parameters() if not p.requires_grad}
    discriminator = PatchDiscriminator(ndf=4, n_layers=2) if gan_weight else None
    cfg = compose_config(["gan.optimizer.lr=1e-2", "gan.lr_scheduler.decay=constant"])
    module = GANModule(generator, discriminator, tokens, mask, adapter=adapter,
                       **gan_training_options(cfg.gan) | {"gan_weight": gan_weight})
    loader = DataLoader(ConceptPairsDataset(sources, targets, flip=True), batch_size=4,
                        shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    before = evaluate(generator, sources, targets[0], tokens[0], mask[0])
    l1_before = F.l1_loss(generate(generator, sources, tokens[0], mask[0]), targets[0])
    trainer = make_trainer(cfg.trainer, max_steps=20, val_every=None)
    trainer.fit(module, loader)
    assert trainer.global_step == 20  # one step = one generator update, also with a discriminator
    l1_after = F.l1_loss(generate(generator, sources, tokens[0], mask[0]), targets[0])
    assert l1_after < 0.85 * l1_before
    assert evaluate(generator, sources, targets[0], tokens[0], mask[0]).psnr > before.psnr
    params = dict(generator.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in base.items())
