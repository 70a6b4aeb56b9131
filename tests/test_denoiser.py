"""Denoisers: forward contract, conditioning paths, gradients, a tiny overfit, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.mlp import MLPDenoiser
from weightgen.diffusion.unet1d import UNet1DDenoiser

BLOCK, NUM_BLOCKS, TEXT_DIM, TEXT_LEN = 64, 6, 24, 5
CONF = Path(__file__).resolve().parents[1] / "conf" / "denoiser"


def tiny_unet() -> UNet1DDenoiser:
    return UNet1DDenoiser(
        BLOCK, NUM_BLOCKS, TEXT_DIM, channels=(16, 32), patch_size=8, heads=2,
        emb_dim=32, context_dim=16, mlp_ratio=2,
    )  # fmt: skip


def tiny_mlp() -> MLPDenoiser:
    return MLPDenoiser(BLOCK, NUM_BLOCKS, TEXT_DIM, hidden_dim=64, depth=2)


MODELS = {"unet1d": tiny_unet, "mlp": tiny_mlp}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a shared 2-core machine run ~15x slower with 2 OpenMP threads than with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def inputs(batch: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, BLOCK, generator=gen)
    timesteps = torch.randint(0, 1000, (batch,), generator=gen)
    block_index = torch.randint(0, NUM_BLOCKS, (batch,), generator=gen)
    text = torch.randn(batch, TEXT_LEN, TEXT_DIM, generator=gen)
    mask = torch.ones(batch, TEXT_LEN, dtype=torch.bool)
    mask[:, -2:] = False  # padded prompt tail
    return x, timesteps, block_index, text, mask


def with_random_head(model: torch.nn.Module) -> torch.nn.Module:
    """The output layer starts at zero (output == 0 for every input); randomise it to probe
    which inputs the rest of the network listens to."""
    torch.manual_seed(1)
    torch.nn.init.normal_(model.output.weight, std=0.1)
    return model


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_and_zero_initial_output(name):
    model = MODELS[name]()
    x, timesteps, block_index, text, mask = inputs()
    out = model(x, timesteps, block_index, Condition(text, mask))
    assert out.shape == (4, BLOCK) and out.dtype == torch.float32
    assert torch.count_nonzero(out) == 0  # zero-initialised final layer: stable start


@pytest.mark.parametrize("name", MODELS)
def test_output_depends_on_prompt_block_index_and_timestep(name):
    model = with_random_head(MODELS[name]()).eval()
    x, timesteps, block_index, text, mask = inputs()
    base = model(x, timesteps, block_index, Condition(text, mask))
    changed = {
        "text": model(x, timesteps, block_index, Condition(text.flip(0), mask)),
        "masked-out text": model(x, timesteps, block_index,
                                 Condition(text, torch.zeros_like(mask))),
        "block_index": model(x, timesteps, (block_index + 1) % NUM_BLOCKS,
                             Condition(text, mask)),
        "timestep": model(x, timesteps.flip(0) + 7, block_index, Condition(text, mask)),
        "x": model(x.flip(0), timesteps, block_index, Condition(text, mask)),
    }
    for what, out in changed.items():
        assert not torch.allclose(out, base, atol=1e-6), f"output ignores {what}"
    # tokens hidden by the mask must not matter
    garbage = text.clone()
    garbage[:, -2:] = 1e3
    torch.testing.assert_close(model(x, timesteps, block_index, Condition(garbage, mask)), base)


@pytest.mark.parametrize("name", MODELS)
def test_empty_prompt_gives_finite_output_and_gradients(name):
    model = with_random_head(MODELS[name]())
    x, timesteps, block_index, text, mask = inputs()
    out = model(x, timesteps, block_index, Condition(text, torch.zeros_like(mask)))
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_trains(name):
    model = MODELS[name]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, timesteps, block_index, text, mask = inputs(batch=8)
    block_index = torch.arange(8) % NUM_BLOCKS  # every embedding row is used
    for _ in range(2):  # step 1 moves the zero head; then gradients reach everything
        optimizer.zero_grad()
        (model(x, timesteps, block_index, Condition(text, mask)) - x).square().mean().backward()
        optimizer.step()
    assert torch.count_nonzero(model.output.weight) > 0
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert silent == [], f"parameters without gradient: {silent}"


@pytest.mark.parametrize("name", MODELS)
def test_tiny_overfit_needs_text_and_block_index(name):
    """x0 prediction for 2 prompts x 2 block indices: four targets that only text + index tell
    apart, at fixed noise levels with fresh noise each step. The loss must fall far below the
    loss of the best input-independent guess (the targets' mean)."""
    torch.manual_seed(0)
    model = MODELS[name]()
    gen = torch.Generator().manual_seed(0)
    targets = torch.randn(4, BLOCK, generator=gen)
    prompts = torch.randn(2, TEXT_LEN, TEXT_DIM, generator=gen)
    prompt_of = torch.tensor([0, 0, 1, 1])
    block_index = torch.tensor([0, 1, 0, 1])
    text, mask = prompts[prompt_of], torch.ones(4, TEXT_LEN, dtype=torch.bool)
    levels = torch.tensor([100, 400, 700, 999])
    alpha_bar = torch.cos(levels / 1000 * torch.pi / 2).square()
    x0 = targets.repeat(4, 1)
    timesteps = levels.repeat_interleave(4)
    a = alpha_bar.repeat_interleave(4)[:, None]
    args = (block_index.repeat(4), Condition(text.repeat(4, 1, 1), mask.repeat(4, 1)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn_like(x0)
        loss = (model(noisy, timesteps, *args) - x0).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trivial = (targets - targets.mean(0)).square().mean()
    assert loss.item() < 0.1 * trivial.item(), f"loss {loss.item():.3f} vs trivial {trivial:.3f}"


def test_bad_sizes_are_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="divisible by denoiser.patch_size"):
        UNet1DDenoiser(96, NUM_BLOCKS, TEXT_DIM, channels=(16, 32, 64), patch_size=16)
    with pytest.raises(ValueError, match="heads"):
        UNet1DDenoiser(BLOCK, NUM_BLOCKS, TEXT_DIM, channels=(18, 32), patch_size=8, heads=4)
    x, timesteps, block_index, text, mask = inputs()
    for model in (tiny_unet(), tiny_mlp()):
        with pytest.raises(ValueError, match="tokens must be"):
            model(x, timesteps, block_index, Condition(text[..., :-1], mask))
        with pytest.raises(ValueError, match=f"x must be \\[B, {BLOCK}\\]"):
            model(x[:, :-1], timesteps, block_index, Condition(text, mask))


@pytest.mark.parametrize(("config", "cls"), [("unet1d", UNet1DDenoiser), ("mlp", MLPDenoiser)])
def test_configs_instantiate_with_sizes_filled_in(config, cls):
    cfg = OmegaConf.load(CONF / f"{config}.yaml")
    assert OmegaConf.is_missing(cfg, "block_size") and OmegaConf.is_missing(cfg, "num_blocks")
    model = instantiate(cfg, block_size=256, num_blocks=3, text_dim=TEXT_DIM)
    assert isinstance(model, cls)
    x = torch.randn(2, 256)
    out = model(x, torch.tensor([0, 999]), torch.tensor([0, 2]),
                Condition(torch.randn(2, 3, TEXT_DIM), torch.ones(2, 3, dtype=torch.bool)))
    assert out.shape == (2, 256)


# --- issue 13: diffusion.conditioning = tokens | pooled | tokens+pooled ------------------------

CONDITIONINGS = ("tokens", "pooled", "tokens+pooled")


def conditioned(name: str, conditioning: str) -> torch.nn.Module:
    if name == "mlp":
        return MLPDenoiser(BLOCK, NUM_BLOCKS, TEXT_DIM, hidden_dim=64, depth=2,
                           conditioning=conditioning)
    return UNet1DDenoiser(BLOCK, NUM_BLOCKS, TEXT_DIM, channels=(16, 32), patch_size=8, heads=2,
                          emb_dim=32, context_dim=16, mlp_ratio=2, conditioning=conditioning)


def pooled_of(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MiniLM's sentence vector: the L2-normalised masked mean (weightgen/text/minilm.py)."""
    weights = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((text * weights).sum(1) / weights.sum(1), dim=-1)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("name", MODELS)
def test_every_conditioning_trains_every_parameter_and_keeps_the_empty_prompt_finite(
    name, conditioning
):
    model = conditioned(name, conditioning)
    assert model.conditioning == conditioning
    x, timesteps, block_index, text, mask = inputs(batch=8)
    block_index = torch.arange(8) % NUM_BLOCKS
    pooled = pooled_of(text, mask)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        out = model(x, timesteps, block_index, Condition(text, mask, pooled))
        (out - x).square().mean().backward()
        optimizer.step()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert silent == [], f"parameters without gradient: {silent}"
    empty = model(x, timesteps, block_index, Condition(text, mask, pooled).null())
    assert empty.shape == (8, BLOCK) and torch.isfinite(empty).all()


@pytest.mark.parametrize("name", MODELS)
def test_pooled_conditioning_reads_the_pooled_vector_only(name):
    """Two prompts with one sentence vector (other tokens, another order, another length) give the
    same output under `pooled`, and different ones under `tokens`; another vector changes it."""
    model = with_random_head(conditioned(name, "pooled")).eval()
    x, timesteps, block_index, text, mask = inputs()
    pooled = pooled_of(text, mask)
    other_text = torch.randn_like(text)
    other_mask = torch.ones_like(mask)  # another length too
    base = model(x, timesteps, block_index, Condition(text, mask, pooled))
    for same in (Condition(other_text, other_mask, pooled), Condition(text.flip(1), mask, pooled)):
        torch.testing.assert_close(model(x, timesteps, block_index, same), base, rtol=0, atol=0)
    other_vector = Condition(text, mask, pooled.flip(0))
    assert not torch.allclose(model(x, timesteps, block_index, other_vector), base, atol=1e-6)
    tokens_model = with_random_head(conditioned(name, "tokens")).eval()
    assert not torch.allclose(
        tokens_model(x, timesteps, block_index, Condition(other_text, other_mask)),
        tokens_model(x, timesteps, block_index, Condition(text, mask)), atol=1e-6)
    with pytest.raises(ValueError, match=r"reads Condition fields it was not given: pass pooled "
                                         rf"\[B, {TEXT_DIM}\]"):
        model(x, timesteps, block_index, Condition(text, mask))
    with pytest.raises(ValueError, match=f"pooled must be \\[4, {TEXT_DIM}\\]"):
        model(x, timesteps, block_index, Condition(text, mask, pooled[:, :-1]))


@pytest.mark.parametrize("name", MODELS)
def test_tokens_ignores_the_pooled_vector_and_tokens_plus_pooled_reads_both(name):
    x, timesteps, block_index, text, mask = inputs()
    pooled = pooled_of(text, mask)
    tokens = with_random_head(conditioned(name, "tokens")).eval()
    base = tokens(x, timesteps, block_index, Condition(text, mask))
    torch.testing.assert_close(tokens(x, timesteps, block_index, Condition(text, mask, pooled * 5)),
                               base, rtol=0, atol=0)
    both = with_random_head(conditioned(name, "tokens+pooled")).eval()
    base = both(x, timesteps, block_index, Condition(text, mask, pooled))
    for what, out in {
        "pooled": both(x, timesteps, block_index, Condition(text, mask, pooled.flip(0))),
        "tokens": both(x, timesteps, block_index, Condition(text.flip(0), mask, pooled)),
    }.items():
        assert not torch.allclose(out, base, atol=1e-6), f"tokens+pooled ignores {what}"


@pytest.mark.parametrize("conditioning", ["pooled", "tokens+pooled"])
@pytest.mark.parametrize("name", MODELS)
def test_an_empty_prompt_reads_no_pooled_vector(name, conditioning):
    """An all-False mask is the empty prompt in every mode: whatever pooled vector comes with it,
    the denoiser reads zeros (what prompt dropout and guidance pass)."""
    model = with_random_head(conditioned(name, conditioning)).eval()
    x, timesteps, block_index, text, mask = inputs()
    empty = torch.zeros_like(mask)
    zeros = model(x, timesteps, block_index, Condition(text, empty, torch.zeros(4, TEXT_DIM)))
    torch.testing.assert_close(
        model(x, timesteps, block_index, Condition(text, empty, pooled_of(text, mask))), zeros)


def test_pooled_unet_has_no_cross_attention_and_tokens_keeps_the_old_parameters():
    pooled = conditioned("unet1d", "pooled")
    assert not any("cross" in n or n.startswith("text.") for n, _ in pooled.named_parameters())
    assert any(n.startswith("pooled.") for n, _ in pooled.named_parameters())
    for name in MODELS:  # the same state-dict keys as before the knob: old bundles still load
        torch.manual_seed(0)
        default = MODELS[name]()
        torch.manual_seed(0)
        tokens = conditioned(name, "tokens")
        assert default.state_dict().keys() == tokens.state_dict().keys()
        assert all(torch.equal(v, tokens.state_dict()[k]) for k, v in default.state_dict().items())
        assert not any(k.startswith("pooled.") for k in tokens.state_dict())


def test_an_unknown_conditioning_is_a_config_error():
    from weightgen.errors import ConfigError

    for name in MODELS:
        with pytest.raises(ConfigError, match=r"diffusion.conditioning='words'.*tokens, pooled, "
                                              r"tokens\+pooled"):
            conditioned(name, "words")


# --- issue 22: one Condition, read by one ConditionEncoder --------------------------------------

# The conditioning layers' state-dict keys of generators saved before the ConditionEncoder
# (tokens+pooled, example_dim > 0): a bundle on disk must load into today's denoisers.
OLD_CONDITION_KEYS = {"condition.block_embedding.weight", "condition.timestep_mlp.linear_1.bias",
                      "condition.timestep_mlp.linear_1.weight",
                      "condition.timestep_mlp.linear_2.bias",
                      "condition.timestep_mlp.linear_2.weight", "examples.bias", "examples.weight",
                      "pooled.bias", "pooled.weight"}
OLD_TEXT_KEYS = {"mlp": {"text.bias", "text.weight"},
                 "unet1d": {"text.null_token", "text.project.bias", "text.project.weight"}}


def with_everything(name: str) -> torch.nn.Module:
    if name == "mlp":
        return MLPDenoiser(BLOCK, NUM_BLOCKS, TEXT_DIM, hidden_dim=64, depth=2,
                           conditioning="tokens+pooled", example_dim=3)
    return UNet1DDenoiser(BLOCK, NUM_BLOCKS, TEXT_DIM, channels=(16, 32), patch_size=8,
                          emb_dim=32, context_dim=16, conditioning="tokens+pooled", example_dim=3)


@pytest.mark.parametrize("name", MODELS)
def test_both_denoisers_read_the_condition_through_the_shared_encoder_with_the_old_keys(name):
    from weightgen.diffusion.condition_encoder import ConditionEncoder

    model = with_everything(name)
    assert isinstance(model, ConditionEncoder)
    keys = {k for k in model.state_dict() if k.split(".")[0] in ("condition", "text", "pooled",
                                                                 "examples")}
    assert keys == OLD_CONDITION_KEYS | OLD_TEXT_KEYS[name]
    old_layout = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    fresh = with_everything(name)
    fresh.load_state_dict(old_layout)  # strict: every key of the old layout, nothing else
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in old_layout.items())


@pytest.mark.parametrize("name", MODELS)
def test_a_denoiser_names_the_condition_fields_it_was_not_given(name):
    model = with_everything(name)
    x, timesteps, block_index, text, mask = inputs()
    with pytest.raises(ValueError, match=r"conditioning=tokens\+pooled, example_dim=3\) reads "
                                         r"Condition fields it was not given: pass tokens "
                                         r"\[B, L, D\]; mask \[B, L\]; pooled \[B, 24\] "
                                         r"\(TextEmbedding.pooled\); examples \[B, 3\]"):
        model(x, timesteps, block_index, Condition())
    with pytest.raises(ValueError, match=r"mask must be \[4, 5\], got \[4, 4\]"):
        model(x, timesteps, block_index, Condition(text, mask[:, :-1], pooled_of(text, mask),
                                                   torch.zeros(4, 3)))


def test_a_condition_is_indexed_batched_and_emptied_field_by_field():
    tokens, mask = torch.randn(3, 5, 2), torch.ones(3, 5, dtype=torch.bool)
    condition = Condition(tokens, mask, examples=torch.randn(3, 4))
    assert len(condition) == 3 and condition.pooled is None
    rows = condition[torch.tensor([2, 0])]
    assert torch.equal(rows.tokens, tokens[[2, 0]]) and rows.pooled is None
    assert torch.equal(rows.examples, condition.examples[[2, 0]])
    one = condition[:1]
    expanded = one.expand(4)
    assert len(expanded) == 4 and torch.equal(expanded.tokens[3], tokens[0])
    with pytest.raises(ValueError, match="one-row Condition, got 3 rows"):
        condition.expand(4)
    repeated = condition.repeat_interleave(2)
    assert torch.equal(repeated.examples[1], condition.examples[0])
    assert torch.equal(repeated.examples[2], condition.examples[1])
    null = condition.null()
    assert not null.tokens.any() and not null.mask.any() and not null.examples.any()
    assert null.mask.dtype == torch.bool and null.pooled is None
    dropped = condition.dropped(torch.tensor([False, True, False]))
    assert not dropped.tokens[1].any() and not dropped.mask[1].any()
    assert not dropped.examples[1].any()
    assert torch.equal(dropped.tokens[[0, 2]], tokens[[0, 2]]) and dropped.mask[[0, 2]].all()
    with pytest.raises(ValueError, match="an empty Condition has no batch size"):
        len(Condition())
