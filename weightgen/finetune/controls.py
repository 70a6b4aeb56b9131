"""Controls that see what the weight generator sees: adapters retrieved or regressed from the
generator's own inputs, to tell what it adds to a lookup or a linear map (issue 23).

Each control is a set of weights over the training concepts' final adapters (the rows the
generator trains on), and its adapter is their weighted sum: the nearest concept's (one-hot), the
mean of the k nearest, or ridge regression's weights (``weightgen.weights.ridge``: they sum to 1
and may be negative). The inputs are the generator's: a concept's example vector (the same k
pairs, frozen base-GAN encoder and standardisation) or its prompt's pooled text vector.
:class:`~weightgen.finetune.inits.InitSources` builds them; this module holds the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch

from weightgen.concepts.spec import Concept
from weightgen.weights.ridge import (
    LEAVE_ONE_GROUP_OUT,
    RidgeMap,
    ValidationRows,
    centred_products,
    select_alpha,
)


@dataclass
class ControlInputs:
    """What the controls need beyond the init sources: their ``bench.controls`` knobs, the run's
    held-out concepts (``denoised_examples_shuffled`` deranges their pairs), its validation
    concepts (the ridge maps choose alpha on them; none: leave-one-concept-out) and every
    training phrasing of each training concept (``ridge_text_init``'s rows). The choice on the
    example pairs (``pairs_choice``) reads its candidates and generator samples from here too,
    the ensembles their members (``ensembles``: init kind -> the kinds it averages).
    ``n_concepts``: the training subset the controls read (``diffusion.data.n_concepts``; None:
    every training concept), so a stored bench run of a control made on another subset is rerun."""

    k_blend: int
    ridge_alphas: Sequence[float]
    seed: int
    choice_candidates: Sequence[str]
    choice_samples: int
    ensembles: Mapping[str, Sequence[str]]
    heldout: Sequence[str]
    validation: Sequence[Concept]
    training_phrasings: Callable[[], dict[str, tuple[str, ...]]]
    n_concepts: int | None = None


@dataclass
class TrainingAdapters:
    """The training concepts' final adapters as one float32 matrix [n, p], a row per concept."""

    concepts: list[str]
    matrix: torch.Tensor
    layout: list[tuple[str, torch.Size]] = field(repr=False)

    @classmethod
    def stack(cls, concepts: list[str], states: list[dict[str, torch.Tensor]]) -> TrainingAdapters:
        layout = [(key, states[0][key].shape) for key in sorted(states[0])]
        return cls(list(concepts), torch.stack([flatten(s, layout) for s in states]), layout)

    def combine(self, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """The adapter sum_i weights[i] * adapter_i, as a state dict."""
        flat = weights.to(torch.float64) @ self.matrix.to(torch.float64)
        state, start = {}, 0
        for key, shape in self.layout:
            size = shape.numel()
            state[key] = flat[start:start + size].reshape(shape).to(self.matrix.dtype)
            start += size
        return state

    @cached_property
    def centre(self) -> torch.Tensor:
        return self.matrix.mean(0)

    @cached_property
    def gram(self) -> torch.Tensor:
        """[n, n] inner products of the centred adapters."""
        return centred_products(self.matrix, self.matrix, self.centre)

    def validation_targets(self, states: list[dict[str, torch.Tensor]]
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Other adapters as ridge validation targets: ([n, m] products with the training
        adapters, [m] squared norms), all centred on the training adapters' mean."""
        others = torch.stack([flatten(s, self.layout) for s in states])
        return (centred_products(self.matrix, others, self.centre),
                torch.diagonal(centred_products(others, others, self.centre)))


def flatten(state: dict[str, torch.Tensor], layout: list[tuple[str, torch.Size]]) -> torch.Tensor:
    """A state dict as one vector, its tensors in ``layout`` order (shapes checked)."""
    for key, shape in layout:
        if state[key].shape != shape:
            raise ValueError(f"adapter tensor {key} has shape {tuple(state[key].shape)}, the "
                             f"training adapters {tuple(shape)}")
    return torch.cat([state[key].reshape(-1).float() for key, _ in layout])


def nearest_weights(query: torch.Tensor, vectors: torch.Tensor, k: int
                    ) -> tuple[torch.Tensor, list[int], list[float]]:
    """Equal weights on the ``k`` rows of ``vectors`` [n, F] nearest to ``query`` [F] (Euclidean),
    those rows nearest first and their distances."""
    if not 1 <= k <= vectors.shape[0]:
        raise ValueError(f"cannot blend the {k} nearest of {vectors.shape[0]} training adapters")
    distances = torch.linalg.vector_norm(vectors.to(torch.float64) - query.to(torch.float64),
                                         dim=1)
    order = torch.argsort(distances, stable=True)[:k]
    weights = torch.zeros(vectors.shape[0], dtype=torch.float64)
    weights[order] = 1.0 / k
    return weights, order.tolist(), distances[order].tolist()


@dataclass
class RidgeControl:
    """A ridge map from one vector per row to the adapters of the rows' concepts, its alpha
    chosen on validation concepts or by leave-one-concept-out."""

    map: RidgeMap
    row_concept: torch.Tensor  # [rows]: the index in TrainingAdapters of each row's concept
    concepts: int
    fit: dict  # alpha, how it was chosen, each alpha's error, the validation concepts

    @classmethod
    def fitted(cls, inputs: torch.Tensor, row_concept: Sequence[int], adapters: TrainingAdapters,
               alphas: Sequence[float], validation: Sequence[str] = (),
               validation_inputs: torch.Tensor | None = None,
               validation_states: list[dict[str, torch.Tensor]] | None = None) -> RidgeControl:
        """Fitted on ``inputs`` [rows, d] (row i is of concept ``row_concept[i]``); alpha chosen on
        the ``validation`` concepts (their inputs [m, d] and their own adapters) when given."""
        rows = torch.as_tensor(list(row_concept))
        gram = adapters.gram[rows][:, rows]
        held = None
        if validation:
            cross, norms = adapters.validation_targets(validation_states)
            held = ValidationRows(validation_inputs, cross[rows], norms)
        selection = select_alpha(inputs, gram, alphas, groups=rows.tolist(), validation=held)
        numbers = adapters.matrix.shape[1]
        fit = {"alpha": selection.alpha,
               "selection": ("leave_one_concept_out" if selection.method == LEAVE_ONE_GROUP_OUT
                             else selection.method),
               "validation_concepts": list(validation),
               # mean squared error per adapter number of each alpha's held-out predictions
               "errors": {f"{alpha:g}": error / numbers
                          for alpha, error in selection.errors.items()}}
        return cls(RidgeMap(inputs, selection.alpha), rows, len(adapters.concepts), fit)

    def concept_weights(self, query: torch.Tensor) -> torch.Tensor:
        """[n concepts] weights of the adapters for one query [d] (a concept's rows summed)."""
        row_weights = self.map.weights(query[None])[0]
        return torch.zeros(self.concepts, dtype=torch.float64).index_add_(0, self.row_concept,
                                                                            row_weights)
