"""A run's artifacts as library objects, built from the Workspace's config.

Stages share these: the base GAN and the weight generator (each checked against the run's
config and its pairs and texts of now, before anything is built), the generator's training rows
and texts, the init sources, the adapter scorer and the fine-tune set-up. The library functions
they call take plain arguments; this is where the config is read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler
from hydra.utils import instantiate
from omegaconf import OmegaConf

from weightgen.concepts.text_fingerprints import PROMPT, changed_texts, texts_fingerprints
from weightgen.data.datamodule import images_to_tensor
from weightgen.data.pairs import PairStore
from weightgen.diffusion import bundle
from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.conditioning import check_conditioning
from weightgen.diffusion.examples import PairEncoder
from weightgen.diffusion.prior import check_prior
from weightgen.diffusion.staleness import (
    check_generator_conditioning,
    check_generator_examples,
    check_generator_inputs,
    check_generator_prior,
    check_generator_text_view,
    check_generator_texts,
)
from weightgen.diffusion.task_loss import TaskLoss
from weightgen.errors import StaleArtifactError
from weightgen.finetune.controls import ControlInputs
from weightgen.finetune.finetuner import FineTuneSetup
from weightgen.finetune.init_kinds import ENSEMBLE_KEYS
from weightgen.finetune.inits import InitSources
from weightgen.gan import base as base_gan
from weightgen.gan.adapter_evaluator import AdapterEvaluator
from weightgen.gan.base import BaseGAN
from weightgen.gan.pair_loss import PairLoss
from weightgen.stages.workspace import Workspace
from weightgen.text.clauses import check_text_view
from weightgen.weights import training_set
from weightgen.weights.freshness import check_rows_current
from weightgen.weights.tokenizer import BlockTokenizer


def architecture(ws: Workspace) -> dict:
    """What a set of weights is only valid for: recorded with the base and every generator."""
    return base_gan.architecture(ws.cfg.gan.generator, ws.text_encoder.config(), ws.cfg.data.size)


def read_base_meta(ws: Workspace) -> dict:
    """The run's ``base.json`` (what the base was trained for and from, its files' sha256)."""
    return base_gan.read_base_meta(ws.cfg.paths.base_dir)


def load_base(ws: Workspace) -> BaseGAN:
    """The run's trained base, checked against its architecture (a mismatch names both) and
    against the pairs it was trained on."""
    base_dir = ws.cfg.paths.base_dir
    meta = base_gan.read_base_meta(base_dir, {"architecture": architecture(ws)})
    check_base_pairs(ws, meta)
    check_base_texts(ws, meta)
    return base_gan.load_base(base_dir, meta, ws.cfg.gan, ws.text_encoder.dim)


def _rebuild_base(ws: Workspace) -> str:
    return (f"delete {ws.cfg.paths.base_dir} and rerun weightgen-dataset to train the base again "
            f"(the adapters retrain after it)")


def check_base_pairs(ws: Workspace, meta: dict) -> None:
    """Refuse a base trained on other pairs than the pair cache now holds (or on unknown ones)."""
    base_dir, pairs_dir = ws.cfg.paths.base_dir, ws.cfg.paths.pairs_dir
    rebuild = _rebuild_base(ws)
    recorded = meta.get("pairs_sha256")
    if recorded is None:
        raise StaleArtifactError(
            f"the base GAN at {base_dir} records no fingerprint of the pairs it was trained on "
            f"(an older weightgen built it), so a change to them cannot be detected; {rebuild}"
        )
    now = ws.pair_store.fingerprints(list(recorded))
    changed = sorted(c for c, sha in recorded.items() if now[c] != sha)
    if changed:
        raise StaleArtifactError(
            f"the base GAN at {base_dir} was trained on other pairs of {changed} than the pair "
            f"cache {pairs_dir} holds now (a concept edited under the same id, or rebuilt "
            f"pairs); {rebuild}, or restore those concepts"
        )


def check_base_texts(ws: Workspace, meta: dict) -> None:
    """Refuse a base trained on other prompts than the run's concepts have now (or unknown ones)."""
    base_dir = ws.cfg.paths.base_dir
    recorded = meta.get("texts_sha256")
    if recorded is None:
        raise StaleArtifactError(
            f"the base GAN at {base_dir} records no fingerprint of the prompts it was trained on "
            f"(an older weightgen built it), so an edited prompt cannot be detected; "
            f"{_rebuild_base(ws)}"
        )
    changed = changed_texts(recorded, texts_fingerprints(ws.concepts, PROMPT))
    if changed:
        raise StaleArtifactError(
            f"the base GAN at {base_dir} was trained on other prompts of {changed} than this "
            f"run's concepts have now (a prompt edited under the same id); {_rebuild_base(ws)}, "
            f"or restore those prompts"
        )


def generator_expectations(ws: Workspace) -> dict:
    """What a weight generator must have been trained for to serve this run's config."""
    return bundle.generator_expectations(architecture(ws), ws.cfg.adapter, ws.cfg.tokenizer)


def configured_conditioning(ws: Workspace) -> str:
    """The run's ``diffusion.conditioning``, checked."""
    return check_conditioning(ws.cfg.diffusion.conditioning)


def configured_examples_k(ws: Workspace) -> int:
    """The run's ``diffusion.examples.k`` (0: text only)."""
    return int(ws.cfg.diffusion.examples.k)


def configured_prior(ws: Workspace) -> str | None:
    """The run's ``diffusion.prior`` (None: no prior), checked."""
    return check_prior(ws.cfg.diffusion.prior)


def configured_text_view(ws: Workspace) -> tuple[str, tuple[str, ...]]:
    """The run's ``diffusion.text_view`` and its clause words, checked."""
    return check_text_view(ws.cfg.diffusion.text_view, ws.cfg.diffusion.clause_words)


def load_generator(ws: Workspace) -> WeightGenerator:
    """The run's weight generator, checked against its configuration, base and weight store.

    Every stage that uses a generator loads it here (generate, finetune, bench, zero-shot,
    new-concept, studies).
    """
    folder = ws.cfg.paths.generator_dir
    meta = WeightGenerator.read_meta(folder, expect=generator_expectations(ws))
    check_generator_conditioning(meta, folder, configured_conditioning(ws))
    check_generator_examples(meta, folder, configured_examples_k(ws))
    check_generator_prior(meta, folder, configured_prior(ws))
    check_generator_text_view(meta, folder, *configured_text_view(ws))
    check_generator_inputs(meta, folder, ws.cfg.paths.base_dir,
                           read_base_meta(ws)["generator_sha256"], ws.cfg.paths.weights_dir,
                           {row["sha256"] for row in ws.weight_store.rows()})
    check_generator_texts(meta, folder, texts_fingerprints(ws.concepts))
    return WeightGenerator.from_meta(folder, meta)  # built only once every check passed


def current_rows(ws: Workspace, rows: list[dict]) -> list[dict]:
    """``rows`` of the weight store, refused if any was trained on another base, other pairs
    or other texts than the run's now."""
    return check_rows_current(
        rows, read_base_meta(ws)["generator_sha256"],
        ws.pair_store.fingerprints(sorted({r["concept"] for r in rows})),
        texts_fingerprints(ws.concepts), ws.cfg.paths.weights_dir,
    )


def training_rows(ws: Workspace, checkpoints: str | None = None) -> list[dict]:
    """Store rows the generator learns from (``diffusion.data``; ``checkpoints`` overrides),
    each checked to be trained on the run's base and pairs of now."""
    data = ws.cfg.diffusion.data
    return current_rows(ws, training_set.training_rows(
        ws.weight_store, ws.train_pick_order, {c.id for c in ws.held_out_concepts},
        data.n_concepts, data.checkpoints if checkpoints is None else checkpoints,
    ))


def training_texts(ws: Workspace, rows: list[dict],
                   phrasings: str | None = None) -> dict[str, tuple[str, ...]]:
    """The texts the generator may see for each training concept (``diffusion.data.phrasings``;
    ``phrasings`` overrides: ``all``, every training phrasing, is what the text ridge control
    reads)."""
    return training_set.training_texts(
        rows, phrasings or ws.cfg.diffusion.data.phrasings,
        training_set.held_out_texts(ws.concepts, ws.weight_store), str(ws.weight_store.root),
    )


def default_inits(ws: Workspace, base: BaseGAN, generator: WeightGenerator | None = None,
                  standard_state: dict[str, torch.Tensor] | None = None,
                  pair_store: PairStore | None = None) -> InitSources:
    """Init sources on this run's store and (optional) weight generator.

    ``standard_state``: the standard init of an adapter already attached (an evaluator's);
    by default a new adapter is attached to a copy of the base (which draws random numbers).
    ``pair_store``: where the concepts' example pairs are (default: the run's pair cache; a new
    concept's folder pairs have a store of their own, and the training concepts' pairs, which
    the controls read, stay in the run's).
    """
    if standard_state is None:
        adapter = instantiate(ws.cfg.adapter)
        adapter.attach(base.fresh_copy()[0])
        standard_state = adapter.standard_state()
    store = ws.weight_store
    run_pairs = partial(training_pairs, ws.pair_store)
    pairs = run_pairs if pair_store is None else partial(pairs_from_either, pair_store, run_pairs)
    return InitSources(store, partial(training_rows, ws, "last"),
                       lambda: current_rows(ws, store.final_rows()), ws.text_encoder,
                       standard_state, generator, dict(ws.cfg.diffusion.sampling),
                       generator_text=ws.generator_text,
                       example_pairs=pairs,
                       pair_encoder=partial(PairEncoder, base.generator),
                       controls=control_inputs(ws),
                       pair_loss=partial(PairLoss, base, instantiate(ws.cfg.adapter)))


def control_inputs(ws: Workspace) -> ControlInputs:
    """The controls' knobs (``bench.controls``, the choice on the pairs' and the ensembles'
    included), the run's
    held-out and validation concepts and every training phrasing of the training concepts."""
    knobs = ws.cfg.bench.controls
    return ControlInputs(
        k_blend=int(knobs.k_blend), ridge_alphas=tuple(float(a) for a in knobs.ridge_alphas),
        seed=int(knobs.seed), choice_candidates=tuple(knobs.choice.candidates),
        choice_samples=int(knobs.choice.samples),
        ensembles={kind: tuple(OmegaConf.select(ws.cfg, key))
                   for kind, (key, _) in ENSEMBLE_KEYS.items()},
        heldout=[c.id for c in ws.held_out_of(ws.cfg.bench.split)],
        validation=ws.val_concepts,
        training_phrasings=lambda: training_texts(ws, training_rows(ws, "last"), "all"),
        n_concepts=ws.cfg.diffusion.data.n_concepts,
    )


def training_pairs(pair_store: PairStore, concept_id: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, S, S, 3] (sources, targets) a concept's fine-tune trains on."""
    pairs = pair_store.load(concept_id)
    return pairs.train_source, pairs.train_target


def pairs_from_either(pair_store: PairStore,
                      otherwise: Callable[[str], tuple[np.ndarray, np.ndarray]],
                      concept_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The training pairs of ``concept_id`` from ``pair_store`` when it holds them (a new
    concept's own store), else from ``otherwise`` (the run's pair cache)."""
    if pair_store.fingerprints([concept_id])[concept_id] is not None:
        return training_pairs(pair_store, concept_id)
    return otherwise(concept_id)


def adapter_evaluator(ws: Workspace, base: BaseGAN,
                      pair_store: PairStore | None = None) -> AdapterEvaluator:
    """The adapter scorer on the validation pairs of ``pair_store`` (default: the run's)."""
    return AdapterEvaluator(base, instantiate(ws.cfg.adapter),
                            ws.pair_store if pair_store is None else pair_store,
                            ws.text_encoder)


def scoring_tools(ws: Workspace) -> tuple[AdapterEvaluator, InitSources]:
    """The GAN scorer on the run's base and every init of the run, the generator's included."""
    base = load_base(ws)
    return adapter_evaluator(ws, base), default_inits(ws, base, load_generator(ws))


def fine_tune_setup(ws: Workspace, base: BaseGAN, inits: InitSources,
                    pairs_dir: str | Path | None = None) -> FineTuneSetup:
    """Fine-tunes on the run's pair cache, or on ``pairs_dir`` (a new concept's own pairs)."""
    return FineTuneSetup(
        base, inits, ws.text_encoder, ws.cfg.gan, ws.cfg.adapter, ws.cfg.trainer,
        Path(pairs_dir if pairs_dir is not None else ws.cfg.paths.pairs_dir),
        int(ws.cfg.data.batch_size), int(ws.cfg.seed),
    )


def task_loss(ws: Workspace, tokenizer: BlockTokenizer, concept_ids: list[str],
              blocks: torch.Tensor, concept_index: torch.Tensor) -> TaskLoss:
    """The generator's objective through the run's frozen base GAN (``diffusion.task_loss``):
    the first ``pool`` training pairs of each of ``concept_ids`` loaded once, the GAN's text of
    each concept's prompt encoded once; ``blocks``/``concept_index`` are the training adapters."""
    options = ws.cfg.diffusion.task_loss
    scheduler = DDPMScheduler(**OmegaConf.to_container(ws.cfg.diffusion.scheduler, resolve=True))
    prompts = {c.id: c.prompt for c in ws.concepts}
    gan_text = ws.embed([prompts[c] for c in concept_ids])
    pairs = [ws.pair_store.load(c) for c in concept_ids]
    sources = images_to_tensor(pairs[0].train_source[: options.pool])  # shared by all concepts
    targets = torch.stack([images_to_tensor(p.train_target[: options.pool]) for p in pairs])
    return TaskLoss(load_base(ws).generator, tokenizer, scheduler, gan_text.tokens, gan_text.mask,
                    sources, targets, blocks, concept_index, weight=options.weight,
                    diffusion_weight=options.diffusion_weight, concepts=options.concepts,
                    pairs=options.pairs, timestep=options.timestep, every=options.every)
