"""How a denoiser reads its :class:`~weightgen.diffusion.condition.Condition`: one module for both.

Every denoiser follows one contract::

    forward(x [B, block_size] float32, timesteps [B] long, block_index [B] long,
            condition: Condition (B rows)) -> [B, block_size]

and turns (timestep, block index, condition) into its conditioning here, with
:meth:`ConditionEncoder.encode_condition`:

* ``vector`` [B, dim]: the timestep + block-index embedding (:class:`TimestepBlockEmbedding`) plus
  each condition it reads, each through its own Linear, then SiLU. The UNet's ResBlocks read it as
  FiLM scale/shift, the MLP's residual blocks add it.
* ``context`` / ``context_bias``: the token states to cross-attend to (a denoiser built with a
  ``context_dim``: the UNet), with a learned null token first (:class:`TextContext`) and -inf on
  padding; None otherwise.

What is read, by ``conditioning`` (``diffusion.conditioning``; the names:
:mod:`weightgen.diffusion.conditioning`):

* ``tokens``: the token states. A denoiser with a ``context_dim`` cross-attends to them; one
  without (the MLP, which cannot attend) adds their masked mean, through a Linear, to the vector
  (for MiniLM that is the sentence vector before its L2 normalisation).
* ``pooled``: the sentence vector, through a Linear, added to the vector (no cross-attention).
  Wordings with the same sentence vector give the same weights.
* ``tokens+pooled``: both (for the MLP and MiniLM the two vectors differ only in scale; for
  CLIP, whose pooled vector is the EOS state, they carry different information).

An empty prompt (an all-False mask row) reads a zero pooled vector whatever was passed for it,
so "no prompt" is one input in every mode (the Linear's bias). With ``example_dim = F > 0``
(``diffusion.examples.k > 0``) the example pairs' vector [B, F] (zeros: no examples) is projected
by one more Linear and added to the vector like the pooled text. The examples may also come as
the set of k standardised per-pair vectors, [B, k, F]: the Linear reads their mean (the same
vector), and a denoiser built with ``example_set_width = w > 0`` adds a learned encoder of the set
(:class:`~weightgen.diffusion.pair_set_encoder.PairSetEncoder`; a [B, F] vector is then a set of
one).

Both denoisers subclass :class:`ConditionEncoder` rather than hold one as a submodule: its
layers (``condition``, ``text``, ``pooled``, ``examples``) are the denoiser's own attributes, so
the state-dict keys of generators saved before it are unchanged and every parameter initialises
in the order it did. For the same reason the examples layer is added last
(:meth:`ConditionEncoder.add_example_layer`, after the denoiser's body): ``example_dim=0``
initialises exactly as before that knob.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from weightgen.diffusion.condition import Condition
from weightgen.diffusion.conditioning import uses_pooled, uses_tokens
from weightgen.diffusion.embeddings import TextContext, TimestepBlockEmbedding, masked_mean
from weightgen.diffusion.pair_set_encoder import PairSetEncoder


class EncodedCondition(NamedTuple):
    vector: Tensor  # [B, dim], SiLU-activated: what every block of the denoiser reads
    context: Tensor | None  # [B, L+1, context_dim]: the tokens to cross-attend to; None: none
    context_bias: Tensor | None  # [B, 1, 1, L+1]: added to the attention logits (-inf: padding)


def prompt_pooled(pooled: Tensor, mask: Tensor | None) -> Tensor:
    """The pooled vector a denoiser reads, [B, D]: zeros for an empty prompt (all-False mask)."""
    if mask is None:
        return pooled
    return pooled * mask.any(dim=1, keepdim=True).to(pooled.dtype)


class ConditionEncoder(nn.Module):
    """The conditioning layers of a denoiser and how they read a :class:`Condition`.

    Args:
        block_size, num_blocks, text_dim: set from the tokenizer and the text encoder.
        dim: width of the conditioning vector.
        conditioning: ``tokens`` | ``pooled`` | ``tokens+pooled`` (module docstring).
        context_dim: the tokens are projected to this width for cross-attention; None: their
            masked mean is added to the vector instead.
    """

    def __init__(self, block_size: int, num_blocks: int, text_dim: int, dim: int,
                 conditioning: str, context_dim: int | None = None) -> None:
        super().__init__()
        self.block_size, self.text_dim = block_size, text_dim
        self.conditioning = conditioning
        self.uses_tokens, self.uses_pooled = uses_tokens(conditioning), uses_pooled(conditioning)
        # Created in this order so that `tokens` initialises exactly as before the knob.
        self.condition = TimestepBlockEmbedding(num_blocks, dim)
        if not self.uses_tokens:
            self.text = None
        elif context_dim is None:
            self.text = nn.Linear(text_dim, dim)  # their masked mean, into the vector
        else:
            self.text = TextContext(text_dim, context_dim)  # cross-attended
        self.pooled = nn.Linear(text_dim, dim) if self.uses_pooled else None
        self.example_dim, self.examples, self.example_set = 0, None, None

    def add_example_layer(self, example_dim: int, dim: int, set_width: int = 0) -> None:
        """The example pairs' Linear (``example_dim`` 0: none) and, with ``set_width > 0``, their
        set encoder; a denoiser calls this last."""
        if set_width and not example_dim:
            raise ValueError(f"example_set_width={set_width} needs example pairs (example_dim > 0)")
        self.example_dim = example_dim
        self.examples = nn.Linear(example_dim, dim) if example_dim else None
        self.example_set = PairSetEncoder(example_dim, set_width, dim) if set_width else None

    def encode_condition(self, x: Tensor, timesteps: Tensor, block_index: Tensor,
                         condition: Condition) -> EncodedCondition:
        """The conditioning of a batch of blocks ``x``, its inputs checked first."""
        self._check(x, timesteps, block_index, condition)
        vector = self.condition(timesteps, block_index)
        context = context_bias = None
        if self.uses_tokens and isinstance(self.text, TextContext):
            context, context_mask = self.text(condition.tokens, condition.mask)
            context_bias = torch.zeros(context_mask.shape, dtype=context.dtype,
                                       device=context.device)
            context_bias = context_bias.masked_fill(~context_mask, float("-inf"))[:, None, None, :]
        elif self.uses_tokens:
            vector = vector + self.text(masked_mean(condition.tokens, condition.mask))
        if self.uses_pooled:
            vector = vector + self.pooled(prompt_pooled(condition.pooled, condition.mask))
        if self.examples is not None:
            pairs = condition.examples
            pairs = pairs if pairs.dim() == 3 else pairs[:, None]  # a vector: a set of one
            vector = vector + self.examples(pairs.mean(1))
            if self.example_set is not None:
                vector = vector + self.example_set(pairs)
        return EncodedCondition(F.silu(vector), context, context_bias)

    def _check(self, x: Tensor, timesteps: Tensor, block_index: Tensor,
               condition: Condition) -> None:
        """Every input this denoiser reads is given, with the shape it needs (no device sync)."""
        needed = {"tokens": "tokens [B, L, D]", "mask": "mask [B, L]"} if self.uses_tokens else {}
        if self.uses_pooled:
            needed["pooled"] = f"pooled [B, {self.text_dim}] (TextEmbedding.pooled)"
        if self.example_dim:
            needed["examples"] = (f"examples [B, {self.example_dim}] or [B, k, "
                                  f"{self.example_dim}] (zeros for none)")
        missing = [hint for name, hint in needed.items() if getattr(condition, name) is None]
        if missing:
            raise ValueError(f"this denoiser (conditioning={self.conditioning}, example_dim="
                             f"{self.example_dim}) reads Condition fields it was not given: pass "
                             f"{'; '.join(missing)}")
        batch = x.shape[0]
        problems = []
        if x.dim() != 2 or x.shape[1] != self.block_size:
            problems.append(f"x must be [B, {self.block_size}], got {list(x.shape)}")
        if tuple(timesteps.shape) != (batch,):
            problems.append(f"timesteps must be [{batch}], got {list(timesteps.shape)}")
        if tuple(block_index.shape) != (batch,):
            problems.append(f"block_index must be [{batch}], got {list(block_index.shape)}")
        problems += condition.problems(batch, self.text_dim, self.example_dim)
        if problems:
            raise ValueError("denoiser inputs: " + "; ".join(problems))
