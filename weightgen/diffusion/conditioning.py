"""Which text the weight generator's denoiser reads: ``diffusion.conditioning``.

* ``tokens`` (the default; exactly the behaviour from before the knob): the text encoder's token
  states. The 1-D UNet cross-attends to them; the MLP, which cannot attend, reads their masked
  mean (for MiniLM: the sentence vector before its L2 normalisation).
* ``pooled``: the text encoder's sentence vector only (``TextEmbedding.pooled``: MiniLM's
  L2-normalised masked mean of its token states, as sentence-transformers pools it; CLIP's pooler
  output), one vector projected and added to the denoiser's conditioning vector (UNet: the
  timestep + block-index embedding every ResBlock's FiLM reads, with no cross-attention; MLP: its
  conditioning vector). Two wordings with the same sentence vector give the same adapter.
* ``tokens+pooled``: both (UNet: cross-attention over the tokens and the pooled vector in the
  embedding; MLP: the sum of the projected masked mean and the projected pooled vector).

The empty prompt (classifier-free guidance, prompt dropout) is an all-False token mask in every
mode; a denoiser reads a zero pooled vector for it. The mode is a constructor argument of both
denoisers, so ``generator.json``'s denoiser config records it and a loaded bundle rebuilds the
network it was trained as; :mod:`weightgen.diffusion.staleness` refuses a generator under another
configured mode. This module holds only names (no torch), so the config check can import it.
"""

from __future__ import annotations

from weightgen.errors import ConfigError

CONDITIONINGS = ("tokens", "pooled", "tokens+pooled")
DEFAULT_CONDITIONING = "tokens"  # what every denoiser did before diffusion.conditioning existed


def check_conditioning(conditioning: str) -> str:
    """``conditioning`` if it is one of :data:`CONDITIONINGS`, else a :class:`ConfigError`."""
    if conditioning not in CONDITIONINGS:
        raise ConfigError(f"diffusion.conditioning={conditioning!r} is not allowed: use one of "
                          f"{', '.join(CONDITIONINGS)}")
    return conditioning


def uses_tokens(conditioning: str) -> bool:
    """Whether the denoiser reads the token states."""
    return "tokens" in check_conditioning(conditioning).split("+")


def uses_pooled(conditioning: str) -> bool:
    """Whether the denoiser reads the pooled sentence vector."""
    return "pooled" in check_conditioning(conditioning).split("+")
