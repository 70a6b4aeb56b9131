"""The names of the init kinds (``inits.INITS``'s keys, in its order) and which of them a choice
on the example pairs (``pairs_choice``) may take as candidates and an ensemble as members.

Apart from ``inits`` on purpose: the config checks read these before any work, and ``inits``
imports the training stack (Lightning, ~10 s on 2 cores). ``test_bench_methods.py`` keeps the
names equal to ``INITS``'s.
"""

from __future__ import annotations

from weightgen.errors import ConfigError

INIT_KINDS = ("standard", "mean", "nearest", "trained", "generated", "shuffled",
              "generated_examples", "generated_examples_only", "generated_examples_shuffled",
              "examples_nearest", "examples_blend", "examples_ridge", "text_ridge", "text_examples_ridge",
              "pairs_choice", "ensemble", "controls_ensemble")

# Init kinds a choice on the pairs may not take as candidates, and why.
NOT_CANDIDATES = {
    "trained": "the concept's own adapter, the ceiling, which a new concept does not have",
    "shuffled": "a control: another concept's prompt",
    "generated_examples_shuffled": "a control: another concept's pairs",
    "pairs_choice": "the choice itself",
}

# ... and may not average (``ensemble``): besides those, an ensemble (no nesting).
NOT_MEMBERS = NOT_CANDIDATES | {
    "pairs_choice": "a choice among starts: average its candidates instead",
    "ensemble": "an ensemble itself",
    "controls_ensemble": "an ensemble itself",
}

# ... and the generator-free ensemble (``controls_ensemble``) besides: any generated weights.
GENERATED = ("generated", "generated_examples", "generated_examples_only")
NOT_CONTROL_MEMBERS = NOT_MEMBERS | {kind: "the weight generator's, and this ensemble is its "
                                           "control, made without generated weights"
                                     for kind in GENERATED}


def check_kinds(names, key: str, excluded: dict[str, str]) -> tuple[str, ...]:
    """``names`` (the value of the config key ``key``) as a tuple of distinct init kinds none of
    which is in ``excluded`` (kind -> why not), or a config error naming what is wrong and the
    kinds the list may hold."""
    allowed = [kind for kind in INIT_KINDS if kind not in excluded]
    names = list(names) if names is not None else []
    wrong = [n for n in names if n not in allowed]
    repeated = sorted({n for n in names if n in allowed and names.count(n) > 1})
    if not names:
        problem = "it is empty"
    elif wrong:
        reasons = [f"{n!r} is {excluded[n]}" if n in excluded else
                   f"{n!r} is no init kind" for n in wrong]
        problem = "; ".join(reasons)
    elif repeated:
        problem = f"{', '.join(repeated)} appears twice"
    else:
        return tuple(names)
    raise ConfigError(f"{key}={names!r}: {problem}; use a list of "
                      f"distinct init kinds out of {', '.join(allowed)}")


def check_choice_candidates(candidates) -> tuple[str, ...]:
    """``bench.controls.choice.candidates`` as a tuple, or a config error naming what is wrong
    with it and the kinds it may hold."""
    return check_kinds(candidates, "bench.controls.choice.candidates", NOT_CANDIDATES)


ENSEMBLE_KEYS = {"ensemble": ("bench.controls.ensemble.members", NOT_MEMBERS),
                 "controls_ensemble": ("bench.controls.ensemble.controls", NOT_CONTROL_MEMBERS)}


def check_ensemble_members(kind: str, members) -> tuple[str, ...]:
    """The members of the ensemble init ``kind`` (``ensemble``: ``bench.controls.ensemble.members``;
    ``controls_ensemble``: ``bench.controls.ensemble.controls``, no generated weights) as a
    tuple, or a config error naming the key and what is wrong."""
    key, excluded = ENSEMBLE_KEYS[kind]
    return check_kinds(members, key, excluded)
