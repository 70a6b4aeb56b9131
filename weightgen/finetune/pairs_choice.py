"""Choose on the pairs you have: of a few candidate starts, the one that edits the concept's k
example pairs best (issue 24, item 4).

A new concept always comes with k example pairs (source, edited). The init ``pairs_choice``
(``finetune/inits.py``) makes each candidate adapter (``bench.controls.choice.candidates``: init
kinds, and ``bench.controls.choice.samples`` more draws of the text + examples generator under
other seeds), scores it by the fine-tune's own reconstruction loss of base + candidate on those
pairs (``gan/pair_loss.py``: forward passes only) and starts from the lowest, the first listed
among equals. The pairs are the k training pairs the generator reads, never the concept's
validation photos, on which the bench scores every start. Its seconds are every candidate's own
plus the scoring's: choosing costs what it makes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from weightgen.gan.pair_loss import PairScore

if TYPE_CHECKING:
    from weightgen.finetune.inits import AdapterInit

CHOSEN = "chosen"  # the info key naming the winner (the bench summary counts wins by it)


def sample_name(seed: int) -> str:
    """The candidate name of a text + examples generator sample drawn with sampling seed ``seed``."""
    return f"generated_examples_seed{seed}"


@dataclass
class Choice:
    """The candidate that won, every candidate's score and seconds, and the scoring's."""

    chosen: str
    start: AdapterInit  # the winner, as its init made it
    scores: dict[str, PairScore]
    candidate_seconds: dict[str, float]
    scoring_seconds: float

    @property
    def seconds(self) -> float:
        """Every candidate's own seconds plus the scoring's."""
        return sum(self.candidate_seconds.values()) + self.scoring_seconds

    def info(self) -> dict:
        """What a run records: the winner (and its own init's details) and every score."""
        return {CHOSEN: self.chosen,
                "scores": {name: {"l1": s.l1, "psnr": s.psnr} for name, s in self.scores.items()},
                "candidate_seconds": dict(self.candidate_seconds),
                "scoring_seconds": self.scoring_seconds,
                "chosen_info": self.start.info}


def choose_on_pairs(candidates: Mapping[str, Callable[[], AdapterInit]],
                    score: Callable[[dict[str, torch.Tensor]], PairScore],
                    setup_seconds: float = 0.0) -> Choice:
    """Make each candidate in turn, score it (``score``: the loss on the pairs) and keep the
    lowest loss; ``setup_seconds`` (preparing the pairs for scoring) counts as scoring. Only the
    best state so far is held."""
    if not candidates:
        raise ValueError("choosing a start needs at least one candidate")
    scores, seconds, scoring = {}, {}, setup_seconds
    best: tuple[str, AdapterInit] | None = None
    for name, make in candidates.items():
        made = make()
        seconds[name] = made.seconds
        start = time.perf_counter()
        scores[name] = score(made.state)
        scoring += time.perf_counter() - start
        if best is None or scores[name].l1 < scores[best[0]].l1:
            best = (name, made)
    return Choice(best[0], best[1], scores, seconds, scoring)
