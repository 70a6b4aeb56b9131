"""How the weight generator reads a prompt: whole, or as clauses it can compose
(``diffusion.text_view``; issue 24, item 5).

A new concept is mostly a new *combination* of parts the training concepts have ("a pixel-art
look with a winter mood": pixel art and winter each seen, never together). Encoded whole, the
prompt is one sentence vector the sentence model makes as it likes; nothing guarantees it sits
where the parts' vectors would put it. Encoded as clauses, the parts are explicit:

* ``prompt``  the whole prompt through the text encoder (the default, exactly the behaviour from
              before this knob).
* ``clauses`` the prompt split at each of ``diffusion.clause_words`` (whole words, any case,
              dropped: "with" splits every built-in phrasing into its ops, "a pencil sketch with
              a red tint" -> "a pencil sketch" | "a red tint"), each clause encoded alone. The
              sentence vector is the **sum** of the clauses' vectors, so a linear map on it (the
              ridge control, the denoiser's first layer) gives a combination the sum of what it
              gives each part, plus the intercept; the token states are the clauses' real
              tokens one after another (each clause's own [CLS] ... [SEP]), cut at the
              encoder's ``max_length`` with a warning.

Measured on new concepts (experiments/generalisation/text_parts): it did not make the text-only
generator compose, and moved the ridge map both ways; so the default stays ``prompt``.

The GAN itself always reads the whole prompt (its cross-attention was trained on it): the view
is the generator's and the text controls' that see its inputs (``ridge_text_init``), never the
base's or a fine-tune's. A generator records its view in ``generator.json`` and is refused under
another (:mod:`weightgen.diffusion.staleness`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import torch

from weightgen.errors import ConfigError
from weightgen.text.base import TextEmbedding, TextEncoder

log = logging.getLogger(__name__)

TEXT_VIEWS = ("prompt", "clauses")  # diffusion.text_view
DEFAULT_TEXT_VIEW = "prompt"  # what the generator read before the knob existed


def check_text_view(view: str, clause_words: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """(``view``, the clause words as a tuple) when valid, else a :class:`ConfigError`."""
    if view not in TEXT_VIEWS:
        raise ConfigError(f"diffusion.text_view={view!r} is not allowed: use one of "
                          f"{', '.join(TEXT_VIEWS)}")
    words = tuple(str(w).strip() for w in (clause_words or ()))
    if view == "clauses" and (not words or not all(words)):
        raise ConfigError(f"diffusion.clause_words={list(clause_words or ())!r}: the clauses view "
                          f"needs at least one non-empty word to split at, e.g. [with]")
    return view, words


def split_clauses(prompt: str, clause_words: Sequence[str]) -> list[str]:
    """``prompt`` cut at each whole-word occurrence of ``clause_words``, the word dropped ("a
    sketch with a red tint" -> ["a sketch", "a red tint"]); empty pieces dropped; a prompt
    without them is one clause."""
    pattern = r"\b(?:" + "|".join(re.escape(w) for w in clause_words) + r")\b"
    clauses = [c.strip() for c in re.split(pattern, prompt.strip(), flags=re.IGNORECASE)]
    return [c for c in clauses if c] or [prompt]


class ClauseTextEncoder(TextEncoder):
    """A text encoder's clauses view (module docstring): same ``dim`` and ``max_length`` as the
    wrapped ``encoder``, whose cache each clause goes through; composed rows are kept in memory."""

    name = "clauses"

    def __init__(self, encoder: TextEncoder, clause_words: Sequence[str]):
        super().__init__(max_length=encoder.max_length)
        self.encoder, self.clause_words = encoder, tuple(clause_words)
        self.dim = encoder.dim

    def config(self) -> dict:
        return {"kind": self.name, "clause_words": list(self.clause_words),
                "encoder": self.encoder.config()}

    def _embed(self, prompts: list[str]) -> TextEmbedding:
        """Every clause of every prompt through the wrapped encoder in one call (one batch for
        the clauses it has not encoded yet), then each prompt composed from its own."""
        split = [split_clauses(prompt, self.clause_words) for prompt in prompts]
        clauses = self.encoder.encode([clause for parts in split for clause in parts])
        rows, start = [], 0
        for prompt, parts in zip(prompts, split, strict=True):
            rows.append(self._composed(prompt, clauses, slice(start, start + len(parts))))
            start += len(parts)
        return TextEmbedding(*(torch.stack(parts) for parts in zip(*rows, strict=True)))

    def _composed(self, prompt: str, clauses: TextEmbedding,
                  own: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens, mask, pooled) of ``prompt`` from its clauses, the rows ``own`` of
        ``clauses``."""
        real = clauses.tokens[own][clauses.mask[own]]  # [tokens of every clause, D], clause order
        if len(real) > self.max_length:
            log.warning("the clauses of %r have %d tokens together, cut to "
                        "text_encoder.max_length=%d; raise text_encoder.max_length", prompt,
                        len(real), self.max_length)
            real = real[:self.max_length]
        tokens = torch.zeros(self.max_length, self.dim)
        tokens[:len(real)] = real
        mask = torch.arange(self.max_length) < len(real)
        return tokens, mask, clauses.pooled[own].sum(0)


def generator_text_encoder(encoder: TextEncoder, view: str,
                           clause_words: Sequence[str]) -> TextEncoder:
    """The text encoder as the weight generator reads prompts under ``view``: ``encoder`` itself
    for ``prompt``, its :class:`ClauseTextEncoder` for ``clauses``."""
    view, words = check_text_view(view, clause_words)
    return encoder if view == "prompt" else ClauseTextEncoder(encoder, words)
