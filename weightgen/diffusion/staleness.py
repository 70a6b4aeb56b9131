"""A weight generator serves only the run it was trained for: the same base GAN, adapters and texts.

``generator.json`` records an ``identity`` (:func:`weightgen.stages.train_generator.training_identity`):
the base GAN's sha256, the sha256 of every training adapter and the fingerprint of each training
concept's texts (prompt, phrasings: :mod:`weightgen.concepts.text_fingerprints`). A generator
copied from another run, or left behind after the base, the adapters or a concept's prompt
changed, would generate weights for a base or texts it never saw, and every stage using it would
exit 0 with wrong numbers; loading it is a :class:`StaleArtifactError` naming both sides instead.

It also records which text it reads (``diffusion.conditioning``, in ``generator.json``'s denoiser
config; a generator from before the knob read the tokens). The bundle rebuilds that denoiser
whatever the run configures, so a run that configures another conditioning would silently measure
the wrong generator: :func:`check_generator_conditioning` refuses it (a :class:`ConfigError`, like
a generator for another tokenizer), naming both sides. The same for example pairs
(``diffusion.examples.k``, in ``generator.json``'s ``examples``; none before the knob):
:func:`check_generator_examples`, and for the prior the denoiser corrects (``diffusion.prior``, in
``generator.json``'s ``prior``; none before the knob): :func:`check_generator_prior`. A generator
with a prior generates the prior's prediction plus its correction; read as one without (or the
other way round) it would make other adapters than it was trained to. The same for how it reads a
prompt (``diffusion.text_view`` and its clause words, in ``generator.json``'s ``text_view``; the
whole prompt before the knob): :func:`check_generator_text_view`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from weightgen.concepts.text_fingerprints import changed_texts
from weightgen.diffusion.conditioning import DEFAULT_CONDITIONING
from weightgen.errors import ConfigError, StaleArtifactError
from weightgen.text.clauses import DEFAULT_TEXT_VIEW


def trained_conditioning(meta: dict) -> str:
    """The ``diffusion.conditioning`` a generator (``meta`` of its ``generator.json``) was trained
    with; one trained before the knob existed read the tokens."""
    return (meta.get("denoiser") or {}).get("conditioning", DEFAULT_CONDITIONING)


def check_generator_conditioning(meta: dict, folder: str | Path, configured: str) -> None:
    """Refuse a generator (``meta`` of the one at ``folder``) trained with another
    ``diffusion.conditioning`` than the run's ``configured`` one."""
    _refuse_other("diffusion.conditioning", folder, trained_conditioning(meta), configured)


def trained_examples_k(meta: dict) -> int:
    """The ``diffusion.examples.k`` a generator (``meta`` of its ``generator.json``) was trained
    with; 0 (text only) for one trained without example pairs or before the knob existed."""
    return int((meta.get("examples") or {}).get("k", 0))


def check_generator_examples(meta: dict, folder: str | Path, configured_k: int) -> None:
    """Refuse a generator (``meta`` of the one at ``folder``) trained with another
    ``diffusion.examples.k`` than the run's ``configured_k``."""
    _refuse_other("diffusion.examples.k", folder, trained_examples_k(meta), configured_k)


def trained_prior(meta: dict) -> str | None:
    """The ``diffusion.prior`` a generator (``meta`` of its ``generator.json``) was trained with;
    None (null) for one trained without a prior or before the knob existed."""
    return (meta.get("prior") or {}).get("kind")


def check_generator_prior(meta: dict, folder: str | Path, configured: str | None) -> None:
    """Refuse a generator (``meta`` of the one at ``folder``) trained with another
    ``diffusion.prior`` than the run's ``configured`` one (None: null, no prior)."""
    _refuse_other("diffusion.prior", folder, trained_prior(meta) or "null", configured or "null")


def text_view_record(view: str, clause_words: tuple[str, ...]) -> dict:
    """What ``generator.json`` records of ``diffusion.text_view`` (the words only for clauses)."""
    return {"kind": view} | ({"clause_words": list(clause_words)} if view == "clauses" else {})


def check_generator_text_view(meta: dict, folder: str | Path, view: str,
                              clause_words: tuple[str, ...]) -> None:
    """Refuse a generator (``meta`` of the one at ``folder``) that reads prompts another way than
    the run's ``diffusion.text_view`` (and, for clauses, its ``clause_words``); one trained before
    the knob existed read the whole prompt."""
    trained = meta.get("text_view") or {"kind": DEFAULT_TEXT_VIEW}
    _refuse_other("diffusion.text_view", folder, trained["kind"], view)
    if view == "clauses":  # as an override writes the list: [with,and]
        _refuse_other("diffusion.clause_words", folder,
                      f"[{','.join(trained.get('clause_words', []))}]",
                      f"[{','.join(clause_words)}]")


def _refuse_other(knob: str, folder: str | Path, trained, configured) -> None:
    """A :class:`ConfigError` if a generator (the one at ``folder``) was trained with another
    value of the generator-shaping ``knob`` than the run configures, naming both ways out."""
    if trained == configured:
        return
    raise ConfigError(
        f"the weight generator at {folder} was trained with {knob}={trained}, but this run "
        f"configures {knob}={configured}; train a generator with it (weightgen-train-generator "
        f"{knob}={configured}, with another paths.generator_dir to keep this one) or set "
        f"{knob}={trained}"
    )


def _retrain(folder: str | Path) -> str:
    return (f"retrain the generator for this run: weightgen-train-generator with this run's "
            f"config (it rewrites {folder})")


def check_generator_inputs(meta: dict, folder: str | Path, base_dir: str | Path, base_sha: str,
                           weights_dir: str | Path, stored_sha256: Collection[str]) -> None:
    """Refuse a generator (``meta`` of the one at ``folder``) whose recorded base or training
    adapters are not this run's: the base at ``base_dir`` (its generator's sha256 ``base_sha``)
    and the adapters of the weight store at ``weights_dir`` (their sha256s ``stored_sha256``)."""
    identity = meta.get("identity") or {}
    fix = _retrain(folder)
    if "base_sha256" not in identity:
        raise StaleArtifactError(
            f"the weight generator at {folder} records no base GAN fingerprint (an older "
            f"weightgen trained it), so it cannot be checked against this run's base and weight "
            f"store; {fix}"
        )
    if identity["base_sha256"] != base_sha:
        raise StaleArtifactError(
            f"the weight generator at {folder} was trained for the base GAN with sha256 "
            f"{identity['base_sha256'][:12]}..., but this run's base at {base_dir} has sha256 "
            f"{base_sha[:12]}... (a generator from another run, or the base was trained again); "
            f"{fix}"
        )
    stored = set(stored_sha256)
    missing = [sha for sha in identity["data_sha256"] if sha not in stored]
    if missing:
        raise StaleArtifactError(
            f"the weight generator at {folder} was trained on {len(identity['data_sha256'])} "
            f"adapters, {len(missing)} of which are not in this run's weight store "
            f"{weights_dir} (e.g. sha256 {missing[0][:12]}...; a generator from "
            f"another run, or adapters trained again since); {fix}"
        )


def check_generator_texts(meta: dict, folder: str | Path, now: Mapping[str, str]) -> None:
    """Refuse a generator (``meta`` of the one at ``folder``) trained on other texts of its
    training concepts than the run's concepts have ``now`` (concept -> texts fingerprint,
    :func:`weightgen.concepts.text_fingerprints.texts_fingerprints`), or on unrecorded ones."""
    recorded = (meta.get("identity") or {}).get("texts_sha256")
    if not isinstance(recorded, Mapping):
        raise StaleArtifactError(
            f"the weight generator at {folder} records no fingerprint of the texts it was "
            f"trained on (an older weightgen trained it), so an edited prompt or phrasing cannot "
            f"be detected; {_retrain(folder)}"
        )
    changed = changed_texts(recorded, now)
    if changed:
        raise StaleArtifactError(
            f"the weight generator at {folder} was trained on other texts (prompt, phrasings) "
            f"of {changed} than this run's concepts have now (a concept edited under the same "
            f"id); rerun weightgen-dataset (it trains their adapters again), then "
            f"{_retrain(folder)}"
        )
