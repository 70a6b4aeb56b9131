"""The generator's clauses view of a prompt (``diffusion.text_view``, weightgen/text/clauses.py):
the split, the composed embedding, the knob's checks and a generator trained with it."""

from __future__ import annotations

import hashlib
import json
import logging
import re

import pytest
import torch
from helpers import compose_config, run_workspace

from weightgen.config_checks import check_config
from weightgen.diffusion.staleness import check_generator_text_view, text_view_record
from weightgen.errors import ConfigError
from weightgen.stages.artifacts import default_inits, load_base, load_generator
from weightgen.stages.train_generator import training_identity
from weightgen.text.base import TextEmbedding, TextEncoder
from weightgen.text.clauses import (
    ClauseTextEncoder,
    check_text_view,
    generator_text_encoder,
    split_clauses,
)


class WordEncoder(TextEncoder):
    """One token per word (its own seeded vector, no context) and a pooled vector from the
    whole text's hash: a whole prompt's vector is *not* its clauses' sum."""

    name = "words"

    def __init__(self, max_length: int = 8, dim: int = 4):
        super().__init__(max_length=max_length)
        self.dim = dim

    def config(self) -> dict:
        return {"kind": self.name, "max_length": self.max_length, "dim": self.dim}

    @staticmethod
    def vector(text: str, dim: int) -> torch.Tensor:
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        return torch.randn(dim, generator=torch.Generator().manual_seed(seed))

    def _embed(self, prompts: list[str]) -> TextEmbedding:
        tokens = torch.zeros(len(prompts), self.max_length, self.dim)
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            for index, word in enumerate(prompt.split()[:self.max_length]):
                tokens[row, index], mask[row, index] = self.vector(word, self.dim), True
        pooled = torch.stack([self.vector(p, self.dim) for p in prompts])
        return TextEmbedding(tokens, mask, pooled)


@pytest.mark.parametrize(("prompt", "clauses"), [
    ("a pencil sketch with a red tint", ["a pencil sketch", "a red tint"]),
    ("make it a sketch WITH a red tint", ["make it a sketch", "a red tint"]),
    ("a blur without colour", ["a blur without colour"]),  # whole words only
    ("a blur", ["a blur"]),
    ("with a red tint", ["a red tint"]),  # empty pieces dropped
])
def test_a_prompt_splits_at_its_clause_words_which_are_dropped(prompt, clauses):
    assert split_clauses(prompt, ["with"]) == clauses


def test_several_clause_words_each_split():
    assert split_clauses("a sketch with a tint and a blur", ["with", "and"]) == [
        "a sketch", "a tint", "a blur"]


def test_the_clauses_view_sums_the_clauses_vectors_and_chains_their_tokens():
    inner = WordEncoder()
    view = ClauseTextEncoder(inner, ["with"])
    got = view.encode(["a sketch with red tint", "a sketch"])
    parts = inner.encode(["a sketch", "red tint"])
    assert torch.allclose(got.pooled[0], parts.pooled.sum(0))
    assert torch.allclose(got.pooled[1], parts.pooled[0])  # one clause: its own vector
    assert not torch.allclose(got.pooled[0], inner.encode(["a sketch with red tint"]).pooled[0])
    assert got.mask[0].tolist() == [True] * 4 + [False] * 4  # "with" is not a token
    assert torch.equal(got.tokens[0, :4], torch.cat([parts.tokens[0, :2], parts.tokens[1, :2]]))
    assert torch.equal(got.tokens[0, 4:], torch.zeros(4, 4))
    assert (view.dim, view.max_length) == (inner.dim, inner.max_length)


def test_clauses_longer_than_the_encoder_are_cut_with_a_warning(caplog):
    view = ClauseTextEncoder(WordEncoder(max_length=3), ["with"])
    with caplog.at_level(logging.WARNING):
        got = view.encode(["one two with three four"])
    assert got.mask[0].tolist() == [True, True, True]
    assert "have 4 tokens together, cut to text_encoder.max_length=3" in caplog.text


def test_the_views_identity_names_its_words_and_the_encoder_it_wraps():
    config = ClauseTextEncoder(WordEncoder(), ["with"]).config()
    assert config == {"kind": "clauses", "clause_words": ["with"],
                      "encoder": WordEncoder().config()}
    assert ClauseTextEncoder(WordEncoder(), ["and"]).identity() != ClauseTextEncoder(
        WordEncoder(), ["with"]).identity()


def test_the_prompt_view_is_the_encoder_itself():
    inner = WordEncoder()
    assert generator_text_encoder(inner, "prompt", ["with"]) is inner
    assert isinstance(generator_text_encoder(inner, "clauses", ["with"]), ClauseTextEncoder)


@pytest.mark.parametrize(("view", "words", "message"), [
    ("parts", ["with"], "diffusion.text_view='parts' is not allowed: use one of prompt, clauses"),
    ("clauses", [], "diffusion.clause_words=[]: the clauses view needs at least one non-empty"),
    ("clauses", [" "], "diffusion.clause_words=[' ']: the clauses view needs"),
])
def test_a_bad_text_view_is_a_config_error(view, words, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_text_view(view, words)
    if all(w.strip() for w in words):  # a blank word cannot be written as an override
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_config(compose_config([f"diffusion.text_view={view}",
                                         f"diffusion.clause_words=[{','.join(words)}]"]))


def test_the_prompt_view_leaves_the_training_identity_as_before_and_clauses_enter_it():
    rows = [{"concept": "a", "sha256": "1"}]
    default = training_identity(compose_config(), {}, "base", rows, {"a": ("one",)})["diffusion"]
    assert "text_view" not in default and "clause_words" not in default
    on = training_identity(compose_config(["diffusion.text_view=clauses"]), {}, "base", rows,
                           {"a": ("one",)})["diffusion"]
    assert on == default | {"text_view": "clauses", "clause_words": ["with"]}


def test_a_generator_reading_prompts_another_way_is_refused_naming_both():
    clauses = {"text_view": text_view_record("clauses", ("with",))}
    check_generator_text_view(clauses, "gen", "clauses", ("with",))
    check_generator_text_view({}, "gen", "prompt", ("with",))  # from before the knob: whole
    with pytest.raises(ConfigError, match=re.escape(
            "the weight generator at gen was trained with diffusion.text_view=prompt, but this "
            "run configures diffusion.text_view=clauses; train a generator with it")):
        check_generator_text_view({}, "gen", "clauses", ("with",))
    with pytest.raises(ConfigError, match=re.escape(
            "trained with diffusion.clause_words=[with], but this run configures "
            "diffusion.clause_words=[and]")):
        check_generator_text_view(clauses, "gen", "clauses", ("and",))
    with pytest.raises(ConfigError, match="configures diffusion.text_view=prompt; .* or set "
                                          "diffusion.text_view=clauses$"):
        check_generator_text_view(clauses, "gen", "prompt", ("with",))


# --- on the tiny trained run (slow) -----------------------------------------------------------

def test_a_clauses_generator_records_its_view_and_serves_only_runs_that_read_prompts_so(
        tiny_run, tmp_path):
    from weightgen.stages.train_generator import train_weight_generator

    overrides = ["diffusion.text_view=clauses", "diffusion.steps=2", "diffusion.val_every=2",
                 f"paths.generator_dir={tmp_path}", f"paths.bench_dir={tmp_path / 'b'}"]
    ws = run_workspace(tiny_run["artifacts"], *overrides)
    train_weight_generator(ws)
    meta = json.loads((tmp_path / "generator.json").read_text())
    assert meta["text_view"] == {"kind": "clauses", "clause_words": ["with"]}
    assert meta["identity"]["diffusion"]["text_view"] == "clauses"
    inits = default_inits(ws, load_base(ws), load_generator(ws))
    assert isinstance(inits.generator_text, ClauseTextEncoder)
    assert inits.text_encoder is ws.text_encoder  # the GAN's text stays the whole prompt
    with pytest.raises(ConfigError, match="trained with diffusion.text_view=clauses, but this "
                                          "run configures diffusion.text_view=prompt"):
        load_generator(run_workspace(tiny_run["artifacts"], *overrides,
                                     "diffusion.text_view=prompt"))
    with pytest.raises(ConfigError, match="trained with diffusion.text_view=prompt, but this "
                                          "run configures diffusion.text_view=clauses"):
        load_generator(run_workspace(tiny_run["artifacts"], "diffusion.text_view=clauses"))
