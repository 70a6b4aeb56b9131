"""The arithmetic of the controls that see what the generator sees (weightgen/finetune/controls.py)
and the inputs of the generator's ablations: the shuffled pairs' derangement, the empty prompt.
The controls on a trained run: tests/test_examples.py."""

from __future__ import annotations

import pytest
import torch
from helpers import shared_minilm

from weightgen.diffusion.examples import fixed_derangement
from weightgen.diffusion.sampler import empty_prompt
from weightgen.finetune.controls import RidgeControl, TrainingAdapters, nearest_weights
from weightgen.weights.ridge import RidgeMap


def states(count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [{"b.weight": torch.randn(3, 2, generator=generator),
             "a.bias": torch.randn(4, generator=generator)} for _ in range(count)]


def test_training_adapters_round_trip_and_combine_exactly():
    adapters = TrainingAdapters.stack(["x", "y", "z"], states(3))
    assert adapters.matrix.shape == (3, 10) and [k for k, _ in adapters.layout] == ["a.bias",
                                                                                   "b.weight"]
    for index, state in enumerate(states(3)):
        one_hot = torch.zeros(3, dtype=torch.float64)
        one_hot[index] = 1.0
        combined = adapters.combine(one_hot)
        assert all(torch.equal(combined[k], state[k]) for k in state)  # the adapter, bit for bit
    mean = adapters.combine(torch.full((3,), 1 / 3, dtype=torch.float64))
    expected = torch.stack([s["b.weight"] for s in states(3)]).mean(0)
    assert torch.allclose(mean["b.weight"], expected, atol=1e-6)
    centred = adapters.matrix - adapters.matrix.mean(0)
    assert torch.allclose(adapters.gram, (centred @ centred.T).double(), atol=1e-5)


def test_an_adapter_of_another_shape_is_refused():
    adapters = TrainingAdapters.stack(["x"], states(1))
    other = {"b.weight": torch.zeros(2, 3), "a.bias": torch.zeros(4)}
    with pytest.raises(ValueError, match=r"b.weight has shape \(2, 3\), the training adapters "
                                         r"\(3, 2\)"):
        adapters.validation_targets([other])


def test_nearest_weights_are_equal_on_the_k_nearest_rows():
    vectors = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 1.0], [0.0, 5.0]])
    weights, order, distances = nearest_weights(torch.tensor([1.0, 0.0]), vectors, 2)
    assert order == [0, 2] and distances == pytest.approx([1.0, 1.0])  # a tie: the lower row
    assert weights.tolist() == [0.5, 0.0, 0.5, 0.0]
    assert nearest_weights(torch.tensor([2.9, 0.1]), vectors, 1)[1] == [1]
    with pytest.raises(ValueError, match="cannot blend the 5 nearest of 4"):
        nearest_weights(torch.zeros(2), vectors, 5)


def test_a_ridge_control_sums_each_concepts_rows():
    """Rows of one concept (its phrasings) share its adapter: the weights per concept are the
    sums of its rows' weights, and the adapter their weighted sum."""
    adapters = TrainingAdapters.stack(["x", "y", "z"], states(3))
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(7, 4, generator=generator)
    rows = [0, 0, 1, 1, 1, 2, 2]
    control = RidgeControl.fitted(inputs, rows, adapters, [0.01, 1.0])
    assert control.fit["selection"] == "leave_one_concept_out"
    assert set(control.fit["errors"]) == {"0.01", "1"} and control.fit["validation_concepts"] == []
    query = torch.randn(4, generator=generator)
    weights = control.concept_weights(query)
    row_weights = RidgeMap(inputs, control.fit["alpha"]).weights(query[None])[0]
    assert torch.allclose(weights, torch.stack([row_weights[:2].sum(), row_weights[2:5].sum(),
                                                row_weights[5:].sum()]))
    assert float(weights.sum()) == pytest.approx(1.0)


def test_a_ridge_control_chooses_alpha_on_validation_concepts_when_given():
    adapters = TrainingAdapters.stack(["x", "y", "z"], states(3))
    inputs = torch.eye(3)
    held = states(1, seed=7)
    control = RidgeControl.fitted(inputs, [0, 1, 2], adapters, [0.01, 1.0], ["v"],
                                  torch.tensor([[0.5, 0.5, 0.0]]), held)
    assert control.fit["selection"] == "validation" and control.fit["validation_concepts"] == ["v"]
    for alpha, error in control.fit["errors"].items():  # mean squared error per adapter number
        predicted = adapters.combine(RidgeMap(inputs, float(alpha)).weights(
            torch.tensor([[0.5, 0.5, 0.0]]))[0])
        expected = sum(float((predicted[k] - held[0][k]).pow(2).sum()) for k in held[0]) / 10
        assert error == pytest.approx(expected, rel=1e-5)


def test_the_derangement_moves_every_concept_and_is_seeded():
    ids = ["d", "a", "c", "b", "e"]
    mapping = fixed_derangement(ids, seed=3)
    assert sorted(mapping) == sorted(ids) and sorted(mapping.values()) == sorted(ids)
    assert all(source != target for source, target in mapping.items())
    assert fixed_derangement(list(reversed(ids)), seed=3) == mapping  # order does not matter
    assert any(fixed_derangement(ids, seed) != mapping for seed in range(4, 10))
    assert fixed_derangement(["a", "b"], seed=0) == {"a": "b", "b": "a"}
    with pytest.raises(ValueError, match="at least 2"):
        fixed_derangement(["a"], seed=0)


def test_the_empty_prompt_is_the_null_condition_not_the_encoding_of_an_empty_string():
    encoder = shared_minilm()
    null = empty_prompt(encoder.max_length, encoder.dim)
    assert null.tokens.shape == (1, encoder.max_length, encoder.dim)
    assert not null.mask.any() and not null.tokens.any() and not null.pooled.any()
    encoded = encoder.encode([""])  # its start and end tokens, unmasked: not "no text"
    assert int(encoded.mask.sum()) == 2 and encoded.pooled.norm() > 0.5
