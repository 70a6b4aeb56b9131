"""BlockTokenizer: exact round trips, block counts, layout checks, persistence, normalisation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from weightgen.weights.tokenizer import GROUPINGS, NORMALIZATIONS, BlockTokenizer

# Odd sizes on purpose: none is a multiple of 128, one is smaller than any block, one is larger.
SHAPES = {"up.lora_B": (37, 3), "down.lora_A": (5, 129), "attn.q.lora_A": (300,), "bias": (7,)}


def make_adapter(seed: int, shapes=SHAPES) -> dict[str, torch.Tensor]:
    """Random float32 adapter: tensor scales differ 1000x, a shared mean, some exact zeros."""
    gen = torch.Generator().manual_seed(seed)
    adapter = {}
    for index, (name, shape) in enumerate(shapes.items()):
        scale = 10.0 ** (index - 2)
        shared = torch.linspace(-1, 1, math.prod(shape)).reshape(shape) * scale
        adapter[name] = (shared + scale * torch.randn(shape, generator=gen)).float()
    adapter["up.lora_B"][0] = 0.0  # LoRA B starts at zero: zeros must survive exactly
    return adapter


TRAIN = [make_adapter(seed) for seed in range(6)]


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("grouping", GROUPINGS)
@pytest.mark.parametrize("block_size", [128, 256, 512])
def test_round_trip_is_bit_exact(block_size, grouping, normalization):
    tokenizer = BlockTokenizer(block_size, grouping, normalization).fit(TRAIN)
    unseen = make_adapter(99)
    unseen["down.lora_A"][1, :10] = 0.0  # zeros where the training mean is not zero
    for adapter in [TRAIN[0], unseen]:
        tokens = tokenizer.tokenize(adapter)
        assert tokens.shape == (tokenizer.num_blocks, block_size)
        assert tokens.dtype == torch.float64
        restored = tokenizer.detokenize(tokens)
        assert list(restored) == sorted(adapter)
        for name, value in adapter.items():
            assert restored[name].dtype == torch.float32
            assert torch.equal(restored[name], value), f"{name} not recovered exactly"


def test_round_trip_is_exact_for_extreme_values():
    tiny = torch.tensor([1e-40, -1e-45, 3.0e38, -2.5e-30, 0.0, 1.0])  # incl. float32 subnormals
    adapter = {"w": tiny}
    for normalization in ("none", "per_tensor"):
        tokenizer = BlockTokenizer(4, "sequential", normalization).fit([adapter])
        assert torch.equal(tokenizer.detokenize(tokenizer.tokenize(adapter))["w"], tiny)


def test_per_element_is_exact_down_to_the_documented_bound():
    """Exact for every value at least 2**-27 times its element's training mean (module doc)."""
    gen = torch.Generator().manual_seed(3)
    train = [{"w": 1.0 + 0.01 * torch.randn(20000, generator=gen)} for _ in range(4)]
    tokenizer = BlockTokenizer(256, "sequential", "per_element").fit(train)
    mean = tokenizer.state_dict()["element_mean"]
    ratio = 2.0 ** (-27 * torch.rand(20000, generator=gen, dtype=torch.float64))
    sign = torch.randn(20000, generator=gen, dtype=torch.float64).sign()
    values = (mean * ratio * sign).float()
    values[:100] = 0.0
    assert torch.equal(tokenizer.detokenize(tokenizer.tokenize({"w": values}))["w"], values)


def test_detokenize_ignores_padding_and_accepts_float32_blocks():
    tokenizer = BlockTokenizer(128, "layer_aligned", "per_element").fit(TRAIN)
    tokens = tokenizer.tokenize(TRAIN[1])
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    offsets, _ = tokenizer._plan()
    flat_mask = mask.view(-1)
    for offset, size in offsets:
        flat_mask[offset : offset + size] = True
    assert torch.all(tokens[~mask] == 0)
    noisy = tokens.clone()
    noisy[~mask] = 123.0  # garbage in padding must not matter
    restored = tokenizer.detokenize(noisy.float())
    for name, value in TRAIN[1].items():
        torch.testing.assert_close(restored[name], value, rtol=1e-5, atol=1e-6)


def test_num_blocks_for_both_rules():
    sizes = [math.prod(shape) for shape in SHAPES.values()]
    for block_size in (128, 256, 512):
        sequential = BlockTokenizer(block_size, "sequential", "none").fit(TRAIN)
        aligned = BlockTokenizer(block_size, "layer_aligned", "none").fit(TRAIN)
        assert sequential.num_blocks == math.ceil(sum(sizes) / block_size)
        assert aligned.num_blocks == sum(math.ceil(size / block_size) for size in sizes)
        assert aligned.num_blocks >= sequential.num_blocks
        assert sequential.num_values == aligned.num_values == sum(sizes)


def test_flattening_order_is_sorted_names_row_major_and_independent_of_dict_order():
    tokenizer = BlockTokenizer(16, "sequential", "none").fit(TRAIN)
    assert [name for name, _ in tokenizer.layout] == sorted(SHAPES)
    reordered = dict(reversed(list(TRAIN[2].items())))
    assert torch.equal(tokenizer.tokenize(reordered), tokenizer.tokenize(TRAIN[2]))
    first = sorted(SHAPES)[0]
    expected = TRAIN[2][first].reshape(-1)[:16].double()
    assert torch.equal(tokenizer.tokenize(TRAIN[2])[0], expected)


def test_block_tensor_ids():
    tokenizer = BlockTokenizer(128, "layer_aligned", "none").fit(TRAIN)
    names = [name for name, _ in tokenizer.layout]
    blocks_per_tensor = [math.ceil(math.prod(SHAPES[name]) / 128) for name in names]
    expected = torch.repeat_interleave(torch.arange(len(names)), torch.tensor(blocks_per_tensor))
    assert torch.equal(tokenizer.block_tensor_ids(), expected)
    sequential = BlockTokenizer(128, "sequential", "none").fit(TRAIN)
    ids = sequential.block_tensor_ids()
    assert ids.dtype == torch.long and ids.shape == (sequential.num_blocks,)
    assert ids[0] == 0 and ids[-1] <= len(names) - 1 and torch.all(ids.diff() >= 0)
    # the first value of block b sits in tensor ids[b]
    starts = torch.tensor([0] + [math.prod(SHAPES[n]) for n in names]).cumsum(0)
    for block, tensor_id in enumerate(ids.tolist()):
        assert starts[tensor_id] <= block * 128 < starts[tensor_id + 1]


def test_mismatched_adapter_is_rejected_naming_both_sides():
    tokenizer = BlockTokenizer().fit(TRAIN)
    wrong_shape = dict(TRAIN[0], bias=torch.zeros(8))
    with pytest.raises(ValueError, match=r"'bias' with shape \[7\].*'bias' with shape \[8\]"):
        tokenizer.tokenize(wrong_shape)
    missing = {k: v for k, v in TRAIN[0].items() if k != "up.lora_B"}
    with pytest.raises(
        ValueError, match="expected 'up.lora_B' with shape \\[37, 3\\], got nothing"
    ):
        tokenizer.tokenize(missing)
    with pytest.raises(ValueError, match="training adapter #1"):
        BlockTokenizer().fit([TRAIN[0], wrong_shape])
    with pytest.raises(ValueError, match="non-finite"):
        tokenizer.tokenize(dict(TRAIN[0], bias=torch.full((7,), float("nan"))))
    with pytest.raises(ValueError, match="shape"):
        tokenizer.detokenize(torch.zeros(tokenizer.num_blocks + 1, tokenizer.block_size))


def test_bad_rules_and_unfitted_use_are_rejected():
    with pytest.raises(ValueError, match="grouping"):
        BlockTokenizer(grouping="interleaved")
    with pytest.raises(ValueError, match="normalization"):
        BlockTokenizer(normalization="per_layer")
    with pytest.raises(ValueError, match="block_size"):
        BlockTokenizer(block_size=0)
    with pytest.raises(ValueError, match="not fitted"):
        BlockTokenizer().tokenize(TRAIN[0])
    with pytest.raises(ValueError, match="at least one"):
        BlockTokenizer().fit([])


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("grouping", GROUPINGS)
def test_state_round_trip_gives_identical_tokens(grouping, normalization):
    tokenizer = BlockTokenizer(128, grouping, normalization).fit(TRAIN)
    config = json.loads(json.dumps(tokenizer.config()))  # must survive JSON
    restored = BlockTokenizer.from_state(config, tokenizer.state_dict())
    assert restored.num_blocks == tokenizer.num_blocks
    assert torch.equal(restored.block_tensor_ids(), tokenizer.block_tensor_ids())
    unseen = make_adapter(7)
    assert torch.equal(restored.tokenize(unseen), tokenizer.tokenize(unseen))
    with pytest.raises(ValueError, match="keys"):
        BlockTokenizer.from_state(config, {**tokenizer.state_dict(), "extra": torch.zeros(1)})


def test_per_element_training_tokens_are_standardised():
    train = [make_adapter(seed) for seed in range(40)]
    tokenizer = BlockTokenizer(128, "sequential", "per_element").fit(train)
    values = torch.stack([tokenizer.tokenize(a).reshape(-1)[: tokenizer.num_values] for a in train])
    assert values.mean(0).abs().max() < 1e-9  # every element centred over the training set
    std = values.std(0, unbiased=False)
    varying = std > 0  # the LoRA-B row that is zero in every adapter stays exactly 0
    assert varying.sum() == tokenizer.num_values - 3
    assert torch.allclose(std[varying], torch.ones_like(std[varying]))
    assert torch.all(values[:, ~varying] == 0)


def test_per_tensor_equalises_tensor_scales_and_keeps_zero():
    tokenizer = BlockTokenizer(128, "layer_aligned", "per_tensor").fit(TRAIN)
    scales = tokenizer.state_dict()["tensor_scale"]
    assert scales.max() / scales.min() > 100  # raw scales span 1000x ...
    tokens = torch.stack([tokenizer.tokenize(a) for a in TRAIN])
    ids = tokenizer.block_tensor_ids()
    rms = [tokens[:, ids == t].square().sum().sqrt() for t in range(len(SHAPES))]
    counts = [math.prod(shape) * len(TRAIN) for _, shape in tokenizer.layout]
    normalised = torch.tensor([r / math.sqrt(c) for r, c in zip(rms, counts, strict=True)])
    assert torch.allclose(normalised, torch.ones(len(SHAPES), dtype=torch.float64))  # ... now 1
    zero_row = tokenizer.tokenize(TRAIN[0])
    assert torch.count_nonzero(zero_row) == tokenizer.num_values - 3  # the zeroed LoRA-B row


def test_constant_elements_do_not_divide_by_zero():
    constant = [{"w": torch.ones(5), "v": torch.zeros(3)} for _ in range(3)]
    for normalization in NORMALIZATIONS:
        tokenizer = BlockTokenizer(4, "sequential", normalization).fit(constant)
        tokens = tokenizer.tokenize({"w": torch.full((5,), 2.0), "v": torch.ones(3)})
        assert torch.isfinite(tokens).all()
        restored = tokenizer.detokenize(tokens)
        assert torch.equal(restored["w"], torch.full((5,), 2.0))


def test_default_config_instantiates_the_paper_settings():
    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/tokenizer/default.yaml")
    tokenizer = instantiate(cfg)
    assert isinstance(tokenizer, BlockTokenizer) and not tokenizer.is_fitted
    assert (tokenizer.block_size, tokenizer.grouping) == (256, "sequential")
    assert tokenizer.fit(TRAIN).num_blocks == math.ceil(tokenizer.num_values / 256)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_pca_basis_recovers_training_adapters_and_whitens_them(normalization):
    tokenizer = BlockTokenizer(4, "sequential", normalization, basis="pca").fit(TRAIN)
    rank = tokenizer.num_coefficients
    assert rank == len(TRAIN) - 1  # centring costs one dimension
    assert tokenizer.num_blocks == -(-rank // 4)
    tokens = torch.stack([tokenizer.tokenize(a).reshape(-1) for a in TRAIN])
    assert torch.all(tokens[:, rank:] == 0)  # padding
    coordinates = tokens[:, :rank]
    assert torch.allclose(coordinates.mean(0), torch.zeros(rank, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(coordinates.square().mean(0), torch.ones(rank, dtype=torch.float64), atol=1e-9)
    for adapter, row in zip(TRAIN, tokens, strict=True):
        restored = tokenizer.detokenize(row.view(tokenizer.num_blocks, 4))
        for name, value in adapter.items():
            assert torch.allclose(restored[name], value, atol=1e-5, rtol=1e-5), name


def test_pca_projects_unseen_adapters_onto_the_training_span():
    tokenizer = BlockTokenizer(8, "sequential", "none", basis="pca").fit(TRAIN[:3])
    unseen = make_adapter(42)
    projected = tokenizer.detokenize(tokenizer.tokenize(unseen))
    flat = torch.cat([projected[name].reshape(-1) for name in sorted(projected)]).double()
    # A projection is idempotent and never lengthens the distance to the training mean.
    again = tokenizer.detokenize(tokenizer.tokenize(projected))
    for name in projected:
        assert torch.allclose(again[name], projected[name], atol=1e-6)
    mean = tokenizer.state_dict()["pca_mean"]
    original = torch.cat([unseen[name].reshape(-1) for name in sorted(unseen)]).double()
    assert (flat - mean).norm() <= (original - mean).norm()
    assert not torch.allclose(flat, original)  # 3 adapters cannot span a random one


@pytest.mark.parametrize(("block_size", "basis_rank", "warned"), [
    (4, None, True),    # 5 coordinates: a full block and one of 4 in the second
    (2, None, False),   # 2 + 2 + 1: the last block is half full
    (8, None, False),   # one block
    (4, 4, False),      # cut to whole blocks, as the warning says
])
def test_a_thin_last_block_of_pca_coordinates_is_warned_with_the_fix(block_size, basis_rank,
                                                                      warned, caplog):
    """6 training adapters have 5 principal components; a last block less than half full holds
    only the smallest of them and is trained on as often as a full one."""
    BlockTokenizer(block_size, basis="pca", basis_rank=basis_rank).fit(TRAIN)
    thin = [r.getMessage() for r in caplog.records if "tokenizer.basis=pca" in r.getMessage()]
    assert bool(thin) == warned
    if warned:
        assert thin == ["tokenizer.basis=pca: 5 coordinates fill 2 blocks of 4, the last with "
                        "only 1 (the smallest components), which the denoiser trains on as often "
                        "as a full one; set tokenizer.basis_rank=4 (whole blocks) or "
                        "tokenizer.block_size=5 (one block)"]


def test_pca_rank_cap_state_round_trip_and_errors():
    tokenizer = BlockTokenizer(4, "sequential", "per_tensor", basis="pca", basis_rank=2).fit(TRAIN)
    assert tokenizer.num_coefficients == 2 and tokenizer.num_blocks == 1
    config = json.loads(json.dumps(tokenizer.config()))
    restored = BlockTokenizer.from_state(config, tokenizer.state_dict())
    unseen = make_adapter(7)
    assert torch.equal(restored.tokenize(unseen), tokenizer.tokenize(unseen))
    bad = tokenizer.state_dict() | {"pca_mean": torch.zeros(3)}
    with pytest.raises(ValueError, match="pca_mean"):
        BlockTokenizer.from_state(config, bad)
    with pytest.raises(ValueError, match="coefficients"):
        tokenizer.block_tensor_ids()
    with pytest.raises(ValueError, match="identical"):
        BlockTokenizer(4, basis="pca").fit([TRAIN[0], TRAIN[0]])
    with pytest.raises(ValueError, match="basis must be"):
        BlockTokenizer(4, basis="svd")
    with pytest.raises(ValueError, match="basis_rank"):
        BlockTokenizer(4, basis="pca", basis_rank=0)


@pytest.mark.parametrize(("basis", "normalization"), [("pca", "per_element"), ("pca", "none"),
                                                      ("none", "per_tensor"),
                                                      ("none", "per_element")])
def test_differentiable_detokenize_matches_detokenize_and_passes_gradients(basis, normalization):
    """The task loss backpropagates through it: the same adapter as detokenize (to float32
    rounding), float32, and a gradient on every token that decodes to a value."""
    tokenizer = BlockTokenizer(128, "sequential", normalization, basis=basis).fit(TRAIN)
    torch.manual_seed(0)
    blocks = torch.randn(tokenizer.num_blocks, 128, requires_grad=True)
    exact = tokenizer.detokenize(blocks)
    restored = tokenizer.detokenize_differentiable(blocks)
    assert list(restored) == list(exact)
    for name, value in exact.items():
        assert restored[name].dtype == torch.float32
        torch.testing.assert_close(restored[name], value, rtol=1e-5,
                                   atol=1e-6 * float(value.abs().max()))
    weights = {name: torch.randn_like(value) for name, value in restored.items()}
    sum((restored[name] * weights[name]).sum() for name in restored).backward()
    used = blocks.grad.reshape(-1)[: tokenizer.num_coefficients]
    assert torch.isfinite(blocks.grad).all() and (used != 0).all()
    assert not blocks.grad.reshape(-1)[tokenizer.num_coefficients:].any()  # padding decodes to nothing
