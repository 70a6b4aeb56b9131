"""An ensemble start: the mean of several starts' adapters (issue 24).

The text + examples generator and the closed-form controls that read the same inputs (the ridge
map, the knn blend) miss a new concept in different directions: on the 265-concept store's
validation concepts (96 training concepts, 3 seeds) the mean of the three adapters starts 2.5 dB
above the generator's alone and 2.0 dB above the best mean of controls alone; fine-tuned on the
new test concepts it is nonetheless slower than the generator alone (2.24x against 2.98x over
E2GAN in steps; experiments/scaling/README.md). The init ``ensemble`` averages the adapters of
``bench.controls.ensemble.members``; ``controls_ensemble`` averages
``bench.controls.ensemble.controls``, which may hold no generated weights: the same lever given
to the controls alone, so a gain can be told apart from averaging itself. Every member's
adapter is made as its own init makes it; the ensemble's seconds are the members' own (the
example pairs' encoding counted once) plus the averaging.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from weightgen.finetune.inits import AdapterInit


def mean_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The tensor-wise mean of adapter states with the same keys and shapes."""
    keys = set(states[0])
    if any(set(state) != keys for state in states[1:]):
        raise ValueError("an ensemble averages adapters of one layout; the members' keys differ")
    return {key: torch.stack([state[key] for state in states]).mean(0) for key in states[0]}


def average(members: Mapping[str, Callable[[], AdapterInit]]) -> tuple[dict, float, dict]:
    """Make each member in turn and average their states: (state, seconds, info), the seconds
    the members' own plus the averaging's, the info each member's seconds and details."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    made = {name: make() for name, make in members.items()}
    start = time.perf_counter()
    state = mean_state([init.state for init in made.values()])
    seconds = sum(init.seconds for init in made.values()) + time.perf_counter() - start
    return state, seconds, {"members": list(made),
                            "member_seconds": {name: init.seconds for name, init in made.items()},
                            "member_info": {name: init.info for name, init in made.items()}}
