"""What the weight generator is conditioned on, as one object: :class:`Condition`.

The prompt's text (token states, their mask, the encoder's pooled sentence vector) and the
example pairs' vector travel together from where they are made (a prompt encoded by the text
encoder, a training item's drawn phrasing, a concept's example pairs) through the sampler, the
bundle, the training module and the task loss to the denoiser, which reads the parts its
``conditioning`` and ``example_dim`` use (:mod:`weightgen.diffusion.condition_encoder`). Adding
a kind of condition is one field here and its layer there.

Every field is batched (row i is item i) and optional: None is "not given" (a text-only caller
gives no examples; a ``tokens`` denoiser needs no pooled vector). :meth:`Condition.null` is the
empty condition that prompt dropout and classifier-free guidance use: zero tokens, an all-False
mask, a zero pooled vector and a zero example vector (no text, no examples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from weightgen.text.base import TextEmbedding


@dataclass(frozen=True, eq=False)  # no ==: fields are tensors
class Condition:
    """What the weight generator is conditioned on, one row per item (module docstring)."""

    tokens: Tensor | None = None  # [B, L, D] float: the text encoder's token states
    mask: Tensor | None = None  # [B, L] bool, True = real token; all-False: the empty prompt
    pooled: Tensor | None = None  # [B, D] float: the sentence vector (TextEmbedding.pooled)
    examples: Tensor | None = None  # [B, F] float: the example pairs' vector (zeros: none), or
    # [B, k, F]: the k pairs' standardised vectors (a set; the vector is their mean)

    @classmethod
    def of_text(cls, text: TextEmbedding, examples: Tensor | None = None) -> Condition:
        """Encoded prompts (tokens, mask and pooled vector) and, optionally, their examples."""
        return cls(text.tokens, text.mask, text.pooled, examples)

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Condition:
        return Condition(**{f.name: None if getattr(self, f.name) is None
                            else fn(getattr(self, f.name)) for f in fields(self)})

    def __len__(self) -> int:
        given = [getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None]
        if not given:
            raise ValueError("an empty Condition has no batch size: give at least one field")
        return given[0].shape[0]

    def __getitem__(self, index) -> Condition:
        """The rows ``index`` (an int tensor, a slice) of every field."""
        return self._map(lambda field: field[index])

    def to(self, device: torch.device | str) -> Condition:
        return self._map(lambda field: field.to(device))

    def expand(self, batch: int) -> Condition:
        """A one-row condition as ``batch`` rows (views, no copy)."""
        if len(self) != 1:
            raise ValueError(f"expand() takes a one-row Condition, got {len(self)} rows")
        return self._map(lambda field: field.expand(batch, *field.shape[1:]))

    def repeat_interleave(self, repeats: int) -> Condition:
        """Each row ``repeats`` times in a row (every block of one item's adapter)."""
        return self._map(lambda field: field.repeat_interleave(repeats, 0))

    def null(self) -> Condition:
        """The empty condition in this one's shapes: no text, no examples."""
        return self._map(torch.zeros_like)

    def dropped(self, drop: Tensor) -> Condition:
        """Rows where ``drop`` [B] bool is True replaced by :meth:`null`'s (prompt dropout)."""
        return self._map(lambda field: torch.where(
            drop.view(-1, *(1,) * (field.dim() - 1)), torch.zeros_like(field), field))

    def with_examples(self, examples: Tensor | None) -> Condition:
        return replace(self, examples=examples)

    def problems(self, batch: int, text_dim: int, example_dim: int) -> list[str]:
        """What is wrong with the given fields' shapes for ``batch`` rows of a denoiser reading
        ``text_dim``-wide text and ``example_dim``-wide examples (0: it reads none)."""
        found = []
        if self.tokens is not None and (self.tokens.dim() != 3 or self.tokens.shape[0] != batch
                                        or self.tokens.shape[2] != text_dim):
            found.append(f"tokens must be [{batch}, L, {text_dim}], got {list(self.tokens.shape)}")
        if self.mask is not None:
            tokens = self.tokens is not None and self.tokens.dim() == 3
            length = self.tokens.shape[1] if tokens else self.mask.shape[-1]
            if tuple(self.mask.shape) != (batch, length):
                found.append(f"mask must be [{batch}, {length}], got {list(self.mask.shape)}")
        if self.pooled is not None and tuple(self.pooled.shape) != (batch, text_dim):
            found.append(f"pooled must be [{batch}, {text_dim}], got {list(self.pooled.shape)}")
        if (example_dim and self.examples is not None
                and (self.examples.dim() not in (2, 3) or self.examples.shape[0] != batch
                     or self.examples.shape[-1] != example_dim)):
            found.append(f"examples must be [{batch}, {example_dim}] or [{batch}, k, "
                         f"{example_dim}], got {list(self.examples.shape)}")
        return found
