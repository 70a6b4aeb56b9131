"""Where a new concept's adapter starts (``init=`` in conf/new_concept.yaml), and what the
cheaper starts would have given it.

A new concept always comes with its example pairs, and on the bench's new combinations a
generator that reads them starts 2.9 dB higher than from the prompt alone and fine-tunes about
1.8x sooner (issue 25). So ``init=auto`` takes the best start the loaded weight generator can
make: text + the concept's own pairs (``generated_examples``) when it was trained with example
pairs, text only (``generated``) otherwise: on the bench store's validation concepts (96
training concepts) it reaches the target in the fewest steps of every start
(experiments/finetune_recipe). ``init=pairs_choice`` scores a few candidate starts on the
concept's example pairs and takes the best (``weightgen.finetune.pairs_choice``);
``init=ensemble`` starts from the mean of the generator's adapter and the controls'
(``weightgen.finetune.ensemble``; ``controls_ensemble``: the controls' alone). The controls
that read the generator's inputs are starts too, named for what they are: retrieval by the pairs
(``examples_nearest``, the best start on the 265-concept store's new test concepts:
experiments/scaling) and the ridge maps (``examples_ridge``, ``text_examples_ridge``,
``text_ridge``). An explicit ``init=`` the
generator cannot make is refused before any work. The model card then sets the start used beside the cheap ones (mean,
nearest, standard; text only as well when examples were used), each scored zero-shot by the
adapter scorer on the held-out validation crops, so the user sees what the generator gave them.
The inits themselves are ``weightgen.finetune.inits.INITS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from weightgen.bench.methods import BenchMethod, method_of_init
from weightgen.concepts.spec import Concept
from weightgen.errors import ConfigError
from weightgen.finetune.inits import InitSources
from weightgen.gan.adapter_evaluator import AdapterEvaluator

AUTO = "auto"
# The starts a new concept can have (``trained`` has no adapter of it; ``shuffled`` is a control).
CHOICES = ("generated_examples", "generated", "pairs_choice", "ensemble", "examples_nearest",
           "examples_ridge", "text_examples_ridge", "text_ridge", "controls_ensemble", "nearest",
           "mean", "standard")
CHEAP = ("nearest", "mean", "standard")  # no generator needed: scored beside every start


@dataclass(frozen=True)
class InitChoice:
    """The init kind a new concept fine-tunes from, what ``init=`` asked and why this one."""

    kind: str
    requested: str
    reason: str

    @property
    def method(self) -> BenchMethod:
        """The bench method that fine-tunes from this kind (its name and label)."""
        return method_of_init(self.kind)

    def describe(self) -> str:
        return f"{self.kind} ({self.method.label}): {self.reason}"


def choose_init(requested, examples_k: int, generator_dir: str | Path) -> InitChoice:
    """The start for ``init=<requested>`` with a generator trained on ``examples_k`` pairs (0:
    text only), or a :class:`ConfigError` when it cannot be made."""
    requested = str(requested)
    if requested not in (AUTO, *CHOICES):
        raise ConfigError(
            f"init={requested!r} is not a start a new concept can have: use init=auto (the best "
            f"the weight generator can make) or one of {', '.join(CHOICES)}"
        )
    if requested != AUTO and method_of_init(requested).needs_examples and examples_k == 0:
        raise ConfigError(
            f"init={requested} needs a weight generator trained with example pairs, but "
            f"the one at {generator_dir} reads text only; use init=auto or init=generated, or "
            f"train one with weightgen-train-generator diffusion.examples.k=8 and run with "
            f"diffusion.examples.k=8"
        )
    if requested != AUTO:
        return InitChoice(requested, requested, f"init={requested} asked for it")
    if examples_k > 0:
        return InitChoice("generated_examples", AUTO,
                          f"the weight generator reads example pairs (diffusion.examples.k="
                          f"{examples_k}), so it is given the prompt and {examples_k} of the "
                          f"concept's own pairs (init=generated for the prompt alone)")
    return InitChoice("generated", AUTO,
                      "the weight generator reads text only (diffusion.examples.k=0), so it is "
                      "given the prompt alone")


def compared_inits(kind: str) -> tuple[str, ...]:
    """The cheap starts scored beside ``kind``: text only too when examples were used, and text +
    examples too when the start was chosen on the pairs or is a control that reads them (the
    generator's start beside the regression or retrieval used instead)."""
    if kind in ("generated_examples", "text_ridge"):
        generated = ("generated",)
    elif method_of_init(kind).needs_examples:
        generated = ("generated_examples", "generated")
    else:
        generated = ()
    return tuple(k for k in (*generated, *CHEAP) if k != kind)


def zero_shot_by_init(evaluator: AdapterEvaluator, inits: InitSources, concept: Concept,
                      kind: str, used: dict) -> dict[str, dict]:
    """Init kind -> zero-shot {psnr, ssim} on the concept's validation crops: ``used`` (the
    fine-tune's own step-0 figures) for ``kind``, the adapter scorer's for the compared ones."""
    table = {kind: {"psnr": used["psnr"], "ssim": used["ssim"]}}
    for other in compared_inits(kind):
        quality = evaluator.quality(concept, inits.get(other, concept).state)
        table[other] = {"psnr": quality.psnr, "ssim": quality.ssim}
    return table


def comparison_lines(kind: str, psnr_by_init: dict[str, float]) -> list[str]:
    """The closing table: zero-shot PSNR of each start, best first (the one used first among
    equals), the one used marked."""
    width = max(len(k) for k in psnr_by_init)
    lines = ["zero-shot PSNR before fine-tuning, on the validation crops of held-out photos:"]
    for other, psnr in sorted(psnr_by_init.items(), key=lambda item: (-item[1], item[0] != kind)):
        mark = "  <- this editor's start" if other == kind else ""
        lines.append(f"  {other:<{width}}  {psnr:6.2f} dB  {method_of_init(other).label}{mark}")
    return lines
