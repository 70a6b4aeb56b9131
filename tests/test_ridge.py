"""The ridge map of the bench's controls (weightgen/weights/ridge.py) on synthetic data: the
closed form against least squares, the closed-form leave-one-group-out against refits, and the
choice of alpha on constructed cases."""

from __future__ import annotations

import pytest
import torch

from weightgen.weights.ridge import (
    LEAVE_ONE_GROUP_OUT,
    VALIDATION,
    RidgeMap,
    ValidationRows,
    centred_products,
    group_out_error,
    select_alpha,
    validation_error,
)


def synthetic(rows: int, dim: int, targets: int = 5, seed: int = 0, noise: float = 0.1):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(rows, dim, generator=generator, dtype=torch.float64)
    mapping = torch.randn(dim, targets, generator=generator, dtype=torch.float64)
    outputs = (inputs @ mapping + 3.0
               + noise * torch.randn(rows, targets, generator=generator, dtype=torch.float64))
    return inputs, outputs


def lstsq_prediction(inputs, outputs, lam, queries):
    """Ridge with an unpenalised intercept by least squares on the augmented system."""
    mean_x, mean_y = inputs.mean(0), outputs.mean(0)
    centred = inputs - mean_x
    augmented = torch.cat([centred, lam ** 0.5 * torch.eye(inputs.shape[1], dtype=inputs.dtype)])
    padded = torch.cat([outputs - mean_y, torch.zeros(inputs.shape[1], outputs.shape[1],
                                                      dtype=outputs.dtype)])
    coefficients = torch.linalg.lstsq(augmented, padded).solution
    return mean_y + (queries - mean_x) @ coefficients


@pytest.mark.parametrize("rows,dim", [(20, 6), (6, 20)], ids=["primal", "dual"])
def test_the_weights_give_the_least_squares_ridge_solution(rows, dim):
    inputs, outputs = synthetic(rows, dim)
    queries = synthetic(4, dim, seed=1)[0]
    fit = RidgeMap(inputs, alpha=0.3)
    assert fit.primal == (dim < rows)
    assert fit.lam == pytest.approx(0.3 * float((inputs - inputs.mean(0)).pow(2).sum(1).mean()))
    weights = fit.weights(queries)
    assert torch.allclose(weights.sum(1), torch.ones(4, dtype=torch.float64))
    expected = lstsq_prediction(inputs, outputs, fit.lam, queries)
    assert torch.allclose(weights @ outputs, expected, atol=1e-9)


def test_alpha_is_relative_to_the_inputs_scale():
    inputs, outputs = synthetic(10, 4)
    queries = synthetic(3, 4, seed=2)[0]
    small = RidgeMap(inputs, 0.5).weights(queries)
    scaled = RidgeMap(inputs * 1000.0, 0.5).weights(queries * 1000.0)
    assert torch.allclose(small, scaled, atol=1e-9)


@pytest.mark.parametrize("rows,dim", [(12, 4), (8, 15)], ids=["primal", "dual"])
@pytest.mark.parametrize("grouped", [False, True], ids=["one-row-groups", "groups"])
def test_the_closed_form_leave_one_group_out_matches_refits(rows, dim, grouped):
    inputs, outputs = synthetic(rows, dim)
    groups = [i // 3 for i in range(rows)] if grouped else list(range(rows))
    centre = outputs[0]  # any one vector: the weights sum to 1
    gram = centred_products(outputs, outputs, centre)
    for alpha in (0.01, 0.3, 3.0):
        closed = group_out_error(inputs, gram, groups, alpha)
        refits = refit_error(inputs, outputs, groups, RidgeMap(inputs, alpha).lam)
        assert closed == pytest.approx(refits, rel=1e-8)


def refit_error(inputs, outputs, groups, lam) -> float:
    """Leave-one-group-out by least squares once per group without it, at the full data's
    lambda (what the closed form computes: alpha is relative to the full data's scale)."""
    groups = torch.as_tensor(groups)
    total = 0.0
    for group in torch.unique(groups):
        out = groups == group
        predicted = lstsq_prediction(inputs[~out], outputs[~out], lam, inputs[out])
        total += float((predicted - outputs[out]).pow(2).sum())
    return total / inputs.shape[0]


def test_the_validation_error_is_the_prediction_error_of_the_validation_rows():
    inputs, outputs = synthetic(10, 3)
    held_inputs, held_outputs = synthetic(4, 3, seed=5)
    centre = outputs.mean(0)
    rows = ValidationRows(held_inputs, centred_products(outputs, held_outputs, centre),
                          torch.diagonal(centred_products(held_outputs, held_outputs, centre)))
    error = validation_error(inputs, centred_products(outputs, outputs, centre), rows, 0.2)
    predicted = RidgeMap(inputs, 0.2).weights(held_inputs) @ outputs
    assert error == pytest.approx(float((predicted - held_outputs).pow(2).sum(1).mean()))


def test_selection_picks_little_ridge_for_a_linear_map_and_much_for_noise():
    alphas = [0.001, 0.1, 10.0, 1000.0]
    inputs, linear = synthetic(30, 4, noise=0.0)
    gram = centred_products(linear, linear, linear.mean(0))
    chosen = select_alpha(inputs, gram, alphas)
    assert chosen.method == LEAVE_ONE_GROUP_OUT and chosen.alpha == 0.001
    assert list(chosen.errors) == alphas and chosen.errors[0.001] < 1e-4
    noise = torch.randn(30, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    chosen = select_alpha(inputs, centred_products(noise, noise, noise.mean(0)), alphas)
    assert chosen.alpha == 1000.0  # no signal: the best prediction is the mean


def test_selection_on_validation_rows_follows_them_not_the_training_rows():
    """Training targets are pure noise (leave-one-out wants the mean), but the validation rows
    lie on the map the small ridge fits: validation picks small, leave-one-out large."""
    alphas = [0.001, 1000.0]
    inputs, outputs = synthetic(6, 10, noise=0.0)  # dual; 6 rows interpolated exactly
    held_inputs = synthetic(3, 10, seed=4)[0]
    held_outputs = RidgeMap(inputs, 1e-9).weights(held_inputs) @ outputs
    centre = outputs.mean(0)
    rows = ValidationRows(held_inputs, centred_products(outputs, held_outputs, centre),
                          torch.diagonal(centred_products(held_outputs, held_outputs, centre)))
    gram = centred_products(outputs, outputs, centre)
    chosen = select_alpha(inputs, gram, alphas, validation=rows)
    assert chosen.method == VALIDATION and chosen.alpha == 0.001
    noise = torch.randn(6, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert select_alpha(inputs, centred_products(noise, noise, noise.mean(0)),
                        alphas).alpha == 1000.0


def test_equal_errors_keep_the_largest_alpha_and_a_bad_grid_is_refused():
    inputs = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    outputs = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    gram = centred_products(outputs, outputs, outputs.mean(0))
    # two rows: without one, the other is all there is, whatever alpha
    chosen = select_alpha(inputs, gram, [0.5, 0.1, 2.0])
    errors = list(chosen.errors.values())
    assert chosen.alpha == 2.0 and errors == pytest.approx([errors[0]] * 3)
    with pytest.raises(ValueError, match="at least one alpha"):
        select_alpha(inputs, gram, [])
    with pytest.raises(ValueError, match="positive"):
        RidgeMap(inputs, 0.0)
