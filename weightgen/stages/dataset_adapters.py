"""The dataset builder's ``adapters`` stage: one adapter per concept of a shard into the weight
store, in this process or in worker processes; their metrics and results table to the loggers.

``builder.processes=P`` splits one command's adapters (stage ``all`` or ``adapters``) over P
spawned worker processes on this machine, built on the shards: the command's shard i/n holds the
concepts i, i+n, ... by id (each shard trains its own in :func:`build_order`); worker k builds
shard (i+k*n)/(n*P), every P-th of them, so the workers together build exactly shard i/n, each
under its own shard lock and into its own manifest part (``manifest.shard-<i+k*n>-of-<n*P>.jsonl``),
resumable as any shard. The command holds shard
i/n's lock meanwhile (a second copy of it waits or fails as before), starts only the workers
with something to train, and gives each ``(num_threads or the cores) // workers`` torch threads
(at least 1). Each worker loads its own base and text encoder (memory grows with P) and needs a
one-device trainer (``trainer.devices=1``). Workers run without progress bars: the command shows
one bar over all of them, logs their lines prefixed ``worker k/W:``, and logs each adapter's
metrics to its own loggers (one W&B run). A user error in a worker stops the others and ends the
command with that error (see :mod:`weightgen.utils.workers`). What merge means does not change:
``all`` (one shard, n=1) merges every part after its workers finish; ``adapters`` leaves the
merge to ``builder.stage=merge``, which joins the parts of any sharding. ``builder.stage=base``
and ``merge`` run in the command's process whatever ``processes`` says.

The adapters are the same tensors, bit for bit, as a one-process build's when every process
trains with the same number of torch threads: each adapter starts from the same base and seed,
and CPU training is deterministic at a fixed thread count. At another count they differ in the
last bits of float32 (6e-8 after the test build's 4 steps; more steps can add up): oneDNN splits
the sums behind a convolution's weight and bias gradients (over batch and pixels) by thread.

Every adapter starts from the same base and the same adapter seed, so all adapters share one
coordinate system. A concept is complete when all its checkpoint steps are in the shard's
manifest; an incomplete one (the build was killed during it) is trained again from its start, so
its checkpoints always come from one run. A complete concept whose files are missing or damaged,
or that was trained on another base or on other pairs or texts (a concept edited under the same
id), is trained again too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import reduce
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from weightgen.concepts.spec import Concept
from weightgen.concepts.text_fingerprints import texts_fingerprints
from weightgen.data.datamodule import PairsDataModule
from weightgen.errors import ConfigError
from weightgen.finetune.concept_fit import adapter_module, fit_on_concept
from weightgen.gan.adapters import Adapter, count_parameters
from weightgen.gan.base import BaseGAN
from weightgen.gan.module import GANModule
from weightgen.gan.recipe import check_recipe, recipe_fingerprint, with_recipe
from weightgen.stages.artifacts import load_base
from weightgen.stages.workspace import Workspace
from weightgen.utils.grid import save_grid, to_uint8
from weightgen.utils.io import atomic_write_json
from weightgen.utils.locks import store_lock
from weightgen.utils.wandb_media import log_pictures, log_table
from weightgen.utils.workers import available_cores, run_in_processes
from weightgen.weights.store import Shard, WeightStore

log = logging.getLogger(__name__)


def adapter_gan(cfg: DictConfig) -> DictConfig:
    """The ``gan`` group the store's adapters train with: ``builder.adapter_recipe`` merged over
    the run's (e.g. a higher rate for fewer ``builder.adapter_steps``)."""
    return with_recipe(cfg.gan, check_recipe(cfg.builder.adapter_recipe, cfg.gan,
                                             "builder.adapter_recipe"))


def adapter_inputs(ws: Workspace, base: BaseGAN, concept_ids: list[str]) -> dict[str, dict]:
    """Per concept, the base, pairs, texts and training-recipe fingerprints its adapter is
    trained from (store rows)."""
    pairs = ws.pair_store.fingerprints(concept_ids)
    texts = texts_fingerprints(ws.concept(c) for c in concept_ids)
    recipe = recipe_fingerprint(adapter_gan(ws.cfg), ws.cfg.builder.adapter_steps)
    return {c: {"base_sha256": base.meta["generator_sha256"], "pairs_sha256": pairs[c],
                "texts_sha256": texts[c], "recipe_sha256": recipe} for c in concept_ids}


class StoreCheckpoints(L.Callback):
    """Writes the adapter to the store after each validation that falls on a checkpoint step."""

    def __init__(self, store: WeightStore, shard: Shard, concept: Concept, adapter: Adapter,
                 steps: list[int], inputs: dict[str, str]):
        self.store, self.shard, self.concept, self.adapter = store, shard, concept, adapter
        self.steps, self.inputs = set(steps), inputs
        self.rows: list[dict] = []

    def on_validation_end(self, trainer: L.Trainer, module: GANModule) -> None:
        step = trainer.global_step
        if step in self.steps:
            quality = {k.removeprefix("val/"): v for k, v in module.last_quality.items()}
            self.rows.append(
                self.store.put(self.shard, self.concept, step,
                               self.adapter.state(module.generator), quality, self.adapter.kind,
                               self.inputs)
            )


def adapter_grid(ws: Workspace, concept: Concept) -> Path:
    """The picture of one adapter: rows source, target, base output, adapter output."""
    return ws.run_dir / "grids" / "dataset" / f"{concept.id}.png"


def adapter_report(ws: Workspace, concept_id: str) -> Path:
    """One adapter's summary (``train_adapter``'s), which the convergence report reads back."""
    return ws.run_dir / "reports" / "adapters" / f"{concept_id}.json"


def train_adapter(ws: Workspace, base: BaseGAN, concept: Concept, store: WeightStore,
                  shard: Shard) -> dict:
    """One concept's adapter run; returns its summary (quality per checkpoint, seconds)."""
    builder = ws.cfg.builder
    steps = sorted(int(s) for s in builder.checkpoint_steps)
    if steps[-1] != builder.adapter_steps:
        raise ConfigError(
            f"builder.checkpoint_steps {steps} must end at builder.adapter_steps "
            f"{builder.adapter_steps}"
        )
    L.seed_everything(ws.cfg.seed, workers=True)
    adapter: Adapter = instantiate(ws.cfg.adapter)
    text = ws.embed([concept.prompt])
    module = adapter_module(base, adapter, text, adapter_gan(ws.cfg))
    data = PairsDataModule(ws.cfg.paths.pairs_dir, [concept.id], ws.cfg.data.batch_size,
                           seed=ws.cfg.seed)
    inputs = adapter_inputs(ws, base, [concept.id])[concept.id]
    callback = StoreCheckpoints(store, shard, concept, adapter, steps, inputs)
    n = builder.grid_images
    result = fit_on_concept(module, data, ws.cfg.trainer, builder.adapter_steps,
                            val_every=reduce(math.gcd, steps), callbacks=[callback], n_samples=n,
                            what=f"training the adapter of concept {concept.id!r}")
    save_grid(
        adapter_grid(ws, concept),
        [list(to_uint8(x)) for x in (data.val_set.sources[:n], data.val_set.targets[0][:n],
                                     result.samples["start"], result.samples["end"])],
        row_labels=["source", "target", "base", "adapter"],
    )
    return {
        "concept": concept.id,
        "split": concept.split,
        "base_psnr": result.start.psnr,
        "base_ssim": result.start.ssim,
        "checkpoints": {r["step"]: {"psnr": r["psnr"], "ssim": r["ssim"]} for r in callback.rows},
        "seconds": result.seconds,
        "adapter_parameters": count_parameters(adapter.state(module.generator)),
    }


# One W&B table row per adapter (its picture, ``adapter_grid``, goes to the adapters/samples panel).
ADAPTER_COLUMNS = ["concept", "prompt", "split", "base_psnr", "final_psnr", "final_ssim", "seconds"]


def build_adapters(ws: Workspace, base: BaseGAN, shard: Shard, loggers: list) -> list[dict]:
    """Adapters for this shard's concepts (train and test), skipping verified complete ones;
    in ``builder.processes`` worker processes when that is more than 1 (:func:`_build_in_workers`).
    Summaries in concept order."""
    store = ws.weight_store
    results = AdapterResults(ws, loggers)
    processes = int(ws.cfg.builder.processes)
    with _shard_lock(ws, store, shard):
        if processes == 1:
            summaries = _build_adapters(ws, base, shard, store, results.add)
        else:
            summaries = _build_in_workers(ws, base, shard, store, processes, results.add)
        results.finish()
    return summaries


def _shard_lock(ws: Workspace, store: WeightStore, shard: Shard):
    return store_lock(store.lock_path(shard), f"shard {shard.index}/{shard.count} of the weight "
                      f"store {store.root}", ws.lock_timeout_s)


def shard_order(ws: Workspace) -> list[Concept]:
    """The run's concepts in the order shards select from: by id."""
    return sorted(ws.concepts, key=lambda c: c.id)


def build_order(ws: Workspace, concepts: list[Concept]) -> list[Concept]:
    """The order a shard trains its ``concepts`` in: held-out ones first (the ceiling's adapters,
    few), then train ones in the selection's pick order, so a build stopped part-way holds about
    a fair training set (the first k train concepts of a whole build are those of
    ``concepts.n_train=k``, what ``diffusion.data.n_concepts=k`` reads)."""
    rank = {concept_id: index for index, concept_id in enumerate(ws.train_pick_order)}
    return sorted(concepts, key=lambda c: (not c.held_out, rank.get(c.id, -1), c.id))


def _pending(ws: Workspace, base: BaseGAN, shard: Shard,
             store: WeightStore) -> tuple[list[Concept], list[Concept], dict[str, str]]:
    """(the shard's concepts, those to train, why each complete one that is not kept is not)."""
    steps = sorted(int(s) for s in ws.cfg.builder.checkpoint_steps)
    concepts = shard.select(shard_order(ws))
    inputs = adapter_inputs(ws, base, [c.id for c in concepts])
    done, rejected = store.verified_concepts(steps, inputs)
    return concepts, [c for c in concepts if c.id not in done], rejected


def _build_adapters(ws: Workspace, base: BaseGAN, shard: Shard, store: WeightStore,
                    finished: Callable[[dict], None]) -> list[dict]:
    """Train this shard's pending concepts one after the other, in :func:`build_order` (the
    caller holds the shard's lock); ``finished(summary)`` after each; summaries in the shard's
    concept order."""
    concepts, pending, rejected = _pending(ws, base, shard, store)
    for concept in pending:
        if concept.id in rejected:
            log.warning("training %s again: %s", concept.id, rejected[concept.id])
    log.info("%d of %d concepts of shard %d/%d are complete and verified",
             len(concepts) - len(pending), len(concepts), shard.index, shard.count)
    if pending:
        store.unmerge()
    summaries = []
    bar = tqdm(build_order(ws, pending), desc="adapters", unit="concept",
               disable=not ws.cfg.progress)
    for concept in bar:
        bar.set_postfix_str(concept.id)
        store.drop_concept(concept.id)
        summary = train_adapter(ws, base, concept, store, shard)
        atomic_write_json(adapter_report(ws, concept.id), summary)
        summaries.append(summary)
        finished(summary)
    order = {c.id: i for i, c in enumerate(concepts)}
    return sorted(summaries, key=lambda s: order[s["concept"]])


class AdapterResults:
    """Each finished adapter's metrics to the loggers as it comes; the table and pictures at the
    end (in the parent when workers build them: one W&B run per command)."""

    def __init__(self, ws: Workspace, loggers: list):
        self.ws, self.loggers = ws, loggers
        self.offset = int(ws.cfg.builder.base_steps)
        self.summaries: list[dict] = []
        self.final_step = max(int(s) for s in ws.cfg.builder.checkpoint_steps)

    def add(self, summary: dict) -> None:
        self.summaries.append(summary)
        final = summary["checkpoints"][self.final_step]
        metrics = {"adapter/base_psnr": summary["base_psnr"], "adapter/final_psnr": final["psnr"],
                   "adapter/final_ssim": final["ssim"], "adapter/seconds": summary["seconds"]}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.offset + len(self.summaries))

    def finish(self) -> None:
        if not self.summaries:
            return
        concepts = [self.ws.concept(s["concept"]) for s in self.summaries]
        rows = [[c.id, c.prompt, c.split, s["base_psnr"], s["checkpoints"][self.final_step]["psnr"],
                 s["checkpoints"][self.final_step]["ssim"], s["seconds"]]
                for c, s in zip(concepts, self.summaries, strict=True)]
        log_table(self.loggers, "adapters/results", ADAPTER_COLUMNS, rows)
        log_pictures(self.loggers, "adapters/samples", [adapter_grid(self.ws, c) for c in concepts])


# --- several worker processes (builder.processes) ----------------------------------------------


def sub_shards(shard: Shard, processes: int) -> list[Shard]:
    """The shards of ``processes`` workers that together build exactly ``shard``'s concepts.

    ``shard`` i/n holds the concepts at i, i+n, i+2n, ... of the sorted list; worker k takes every
    ``processes``-th of those, i + k*n, i + k*n + n*processes, ...: shard (i + k*n)/(n*processes).
    """
    return [Shard(shard.index + k * shard.count, shard.count * processes) for k in range(processes)]


def worker_threads(cfg: DictConfig, workers: int) -> int:
    """torch threads of each worker: the command's (``num_threads``, else the cores this process
    may use) shared out, at least one each."""
    return max(1, int(cfg.num_threads or available_cores()) // workers)


def _build_in_workers(ws: Workspace, base: BaseGAN, shard: Shard, store: WeightStore,
                      processes: int, finished: Callable[[dict], None]) -> list[dict]:
    """``shard``'s adapters in up to ``processes`` spawned workers, one sub-shard each.

    The parent holds ``shard``'s lock; each worker builds its sub-shard as a one-process build of
    that shard would (its own lock, manifest part and resume). A worker whose sub-shard has nothing
    to train is not started; the cores are shared among those that are.
    """
    concepts, pending, _ = _pending(ws, base, shard, store)
    wanted = {c.id for c in pending}
    todo = [(part, count) for part in sub_shards(shard, processes)
            if (count := sum(c.id in wanted for c in part.select(shard_order(ws))))]
    log.info("%d of %d concepts of shard %d/%d are complete and verified; %d to train in %d "
             "worker processes", len(concepts) - len(pending), len(concepts), shard.index,
             shard.count, len(pending), len(todo))
    if not todo:
        return []
    threads = worker_threads(ws.cfg, len(todo))
    names = [f"worker {k + 1}/{len(todo)}" for k in range(len(todo))]
    for name, (part, count) in zip(names, todo, strict=True):
        log.info("%s: shard %d/%d, %d concepts to train, %d torch threads", name, part.index,
                 part.count, count, threads)
    bar = tqdm(total=len(pending), desc="adapters", unit="concept", disable=not ws.cfg.progress)

    def report(index: int, summary: dict) -> None:
        bar.update()
        bar.set_postfix_str(summary["concept"])
        finished(summary)

    def done(index: int, summaries: list[dict]) -> None:
        log.info("%s finished: %d adapters (shard %d/%d)", names[index], len(summaries),
                 todo[index][0].index, todo[index][0].count)

    with bar:
        built = run_in_processes(
            _adapters_worker, [(worker_config(ws.cfg, part, threads),) for part, _ in todo],
            names, on_report=report, on_done=done,
        )
    order = {c.id: i for i, c in enumerate(concepts)}
    return sorted((s for summaries in built for s in summaries), key=lambda s: order[s["concept"]])


def worker_config(cfg: DictConfig, part: Shard, threads: int) -> DictConfig:
    """The command's config, resolved (a worker has no Hydra context), for one worker: its
    sub-shard, ``threads`` torch threads, no progress bars, one process."""
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    resolved.builder.stage = "adapters"
    resolved.builder.shard = f"{part.index}/{part.count}"
    resolved.builder.processes = 1
    resolved.num_threads = threads
    resolved.progress = False
    return resolved


def _adapters_worker(cfg: DictConfig, report: Callable[[dict], None]) -> list[dict]:
    """One worker process: its sub-shard's adapters, each summary reported as it is stored."""
    ws = Workspace(cfg)
    shard = Shard.parse(cfg.builder.shard)
    store = ws.weight_store
    with _shard_lock(ws, store, shard):
        return _build_adapters(ws, load_base(ws), shard, store, report)
