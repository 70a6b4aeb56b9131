"""Ridge regression to adapter weights, closed form, as weights over the training rows; its
regularisation chosen by closed-form leave-one-group-out or on validation rows.

The bench's ridge controls map a vector (a concept's example pairs', or a prompt's) to an
adapter. An adapter has up to millions of numbers and the training set tens to hundreds of rows,
so the [d, p] map is never formed: with an unpenalised intercept the prediction for a query x is
a weighted sum of the training targets,

    y(x) = sum_i w_i(x) y_i,   w(x) = 1/n + (K + lam I)^-1 Xc (x - mean)     (dual, K = Xc Xc^T)
                               w(x) = 1/n + Xc (Xc^T Xc + lam I)^-1 (x - mean)   (primal)

(Xc: the centred inputs; the weights sum to 1), solved in whichever space is smaller. The
regulariser is given relative to the inputs' scale, lam = alpha * mean_i ||x_i - mean||^2, so one
grid of ``alpha`` serves standardised example vectors and unit-norm sentence vectors alike.

Errors need only the targets' Gram matrix G = Yc Yc^T ([n, n], Yc: the targets minus any one
vector, e.g. their mean; the weights sum to 1, so it cancels). Leave-one-group-out is exact in
closed form for this linear smoother: the residuals of group g's rows predicted without them are
(I - H_gg)^-1 (y_g - yhat_g), with H the in-sample weights. Groups matter when several rows share
a target (a concept's phrasings): leaving out one phrasing while its concept's others stay would
reward memorising the concept. The left-out fits keep the full data's lam (alpha is relative to
the full data's scale), as the closed form computes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

LEAVE_ONE_GROUP_OUT = "leave_one_group_out"
VALIDATION = "validation"


class RidgeMap:
    """Ridge regression (unpenalised intercept) from ``inputs`` [n, d] at relative strength
    ``alpha``; :meth:`weights` gives each query's weights over the n training rows."""

    def __init__(self, inputs: torch.Tensor, alpha: float):
        if alpha <= 0:
            raise ValueError(f"alpha={alpha}: ridge needs a positive regularisation")
        x = inputs.to(torch.float64)
        self.n, dim = x.shape
        self.mean = x.mean(0)
        self.centred = x - self.mean
        scale = float(self.centred.pow(2).sum(1).mean())
        self.lam = alpha * (scale if scale > 0 else 1.0)
        self.primal = dim < self.n
        gram = self.centred.T @ self.centred if self.primal else self.centred @ self.centred.T
        self.system = gram + self.lam * torch.eye(gram.shape[0], dtype=torch.float64)

    def weights(self, queries: torch.Tensor) -> torch.Tensor:
        """[q, d] queries -> [q, n] float64 weights over the training rows (each row sums to 1)."""
        offset = queries.to(torch.float64) - self.mean
        if self.primal:
            coefficients = torch.linalg.solve(self.system, offset.T).T @ self.centred.T
        else:
            coefficients = torch.linalg.solve(self.system, self.centred @ offset.T).T
        return coefficients + 1.0 / self.n


@dataclass
class ValidationRows:
    """Rows outside the training set to choose ``alpha`` on: their inputs, and their targets as
    inner products with the training rows' targets (the same vector subtracted from both)."""

    inputs: torch.Tensor  # [m, d]
    cross: torch.Tensor  # [n, m]: <yc_i, yc_v> for training row i, validation row v
    norms: torch.Tensor  # [m]: ||yc_v||^2


@dataclass
class AlphaSelection:
    alpha: float
    method: str  # LEAVE_ONE_GROUP_OUT or VALIDATION
    errors: dict[float, float]  # alpha -> mean squared error per row (summed over the targets)


def group_out_error(inputs: torch.Tensor, gram: torch.Tensor, groups: Sequence[int],
                    alpha: float) -> float:
    """Mean over rows of the squared error of each group's rows predicted by the ridge map fitted
    without that group (closed form; ``gram`` the targets' [n, n] Gram matrix)."""
    fit = RidgeMap(inputs, alpha)
    residual_map = torch.eye(fit.n, dtype=torch.float64) - fit.weights(inputs)
    residual_gram = residual_map @ gram.to(torch.float64) @ residual_map.T
    group_of = torch.as_tensor(list(groups))
    total = 0.0
    for group in torch.unique(group_of):
        rows = torch.nonzero(group_of == group).flatten()
        inverse = torch.linalg.inv(residual_map[rows][:, rows])
        total += float(torch.trace(inverse @ residual_gram[rows][:, rows] @ inverse.T))
    return total / fit.n


def validation_error(inputs: torch.Tensor, gram: torch.Tensor, validation: ValidationRows,
                     alpha: float) -> float:
    """Mean over validation rows of the squared error of their predicted targets."""
    weights = RidgeMap(inputs, alpha).weights(validation.inputs)  # [m, n]
    gram, cross = gram.to(torch.float64), validation.cross.to(torch.float64)
    errors = ((weights @ gram) * weights).sum(1) - 2 * (weights * cross.T).sum(1) \
        + validation.norms.to(torch.float64)
    return float(errors.mean())


def select_alpha(inputs: torch.Tensor, gram: torch.Tensor, alphas: Sequence[float],
                 groups: Sequence[int] | None = None,
                 validation: ValidationRows | None = None) -> AlphaSelection:
    """The ``alpha`` of the grid with the least error: on ``validation`` rows when given, else
    leave-one-group-out over the training rows (``groups``: each row's group; None: each row its
    own). Among errors equal up to rounding (relative 1e-9) the largest alpha, the smoothest map,
    wins."""
    if not alphas:
        raise ValueError("select_alpha needs at least one alpha")
    if validation is not None:
        method = VALIDATION
        errors = {float(a): validation_error(inputs, gram, validation, a) for a in alphas}
    else:
        method = LEAVE_ONE_GROUP_OUT
        groups = range(inputs.shape[0]) if groups is None else groups
        errors = {float(a): group_out_error(inputs, gram, groups, a) for a in alphas}
    least = min(errors.values())
    best = max(a for a, error in errors.items() if error <= least + 1e-9 * abs(least))
    return AlphaSelection(best, method, errors)


def centred_products(rows: torch.Tensor, columns: torch.Tensor, centre: torch.Tensor,
                     chunk: int = 65536) -> torch.Tensor:
    """[n, m] float64 inner products of ``rows`` [n, p] and ``columns`` [m, p], each minus
    ``centre`` [p], accumulated over chunks of the p numbers (the inputs stay in their own
    precision): the Gram matrix of the targets, or their products with validation targets."""
    products = torch.zeros(rows.shape[0], columns.shape[0], dtype=torch.float64)
    for start in range(0, rows.shape[1], chunk):
        part = slice(start, start + chunk)
        products += ((rows[:, part] - centre[part]).to(torch.float64)
                     @ (columns[:, part] - centre[part]).to(torch.float64).T)
    return products
