"""Every benchmark method, named once: where it starts, what it needs and what tables call it.

A method fine-tunes a concept's adapter from one initialisation of
``weightgen.finetune.inits`` (its ``init`` kind) or, with no init, trains pix2pix from scratch.
The bench, its summary and reports, the pipeline summary, the studies, the experiment scripts
and ``weightgen-new-concept`` read methods and the roles below from here, so adding a method is
one entry in ``METHODS`` plus its init (``weightgen.finetune.inits.INITS``). Which method the
summaries headline is the config key ``bench.headline``.
"""

from __future__ import annotations

from dataclasses import dataclass

from weightgen.errors import ConfigError


@dataclass(frozen=True)
class BenchMethod:
    name: str  # the key of bench.methods, bench.recipes and results.json
    init: str | None  # the init kind it fine-tunes from; None: pix2pix from scratch
    label: str  # what it is, beside its name in tables and plots
    needs_generator: bool = False  # starts from generated weights: a new generator reruns it
    needs_examples: bool = False  # needs a generator trained with example pairs

    @property
    def title(self) -> str:
        """Its name and label, as tables and plots show it."""
        return f"{self.name} ({self.label})"


# The roles the bench's statistics and the commands give methods.
REFERENCE = "pix2pix_scratch"  # trains to plateau; its final PSNR sets the target (methods[0])
BASELINE = "e2gan_lora"  # the E2GAN-style fine-tune: speed-ups and paired comparisons against it
MEAN = "mean_init"  # the cheap controls a generated init has to start above
NEAREST = "nearest_init"
CEILING = "trained_init"  # the store's own adapter: the best any generator can do with this data
TEXT_ONLY = "denoised_init"  # the paper's setting: generated from the prompt alone
WITH_EXAMPLES = "denoised_examples_init"  # generated from the prompt and k example pairs
# Controls that see what the text + examples generator sees (the same k pairs, encoder and
# standardisation): every method is compared with them concept by concept.
KNN_EXAMPLES = "knn_examples_init"
RIDGE_EXAMPLES = "ridge_examples_init"
EXAMPLE_CONTROLS = (KNN_EXAMPLES, RIDGE_EXAMPLES)
# The mean of the generator's and the controls' starts, and of the controls' alone (its control).
ENSEMBLE = "ensemble_init"
CONTROLS_ENSEMBLE = "controls_ensemble_init"

METHODS: dict[str, BenchMethod] = {method.name: method for method in (
    BenchMethod(REFERENCE, None, "from scratch"),
    BenchMethod(BASELINE, "standard", "E2GAN: standard init"),
    BenchMethod(TEXT_ONLY, "generated", "generated: text", needs_generator=True),
    BenchMethod(WITH_EXAMPLES, "generated_examples", "generated: text + examples",
                needs_generator=True, needs_examples=True),
    BenchMethod(MEAN, "mean", "mean adapter"),
    BenchMethod(NEAREST, "nearest", "nearest concept's adapter"),
    BenchMethod("shuffled_prompt_init", "shuffled", "generated: wrong prompt",
                needs_generator=True),
    BenchMethod(CEILING, "trained", "ceiling"),
    BenchMethod(KNN_EXAMPLES, "examples_nearest", "nearest training adapter by example vector",
                needs_generator=True, needs_examples=True),
    BenchMethod("knn_examples_blend", "examples_blend", "mean of the nearest by example vector",
                needs_generator=True, needs_examples=True),
    BenchMethod(RIDGE_EXAMPLES, "examples_ridge", "ridge map: example vector to adapter",
                needs_generator=True, needs_examples=True),
    BenchMethod("ridge_text_init", "text_ridge", "ridge map: text vector to adapter"),
    BenchMethod("ridge_text_examples_init", "text_examples_ridge",
                "ridge map: text and example vectors to adapter", needs_generator=True,
                needs_examples=True),
    BenchMethod("denoised_examples_only", "generated_examples_only",
                "generated: examples, empty prompt", needs_generator=True, needs_examples=True),
    BenchMethod("denoised_examples_shuffled", "generated_examples_shuffled",
                "generated: text + another concept's examples", needs_generator=True,
                needs_examples=True),
    BenchMethod("pairs_choice_init", "pairs_choice", "best candidate on the k example pairs",
                needs_generator=True, needs_examples=True),
    BenchMethod(ENSEMBLE, "ensemble", "mean of the generator's and the controls' adapters",
                needs_generator=True, needs_examples=True),
    BenchMethod(CONTROLS_ENSEMBLE, "controls_ensemble",
                "mean of the controls' adapters, no generated weights", needs_generator=True,
                needs_examples=True),
)}


def method_named(name: str, key: str = "bench.methods") -> BenchMethod:
    """The registered method ``name``, or a config error naming ``key`` and the methods."""
    if name not in METHODS:
        raise ConfigError(f"{key} names {name!r}, which is no benchmark method; use one of "
                          f"{', '.join(METHODS)}")
    return METHODS[name]


def method_of_init(kind: str) -> BenchMethod | None:
    """The method that fine-tunes from the init ``kind`` (None: no method does)."""
    return next((m for m in METHODS.values() if m.init == kind), None)

