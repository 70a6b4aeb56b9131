"""Training the weight generator on the weight store (the ``generator`` stage).

Train concepts' adapters are tokenised (the tokenizer is fitted on them), the denoiser learns
them conditioned on each concept's prompt (or, with ``diffusion.data.phrasings=all``, on one of
its training phrasings drawn per item), and every ``diffusion.val_every`` steps a callback
generates full adapters for a few train and held-out concepts, loads them into the GAN and logs
the GAN's validation PSNR next to the base's and the trained adapter's: the validation that
matters. ``diffusion.conditioning`` (which text the denoiser reads: tokens, the pooled sentence
vector, or both) goes into the denoiser's config and so into ``generator.json``;
``diffusion.text_noise`` perturbs the training texts only (``weightgen.diffusion.module``).
With ``diffusion.examples.k > 0`` up to ``diffusion.examples.bank`` training pairs of each
training concept are encoded once by the base GAN's encoder before training
(``weightgen.diffusion.examples``); the denoiser reads k of them per item besides the text (as
their mean, and with ``diffusion.examples.set_width > 0`` also as a set through a learned
encoder, ``weightgen.diffusion.pair_set_encoder``), and their standardisation is saved with the
generator.
With ``diffusion.task_loss.weight > 0`` the generator also learns through the frozen base GAN
(``weightgen.diffusion.task_loss``); the setting is part of the training identity.
With ``diffusion.prior`` a ridge map from the example vector (or the pooled text vector) to the
tokens is fitted before training (``weightgen.diffusion.prior``): the denoiser learns the
residual from its out-of-fold predictions, and the map fitted on every training concept is saved
with the generator, which adds it when it generates.
Under DDP every rank trains; rank 0 validates and writes the generator, and the ranks' parameter
checksums are compared at the end (replicas that diverged are an error).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import lightning as L
import torch
from diffusers import DDPMScheduler
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from weightgen.concepts.spec import Concept
from weightgen.data.pairs import PairStore
from weightgen.derived_reports import drop_earlier_logs, drop_generator_reports
from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.condition import Condition
from weightgen.diffusion.conditioning import DEFAULT_CONDITIONING
from weightgen.diffusion.data import WeightBlocksDataModule, WeightBlocksDataset
from weightgen.diffusion.denoisers import denoiser_class
from weightgen.diffusion.example_bank import ExampleBank
from weightgen.diffusion.examples import (
    FEATURES,
    ExampleStandardiser,
    PairEncoder,
    bank_features,
)
from weightgen.diffusion.module import WeightDiffusionModule, phrasing_table
from weightgen.diffusion.prior import (
    PriorFit,
    RidgePrior,
    concept_targets,
    fit_prior,
    training_inputs,
)
from weightgen.diffusion.staleness import text_view_record
from weightgen.errors import ConfigError
from weightgen.gan.adapter_evaluator import AdapterEvaluator
from weightgen.stages.artifacts import (
    adapter_evaluator,
    configured_conditioning,
    configured_examples_k,
    configured_prior,
    configured_text_view,
    default_inits,
    generator_expectations,
    load_base,
    read_base_meta,
    task_loss,
    training_pairs,
    training_rows,
    training_texts,
)
from weightgen.stages.workspace import Workspace, finish_loggers
from weightgen.text.clauses import DEFAULT_TEXT_VIEW
from weightgen.training import fit, make_trainer
from weightgen.utils.locks import lock_beside, store_lock
from weightgen.utils.wandb_media import log_strips, wandb_on

log = logging.getLogger(__name__)


def parameter_checksum(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


SAMPLE_IMAGES = 4  # validation crops per concept in the W&B pictures of generated adapters


class GeneratedAdapterQuality(L.Callback):
    """At each validation, GAN PSNR of generated adapters for a few train and test concepts, and
    (with W&B) their outputs: source | target | generated adapter's output."""

    def __init__(self, ws: Workspace, tokenizer, concepts: list[Concept], sampling: dict,
                 prior: RidgePrior | None = None):
        self.ws, self.tokenizer, self.concepts, self.sampling = ws, tokenizer, concepts, sampling
        self.prior = prior  # the generator's prior (diffusion.prior), added to what it generates
        self.history: list[dict] = []
        self._evaluator: AdapterEvaluator | None = None
        self._reference: dict[str, dict[str, float]] = {}

    def _setup(self) -> AdapterEvaluator:
        if self._evaluator is None:
            base = load_base(self.ws)
            self._evaluator = adapter_evaluator(self.ws, base)
            sources = default_inits(self.ws, base,
                                    standard_state=self._evaluator.standard_state)
            for concept in self.concepts:
                base = self._evaluator.quality(concept, sources.get("standard", concept).state)
                trained = self._evaluator.quality(concept, sources.get("trained", concept).state)
                self._reference[concept.id] = {"base": base.psnr, "trained": trained.psnr}
        return self._evaluator

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, module: WeightDiffusionModule) -> None:
        evaluator = self._setup()
        generator = WeightGenerator(module.denoiser, self.tokenizer,
                                    {"scheduler": dict(module.scheduler.config)}, prior=self.prior)
        row: dict[str, float] = {"step": trainer.global_step}
        strips = {}
        for split in ("train", "test"):
            gaps = []
            for concept in (c for c in self.concepts if c.split == split):
                text = Condition.of_text(self.ws.generator_text.encode([concept.prompt]))
                state = generator.generate(text, **self.sampling).state
                psnr = evaluator.quality(concept, state).psnr
                if wandb_on(trainer.loggers):
                    caption = f"{concept.id} ({split}): source | target | generated"
                    strips[caption] = evaluator.samples(concept, state, SAMPLE_IMAGES)
                ref = self._reference[concept.id]
                row[f"gen_psnr/{concept.id}"] = psnr
                # Fraction of the base -> trained-adapter gap the generated adapter closes.
                if ref["trained"] > ref["base"]:
                    gaps.append((psnr - ref["base"]) / (ref["trained"] - ref["base"]))
            # None where no trained adapter beats the base (the fraction means nothing there).
            row[f"gen/{split}_gap_closed"] = sum(gaps) / len(gaps) if gaps else None
        self.history.append(row)
        metrics = {k: v for k, v in row.items() if k != "step" and v is not None}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        log_strips(trainer.loggers, "generator/samples", strips, step=trainer.global_step)


def validation_concepts(ws: Workspace, count: int) -> list[Concept]:
    """The concepts the generator's quality is tracked on while it trains: the first ``count``
    train concepts in pick order (in every ``diffusion.data.n_concepts`` of at least as many)
    and the first ``count`` test concepts."""
    return ws.first_train_concepts(count) + ws.test_concepts[:count]


def generator_seed(cfg: DictConfig) -> int:
    """The generator's training seed: ``diffusion.seed``, or the run's ``seed`` when that is null
    (``cfg``: the run's config).

    Its own knob so that a generator can be retrained on other seeds without touching the run's
    seed, which the store and every benchmark run depend on."""
    seed = cfg.diffusion.seed
    return int(cfg.seed if seed is None else seed)


def training_identity(cfg: DictConfig, expectations: dict, base_sha256: str, rows: list[dict],
                      phrasings: dict[str, tuple[str, ...]]) -> dict:
    """Everything a trained generator depends on; equal identity -> the stage is skipped.

    From the run's config (``cfg``: its ``diffusion`` and ``denoiser`` trees and the seed), what
    the generator must have been trained for (``expectations``,
    :func:`~weightgen.stages.artifacts.generator_expectations`), the base's generator file
    (``base_sha256``) and the training rows and texts. ``base_sha256``, ``data_sha256`` (the
    training adapters) and ``texts_sha256`` (their concepts' texts, as the store rows record
    them) are also what every stage that loads the generator checks against its run
    (:mod:`weightgen.diffusion.staleness`).
    """
    diffusion = OmegaConf.to_container(cfg.diffusion, resolve=True)
    diffusion.pop("sampling")  # how to sample later does not change the trained weights
    # Prompts only, as before the phrasings knob existed: generators trained then stay up to date.
    all_phrasings = diffusion["data"].pop("phrasings") != "canonical"
    # The same for the conditioning and text-noise knobs at their defaults (today's training).
    if diffusion["conditioning"] == DEFAULT_CONDITIONING:
        diffusion.pop("conditioning")
    if diffusion["text_view"] == DEFAULT_TEXT_VIEW:  # the whole prompt, whatever the words say
        diffusion.pop("text_view")
        diffusion.pop("clause_words")
    if diffusion["text_noise"] == 0:
        diffusion.pop("text_noise")
    if not diffusion["examples"]["k"]:
        diffusion.pop("examples")
    elif not diffusion["examples"]["set_width"]:  # the mean of the pairs, as before the knob
        diffusion["examples"].pop("set_width")
    if diffusion["task_loss"]["weight"] == 0:
        diffusion.pop("task_loss")  # off: the diffusion loss alone, whatever its other knobs say
    if diffusion["prior"] is None:  # no prior, whatever its alphas and folds say
        for key in ("prior", "prior_alphas", "prior_folds"):
            diffusion.pop(key)
    diffusion.pop("seed")  # resolved into "seed" below
    identity = expectations | {
        "diffusion": diffusion,
        "denoiser_config": OmegaConf.to_container(cfg.denoiser, resolve=True),
        "seed": generator_seed(cfg),
        "base_sha256": base_sha256,
        "data_sha256": sorted(r["sha256"] for r in rows),
        "texts_sha256": {r["concept"]: r.get("texts_sha256") for r in rows},
    }
    if all_phrasings:
        identity["phrasings"] = {concept: list(texts) for concept, texts in phrasings.items()}
    return identity


def example_bank(encoder: PairEncoder, pair_store: PairStore, concept_ids: list[str],
                 bank: int) -> tuple[torch.Tensor, ExampleStandardiser]:
    """[C, bank, F] standardised per-pair vectors of the first ``bank`` training pairs of each
    concept (``diffusion.examples.bank``; encoded by ``encoder``, the base GAN's), and their
    standardiser."""
    start = time.perf_counter()
    features = bank_features(encoder, (training_pairs(pair_store, c) for c in concept_ids), bank)
    standardiser = ExampleStandardiser.fit(features.flatten(0, 1))
    log.info("encoded %d example pairs of %d training concepts (%d features each) in %.1f s",
             features.shape[0] * features.shape[1], len(concept_ids), features.shape[2],
             time.perf_counter() - start)
    return standardiser(features), standardiser


def ridge_prior(kind: str, alphas: list[float], folds: int, blocks: torch.Tensor,
                concept_index: torch.Tensor, bank: torch.Tensor | None,
                pooled: torch.Tensor | None, phrasings: torch.Tensor, seed: int) -> PriorFit:
    """The prior of ``kind`` (``diffusion.prior``, ``prior_alphas``, ``prior_folds``), fitted on
    the training tokens ``blocks`` of the concepts ``concept_index`` from the standardised
    example ``bank`` or the ``pooled`` vectors of the training texts (``phrasings``: each
    concept's); its folds drawn with the generator's ``seed``."""
    start = time.perf_counter()
    inputs, row_concept = training_inputs(kind, bank, pooled, phrasings)
    targets = concept_targets(blocks, concept_index, phrasings.shape[0])
    fit = fit_prior(kind, inputs, row_concept, targets, alphas, folds, seed)
    log.info("fitted the %s prior on %d rows of %d training concepts (alpha %g, %d folds) in "
             "%.1f s", kind, len(row_concept), targets.shape[0], fit.prior.alpha,
             fit.prior.fit["folds"], time.perf_counter() - start)
    return fit


def train_weight_generator(ws: Workspace) -> dict:
    """Train (or, when an intact one with this identity is on disk, skip) the generator."""
    folder = Path(ws.cfg.paths.generator_dir)
    with store_lock(lock_beside(folder), f"the weight generator {folder}", ws.lock_timeout_s):
        return _train_weight_generator(ws, folder)


def _train_weight_generator(ws: Workspace, folder: Path) -> dict:
    cfg = ws.cfg.diffusion
    ws.save_config("generator")
    rows = training_rows(ws)
    phrasings = training_texts(ws, rows)
    expectations = generator_expectations(ws)
    identity = training_identity(ws.cfg, expectations, read_base_meta(ws)["generator_sha256"],
                                 rows, phrasings)
    meta = WeightGenerator.intact_meta(folder)  # None: none, or damaged: trained again
    if meta is not None and meta.get("identity") == identity:
        log.info("the weight generator at %s is up to date; skipping training", folder)
        return meta["training"] | {"skipped": True}
    store = ws.weight_store
    adapters = [store.load(r) for r in rows]
    tokenizer = instantiate(ws.cfg.tokenizer).fit(adapters)
    blocks = torch.stack([tokenizer.tokenize(a) for a in adapters]).float()
    concept_ids = sorted({r["concept"] for r in rows})
    texts, phrasing_index = phrasing_table([phrasings[c] for c in concept_ids])
    text = ws.generator_text.encode(texts)  # every phrasing encoded once, before training
    concept_index = torch.tensor([concept_ids.index(r["concept"]) for r in rows])
    examples_k = configured_examples_k(ws)
    set_width = int(cfg.examples.set_width) if examples_k else 0
    bank, standardiser = (example_bank(PairEncoder(load_base(ws).generator), ws.pair_store,
                                       concept_ids, int(cfg.examples.bank))
                          if examples_k else (None, None))
    objective = None  # built before seeding: the denoiser starts as without the task loss
    if cfg.task_loss.weight > 0:
        objective = task_loss(ws, tokenizer, concept_ids, blocks, concept_index)
    seed = generator_seed(ws.cfg)
    prior_kind = configured_prior(ws)
    prior = (ridge_prior(prior_kind, [float(a) for a in cfg.prior_alphas], int(cfg.prior_folds),
                         blocks, concept_index, bank, text.pooled, phrasing_index, seed)
             if prior_kind else None)  # draws nothing global

    L.seed_everything(seed, workers=True)
    denoiser_cfg = OmegaConf.to_container(ws.cfg.denoiser, resolve=True) | {
        "block_size": tokenizer.block_size,
        "num_blocks": tokenizer.num_blocks,
        "text_dim": ws.text_encoder.dim,
        "conditioning": configured_conditioning(ws),  # recorded: the bundle rebuilds it
    } | ({"example_dim": standardiser.dim} if examples_k else {}) | (
        {"example_set_width": set_width} if set_width else {})
    try:
        make_denoiser, denoiser_kwargs = denoiser_class(denoiser_cfg)
    except ValueError as err:
        raise ConfigError(f"the denoiser config cannot be saved with a generator: {err}; use "
                          f"denoiser=mlp or denoiser=unet1d and their own keys") from err
    denoiser = make_denoiser(**denoiser_kwargs)
    scheduler = DDPMScheduler(**OmegaConf.to_container(cfg.scheduler, resolve=True))
    module = WeightDiffusionModule(
        denoiser, scheduler, Condition.of_text(text),
        optimizer=instantiate(cfg.optimizer, _convert_="all"),
        lr_scheduler=instantiate(cfg.lr_scheduler, _convert_="all"),
        cond_drop_prob=cfg.cond_drop_prob, phrasings=phrasing_index, text_noise=cfg.text_noise,
        examples=(ExampleBank(bank, examples_k, cfg.examples.drop_prob, sets=set_width > 0)
                  if examples_k else None),
        task_loss=objective, prior=prior.out_of_fold if prior else None,
    )
    data = WeightBlocksDataModule(
        WeightBlocksDataset(blocks, concept_index), batch_size=cfg.batch_size, seed=seed
    )
    sampling = OmegaConf.to_container(cfg.sampling, resolve=True)
    quality = GeneratedAdapterQuality(ws, tokenizer, validation_concepts(ws, cfg.val_concepts),
                                      sampling, prior.prior if prior else None)
    callbacks: list[L.Callback] = [quality]
    if cfg.ema_decay:
        callbacks.append(EMAWeightAveraging(decay=cfg.ema_decay))
    loggers = ws.loggers("generator", csv_dir=folder / "logs")
    trainer = make_trainer(ws.cfg.trainer, cfg.steps, val_every=cfg.val_every, callbacks=callbacks,
                           logger=loggers, progress=ws.cfg.progress,
                           progress_label="weight generator")
    start = time.perf_counter()
    try:
        fit(trainer, module, data, "training the weight generator")
    finally:
        finish_loggers(loggers)
    seconds = time.perf_counter() - start

    checksum = parameter_checksum(module.denoiser)
    checksums = trainer.strategy.all_gather(
        torch.tensor([int(checksum[:15], 16)], dtype=torch.long)
    ).reshape(-1).tolist()
    if len(set(checksums)) > 1:
        raise RuntimeError(f"DDP replicas diverged: parameter checksums {checksums} differ")
    summary = {
        "adapters": len(rows),
        "concepts": len(concept_ids),
        "num_blocks": tokenizer.num_blocks,
        "block_size": tokenizer.block_size,
        "denoiser_parameters": sum(p.numel() for p in denoiser.parameters()),
        "steps": int(cfg.steps),
        "seconds": seconds,
        "world_size": trainer.world_size,
        "replica_checksums": checksums,
        "validation": quality.history,
    }
    if trainer.is_global_zero:
        meta = expectations | {
            "denoiser": denoiser_cfg,
            "scheduler": dict(scheduler.config),
            "text_encoder": ws.text_encoder.config(),
            "text_view": text_view_record(*configured_text_view(ws)),
            "train_concepts": concept_ids,
            "train_phrasings": {c: list(phrasings[c]) for c in concept_ids},
            "identity": identity,
            "training": summary,
        }
        if examples_k:
            meta["examples"] = {"k": examples_k, "bank": bank.shape[1], "features": FEATURES}
        WeightGenerator(module.denoiser, tokenizer, meta, standardiser,
                        prior.prior if prior else None).save(folder)
        # Only now that the new generator is in place: a failed save keeps the old one's.
        drop_generator_reports(folder, ws.cfg.paths.bench_dir)
        for logger in loggers:
            if isinstance(logger, CSVLogger):
                drop_earlier_logs(logger.log_dir, "generator")
    return summary
