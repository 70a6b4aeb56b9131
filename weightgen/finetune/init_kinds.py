"""The names of the init kinds (``inits.INITS``'s keys, in its order) and which of them a choice
on the example pairs (``pairs_choice``) may take as candidates.

Apart from ``inits`` on purpose: the config checks read these before any work, and ``inits``
imports the training stack (Lightning, ~10 s on 2 cores). ``test_bench_methods.py`` keeps the
names equal to ``INITS``'s.
"""

from __future__ import annotations

from weightgen.errors import ConfigError

INIT_KINDS = ("standard", "mean", "nearest", "trained", "generated", "shuffled",
              "generated_examples", "generated_examples_only", "generated_examples_shuffled",
              "examples_nearest", "examples_blend", "examples_ridge", "text_ridge", "text_examples_ridge",
              "pairs_choice")

# Init kinds a choice on the pairs may not take as candidates, and why.
NOT_CANDIDATES = {
    "trained": "the concept's own adapter, the ceiling, which a new concept does not have",
    "shuffled": "a control: another concept's prompt",
    "generated_examples_shuffled": "a control: another concept's pairs",
    "pairs_choice": "the choice itself",
}


def check_choice_candidates(candidates) -> tuple[str, ...]:
    """``bench.controls.choice.candidates`` as a tuple, or a config error naming what is wrong
    with it and the kinds it may hold."""
    allowed = [kind for kind in INIT_KINDS if kind not in NOT_CANDIDATES]
    names = list(candidates) if candidates is not None else []
    wrong = [n for n in names if n not in allowed]
    repeated = sorted({n for n in names if n in allowed and names.count(n) > 1})
    if not names:
        problem = "it is empty"
    elif wrong:
        reasons = [f"{n!r} is {NOT_CANDIDATES[n]}" if n in NOT_CANDIDATES else
                   f"{n!r} is no init kind" for n in wrong]
        problem = "; ".join(reasons)
    elif repeated:
        problem = f"{', '.join(repeated)} appears twice"
    else:
        return tuple(names)
    raise ConfigError(f"bench.controls.choice.candidates={names!r}: {problem}; use a list of "
                      f"distinct init kinds out of {', '.join(allowed)}")
