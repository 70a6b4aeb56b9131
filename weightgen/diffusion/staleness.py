"""A weight generator serves only the run it was trained for: the same base GAN and adapters.

``generator.json`` records an ``identity`` (:func:`weightgen.stages.train_generator.training_identity`):
the base GAN's sha256 and the sha256 of every training adapter. A generator copied from another
run, or left behind after the base or the adapters were trained again, would generate weights for
a base it never saw, and every stage using it would exit 0 with wrong numbers; loading it is a
:class:`StaleArtifactError` naming both sides instead.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from weightgen.errors import StaleArtifactError


def check_generator_inputs(meta: dict, folder: str | Path, base_dir: str | Path, base_sha: str,
                           weights_dir: str | Path, stored_sha256: Collection[str]) -> None:
    """Refuse a generator (``meta`` of the one at ``folder``) whose recorded base or training
    adapters are not this run's: the base at ``base_dir`` (its generator's sha256 ``base_sha``)
    and the adapters of the weight store at ``weights_dir`` (their sha256s ``stored_sha256``)."""
    identity = meta.get("identity") or {}
    fix = (f"retrain the generator for this run: weightgen-train-generator with this run's "
           f"config (it rewrites {folder})")
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
