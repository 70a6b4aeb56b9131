"""A regression the weight generator corrects: ``diffusion.prior`` (issue 24).

A closed-form ridge map from the example vector to the adapter's weights starts new concepts
above the diffusion generator that reads the same vector. With a prior the generator contains
that map: the denoiser learns the correction to the ridge prediction from the same condition,

    adapter tokens = prior(condition) + denoised residual,

so a denoiser that outputs zero (the MLP's zero-initialised head, before training) generates
exactly the ridge prediction. The map lives in the generator's own target space, the tokens the
denoiser predicts (with ``tokenizer.basis=pca`` the whitened coordinates). The tokenisation is
affine and ridge weights sum to 1, so the prediction decodes to the same weighted sum of the
training adapters (as the tokenizer reproduces them) as a weight-space ridge map with those
weights; only the error that chooses alpha is measured in tokens.

* ``examples_ridge`` reads the example pairs' vector: a training concept's row is the mean of its
  standardised bank (the pairs it was trained on), as the bench's ``ridge_examples_init`` fits.
* ``text_ridge`` reads the pooled sentence vector: one row per text the generator trains on
  (``diffusion.data.phrasings``) of each training concept, the text-only counterpart.

A row's target is the mean of its concept's training tokens (its final adapter's with
``diffusion.data.checkpoints=last``). Alpha is the grid's (``diffusion.prior_alphas``, relative to
the inputs' scale as in :mod:`weightgen.weights.ridge`) with the least closed-form
leave-one-concept-out error; the saved map is fitted on every training concept.

Training subtracts **out-of-fold** predictions: a ridge map reproduces much of its own rows, so
residuals against the full fit would be smaller than those of a new concept and the denoiser
would learn too small a correction. The training concepts are split into
``diffusion.prior_folds`` folds (a seeded permutation; at most one concept per fold), and each
concept's items subtract the map fitted without its fold, applied to the item's own condition
(its drawn k pairs or phrasing). Sampling adds the full map's prediction.

An all-zero input vector is the null condition (no examples given, dropped ones, the empty prompt
of prompt dropout and guidance): the prior there is the mean of the training concepts' targets.
So text-only sampling from a generator with an ``examples_ridge`` prior starts from the mean
adapter and the text-read correction, and guidance mixes whole adapters (the unconditional
branch's prior is the mean: :func:`~weightgen.diffusion.sampler.sample_blocks`).

The saved map (``prior.safetensors`` beside the generator) is the concept weights of a query,
``bias + x @ slope`` ([C] and [d, C]), and the concepts' targets [C, num_blocks, block_size];
``generator.json`` records ``prior``: kind, alpha, input dimension, concepts and how alpha was
chosen, checked on load (:func:`check_prior_entry`, :meth:`RidgePrior.from_state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from weightgen.diffusion.condition import Condition
from weightgen.errors import ConfigError
from weightgen.weights.ridge import RidgeMap, centred_products, select_alpha

PRIORS = ("examples_ridge", "text_ridge")  # diffusion.prior; null: no prior


def check_prior(kind: str | None) -> str | None:
    """``kind`` (``diffusion.prior``) if it is null or one of :data:`PRIORS`, else a ConfigError."""
    if kind is not None and kind not in PRIORS:
        raise ConfigError(f"diffusion.prior={kind!r} is not allowed: use null (no prior) or one "
                          f"of {', '.join(PRIORS)}")
    return kind


def prior_input(kind: str, condition: Condition) -> Tensor:
    """[B, d]: what a prior of ``kind`` reads of ``condition`` (zeros: the null condition)."""
    if kind == "examples_ridge":
        if condition.examples is None:
            raise ValueError("the examples_ridge prior reads the example vector: pass examples "
                             "(zeros for none)")
        examples = condition.examples
        return examples.mean(1) if examples.dim() == 3 else examples  # a set: its mean vector
    if condition.pooled is None:
        raise ValueError("the text_ridge prior reads the pooled sentence vector: pass pooled")
    return condition.pooled


def concept_weights(vectors: Tensor, bias: Tensor, slope: Tensor) -> Tensor:
    """[B, C] weights of the training concepts' targets for ``vectors`` [B, d]: ``bias + x @
    slope`` (``bias`` [C] or [B, C], ``slope`` [d, C] or [B, d, C]); 1/C each for an all-zero
    vector (the null condition: the targets' mean)."""
    weights = bias + (vectors.unsqueeze(1) @ slope).squeeze(1)
    given = vectors.ne(0).any(dim=-1, keepdim=True)
    return torch.where(given, weights, torch.full_like(weights, 1.0 / weights.shape[-1]))


class RidgePrior(nn.Module):
    """The fitted map: ``forward(condition)`` [B, num_blocks, block_size] is the prediction the
    generator corrects. ``fit`` describes how it was fitted (recorded in ``generator.json``)."""

    def __init__(self, kind: str, alpha: float, bias: Tensor, slope: Tensor, targets: Tensor,
                 fit: dict | None = None):
        super().__init__()
        self.kind, self.alpha, self.fit = check_prior(kind), float(alpha), dict(fit or {})
        # buffers: they follow the generator to its device; saved by the bundle, not by Lightning
        self.register_buffer("bias", bias.float().contiguous(), persistent=False)  # [C]
        self.register_buffer("slope", slope.float().contiguous(), persistent=False)  # [d, C]
        self.register_buffer("targets", targets.float().contiguous(), persistent=False)

    @property
    def input_dim(self) -> int:
        return self.slope.shape[0]

    def weights(self, condition: Condition) -> Tensor:
        return concept_weights(prior_input(self.kind, condition), self.bias, self.slope)

    def forward(self, condition: Condition) -> Tensor:
        weights = self.weights(condition)
        return (weights @ self.targets.flatten(1)).view(-1, *self.targets.shape[1:])

    def entry(self) -> dict:
        """What ``generator.json`` records of it."""
        return {"kind": self.kind, "alpha": self.alpha, "input_dim": self.input_dim,
                "concepts": self.targets.shape[0]} | self.fit

    def state(self) -> dict[str, Tensor]:
        return {"bias": self.bias, "slope": self.slope, "targets": self.targets}

    @classmethod
    def from_state(cls, entry: dict, state: dict[str, Tensor], num_blocks: int,
                   block_size: int) -> RidgePrior:
        """The saved prior, its tensors checked against its ``entry`` (:func:`check_prior_entry`)
        and the tokenizer's ``num_blocks`` x ``block_size``; a ValueError names a mismatch."""
        concepts, dim = entry["concepts"], entry["input_dim"]
        expected = {"bias": (concepts,), "slope": (dim, concepts),
                    "targets": (concepts, num_blocks, block_size)}
        found = {name: tuple(tensor.shape) for name, tensor in state.items()}
        if found != expected:
            raise ValueError(f"prior.safetensors holds {found}, but generator.json's prior and "
                             f"tokenizer say {expected}")
        fit = {k: v for k, v in entry.items() if k not in ("kind", "alpha", "input_dim",
                                                            "concepts")}
        return cls(entry["kind"], entry["alpha"], state["bias"], state["slope"],
                   state["targets"], fit)


def check_prior_entry(entry: dict, meta: dict) -> None:
    """``generator.json``'s ``prior`` entry as data (a ValueError names what is wrong): a known
    kind, a positive alpha, an input dimension the denoiser reads (the example vector's or the
    text's) and as many concepts as the generator was trained on."""
    if not isinstance(entry, dict) or entry.get("kind") not in PRIORS:
        raise ValueError(f"its prior {entry!r} names no prior kind ({', '.join(PRIORS)})")
    alpha = entry.get("alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ValueError(f"its prior's alpha {alpha!r} is not a positive number")
    denoiser = meta.get("denoiser") or {}
    reads = "example_dim" if entry["kind"] == "examples_ridge" else "text_dim"
    if entry.get("input_dim") != denoiser.get(reads) or not entry.get("input_dim"):
        raise ValueError(f"its {entry['kind']} prior reads {entry.get('input_dim')!r} numbers, "
                         f"the denoiser's {reads} is {denoiser.get(reads)!r}")
    if entry.get("concepts") != len(meta.get("train_concepts") or ()):
        raise ValueError(f"its prior is fitted on {entry.get('concepts')!r} concepts, the "
                         f"generator on {len(meta.get('train_concepts') or ())}")


def training_inputs(kind: str, bank: Tensor | None, pooled: Tensor | None,
                    phrasings: Tensor) -> tuple[Tensor, Tensor]:
    """The prior's fitting rows: (inputs [rows, d], each row's concept [rows]). ``bank``
    [C, bank, F]: the standardised example bank (``examples_ridge``: one row per concept, its
    mean); ``pooled`` [T, D] and ``phrasings`` [C, P] (text indices, -1 padded): the texts the
    generator trains on (``text_ridge``: one row per text of each concept)."""
    if kind == "examples_ridge":
        if bank is None:
            raise ConfigError("diffusion.prior=examples_ridge reads the example pairs: set "
                              "diffusion.examples.k > 0 (e.g. diffusion.examples.k=8)")
        return bank.mean(1), torch.arange(bank.shape[0])
    if pooled is None:
        raise ValueError("diffusion.prior=text_ridge needs the pooled vectors of the texts")
    concept, column = torch.nonzero(phrasings >= 0, as_tuple=True)
    return pooled[phrasings[concept, column]], concept


def concept_targets(blocks: Tensor, concept_index: Tensor, concepts: int) -> Tensor:
    """[C, num_blocks, block_size]: the mean of each concept's training tokens ``blocks``
    [R, num_blocks, block_size] (row r of concept ``concept_index[r]``)."""
    sums = torch.zeros(concepts, *blocks.shape[1:], dtype=torch.float64)
    sums.index_add_(0, concept_index, blocks.to(torch.float64))
    counts = torch.bincount(concept_index, minlength=concepts).to(torch.float64)
    return (sums / counts.view(-1, 1, 1)).float()


def affine_weights(inputs: Tensor, row_concept: Tensor, concepts: int,
                   alpha: float) -> tuple[Tensor, Tensor]:
    """The ridge map (``weights.ridge.RidgeMap``, fitted on ``inputs`` [n, d]) as concept weights
    affine in the query: (bias [C], slope [d, C]), a query's weights ``bias + x @ slope`` (a
    concept without rows gets weight 0)."""
    fit = RidgeMap(inputs, alpha)
    at_mean = fit.weights(fit.mean[None])[0]  # [n]
    slope = fit.weights(fit.mean + torch.eye(fit.mean.shape[0], dtype=torch.float64)) - at_mean
    to_concepts = nn.functional.one_hot(row_concept, concepts).to(torch.float64)  # [n, C]
    return (at_mean - fit.mean @ slope) @ to_concepts, slope @ to_concepts


class OutOfFoldPrior(nn.Module):
    """What training subtracts: each training concept's items read the map fitted without the
    concepts of its fold (``fold_of`` [C]); ``bias`` [K, C], ``slope`` [K, d, C] per fold."""

    def __init__(self, kind: str, bias: Tensor, slope: Tensor, targets: Tensor, fold_of: Tensor):
        super().__init__()
        self.kind = check_prior(kind)
        self.register_buffer("bias", bias.float().contiguous(), persistent=False)
        self.register_buffer("slope", slope.float().contiguous(), persistent=False)
        self.register_buffer("targets", targets.float().contiguous(), persistent=False)
        self.register_buffer("fold_of", fold_of.long(), persistent=False)

    def forward(self, condition: Condition, concept: Tensor, block_index: Tensor) -> Tensor:
        """[B, block_size]: block ``block_index[i]`` of item i's prior (its concept's fold's map
        on its condition)."""
        fold = self.fold_of[concept]
        weights = concept_weights(prior_input(self.kind, condition), self.bias[fold],
                                  self.slope[fold])
        return torch.einsum("bc,cbs->bs", weights, self.targets[:, block_index])


@dataclass
class PriorFit:
    prior: RidgePrior  # on every training concept: what sampling adds
    out_of_fold: OutOfFoldPrior  # what training subtracts


def fit_prior(kind: str, inputs: Tensor, row_concept: Tensor, targets: Tensor,
              alphas: Sequence[float], folds: int, seed: int) -> PriorFit:
    """The prior of ``kind`` fitted on rows ``inputs`` [n, d] of the training concepts
    ``row_concept`` [n] with the concepts' ``targets`` [C, num_blocks, block_size]: alpha chosen
    from ``alphas`` by closed-form leave-one-concept-out, ``folds`` folds (at most C) drawn
    with ``seed``."""
    concepts = targets.shape[0]
    if concepts < 2:
        raise ConfigError(f"diffusion.prior={kind} needs at least 2 training concepts (its "
                          f"training residuals are out-of-fold), the run has {concepts}; train "
                          f"on more concepts (concepts.n_train) or set diffusion.prior=null")
    flat = targets.flatten(1)  # the rows' Gram from the concepts' (any centre cancels)
    gram = centred_products(flat, flat, flat.mean(0))[row_concept][:, row_concept]
    selection = select_alpha(inputs, gram, alphas, groups=row_concept.tolist())
    folds = min(int(folds), concepts)
    fold_of = torch.randperm(concepts, generator=torch.Generator().manual_seed(seed)) % folds
    maps = []
    for fold in range(folds):
        kept = fold_of[row_concept] != fold
        maps.append(affine_weights(inputs[kept], row_concept[kept], concepts, selection.alpha))
    numbers = flat.shape[1]
    fit = {"folds": folds, "selection": "leave_one_concept_out",
           # mean squared error per token number of each alpha's left-out predictions
           "errors": {f"{alpha:g}": error / numbers for alpha, error in selection.errors.items()}}
    bias, slope = affine_weights(inputs, row_concept, concepts, selection.alpha)
    return PriorFit(
        RidgePrior(kind, selection.alpha, bias, slope, targets, fit),
        OutOfFoldPrior(kind, torch.stack([b for b, _ in maps]), torch.stack([s for _, s in maps]),
                       targets, fold_of))
