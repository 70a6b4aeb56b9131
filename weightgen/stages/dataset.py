"""The GAN dataset builder: base GAN once, then one adapter per concept into the weight store.

Stages (``builder.stage``): ``base`` (pairs + base GAN), ``adapters`` (this shard's concepts),
``merge`` (join shard manifests, check completeness), ``all`` (the three in one process).
With several shards, run ``base`` once, ``adapters`` per shard (in parallel, on any machines that
see the run folder), then ``merge``.

``builder.processes=P`` splits one command's adapters (stage ``all`` or ``adapters``) over P
spawned worker processes on this machine, built on the shards: the command's shard i/n holds the
concepts i, i+n, ...; worker k builds shard (i+k*n)/(n*P), every P-th of them, so the workers
together build exactly shard i/n, each under its own shard lock and into its own manifest part
(``manifest.shard-<i+k*n>-of-<n*P>.jsonl``), resumable as any shard. The command holds shard
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

The base records the fingerprints of its train concepts' pairs and prompts, each adapter those of
its concept's pairs and texts: when those of a train concept change, the base is refused
(:class:`StaleArtifactError`, with the fix: delete it and rebuild, its adapters follow), and so
is a base that records none (an older weightgen built it). A base whose ``base.json`` or weight
files are missing or damaged is trained again.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from functools import partial, reduce
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from weightgen.concepts.spec import Concept
from weightgen.concepts.text_fingerprints import PROMPT, texts_fingerprints
from weightgen.data.datamodule import PairsDataModule
from weightgen.errors import ConfigError
from weightgen.finetune.concept_fit import adapter_module, fit_on_concept
from weightgen.gan.adapters import Adapter, count_parameters
from weightgen.gan.base import META_FILE as BASE_META_FILE
from weightgen.gan.base import (
    BaseGAN,
    base_files_intact,
    build_networks,
    gan_module,
    save_base,
)
from weightgen.gan.evaluate import generate
from weightgen.gan.module import GANModule
from weightgen.stages.artifacts import architecture, load_base
from weightgen.stages.pairs import build_pairs_with_preview
from weightgen.stages.workspace import Workspace, finish_loggers
from weightgen.training import fit, make_trainer
from weightgen.utils.grid import save_grid, to_uint8
from weightgen.utils.io import atomic_write_json, atomic_write_text
from weightgen.utils.locks import lock_beside, store_lock
from weightgen.utils.wandb_media import ValidationImages, log_pictures, log_table
from weightgen.utils.workers import available_cores, run_in_processes
from weightgen.weights.convergence import (
    convergence_markdown,
    convergence_rows,
    convergence_summary,
)
from weightgen.weights.store import Shard, WeightStore

log = logging.getLogger(__name__)

STAGES = ("all", "base", "adapters", "merge")


def train_base(ws: Workspace, loggers: list | bool = False) -> BaseGAN:
    """Train the base GAN on the mix of train concepts (skipped if it is already on disk)."""
    base_dir = Path(ws.cfg.paths.base_dir)
    with store_lock(lock_beside(base_dir), f"the base GAN {base_dir}", ws.lock_timeout_s):
        return _train_base(ws, base_dir, loggers)


def _train_base(ws: Workspace, base_dir: Path, loggers: list | bool) -> BaseGAN:
    builder = ws.cfg.builder
    concepts = ws.train_concepts
    if (base_dir / BASE_META_FILE).is_file() and not base_files_intact(base_dir):
        log.warning("%s: base.json or a weight file is damaged or missing: training the base "
                    "GAN again", base_dir)
    elif (base_dir / BASE_META_FILE).is_file():
        base = load_base(ws)
        wanted = {"steps": int(builder.base_steps), "train_concepts": [c.id for c in concepts]}
        found = {k: base.meta[k] for k in wanted}
        if found != wanted:
            raise ConfigError(
                f"the base GAN at {base_dir} was trained with {found}, but this run asks for "
                f"{wanted}; delete {base_dir} to retrain it, or use another run_name"
            )
        return base
    if not concepts:
        raise ConfigError("the base GAN needs train concepts; the concept selection has none")
    text = ws.embed([c.prompt for c in concepts])
    L.seed_everything(ws.cfg.seed, workers=True)
    generator, discriminator = build_networks(ws.cfg.gan, ws.text_encoder.dim)
    module = gan_module(ws.cfg.gan, generator, discriminator, text,
                        lr_scheduler=instantiate(builder.base_lr_scheduler, _convert_="all"))
    data = PairsDataModule(
        ws.cfg.paths.pairs_dir, [c.id for c in concepts], ws.cfg.data.batch_size, seed=ws.cfg.seed
    )
    samples = ValidationImages("base/samples", partial(
        validation_strips, data=data, concept_ids=[c.id for c in concepts], count=builder.grid_images,
    ))
    trainer = make_trainer(
        ws.cfg.trainer, builder.base_steps, val_every=builder.base_steps, callbacks=[samples],
        logger=loggers, progress=ws.cfg.progress, progress_label="base GAN",
    )
    start = time.perf_counter()
    fit(trainer, module, data, "training the base GAN")
    seconds = time.perf_counter() - start
    meta = {
        "architecture": architecture(ws),
        "train_concepts": [c.id for c in concepts],
        "pairs_sha256": ws.pair_store.fingerprints([c.id for c in concepts]),
        "texts_sha256": texts_fingerprints(concepts, PROMPT),
        "steps": int(builder.base_steps),
        "seconds": seconds,
        "val_psnr_train_concepts": module.last_quality.get("val/psnr"),
        "val_ssim_train_concepts": module.last_quality.get("val/ssim"),
        "generator_parameters": sum(p.numel() for p in generator.parameters()),
    }
    base = save_base(base_dir, generator, discriminator, meta)
    log.info("base GAN: %.2f dB PSNR on train concepts after %d steps (%.0f s)",
             meta["val_psnr_train_concepts"], meta["steps"], seconds)
    return base


SHOWN_CONCEPTS = 4  # concepts with sample images at each validation of the base


def validation_strips(module: GANModule, data: PairsDataModule, concept_ids: list[str],
                      count: int) -> dict[str, list[torch.Tensor]]:
    """source | target | output on the first ``count`` validation crops of a few concepts."""
    sources = data.val_set.sources[:count].to(module.device)
    return {
        f"{concept_id}: source | target | base": [sources, data.val_set.targets[index][:count],
                     generate(module.generator, sources, module.text_tokens[index],
                              module.text_mask[index])]
        for index, concept_id in enumerate(concept_ids[:SHOWN_CONCEPTS])
    }


def adapter_inputs(ws: Workspace, base: BaseGAN, concept_ids: list[str]) -> dict[str, dict]:
    """Per concept, the base, pairs and texts fingerprints its adapter is trained from (store
    rows)."""
    pairs = ws.pair_store.fingerprints(concept_ids)
    texts = texts_fingerprints(ws.concept(c) for c in concept_ids)
    return {c: {"base_sha256": base.meta["generator_sha256"], "pairs_sha256": pairs[c],
                "texts_sha256": texts[c]} for c in concept_ids}


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
    module = adapter_module(base, adapter, text, ws.cfg.gan)
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
    """Train this shard's pending concepts one after the other (the caller holds the shard's
    lock); ``finished(summary)`` after each."""
    concepts, pending, rejected = _pending(ws, base, shard, store)
    for concept in pending:
        if concept.id in rejected:
            log.warning("training %s again: %s", concept.id, rejected[concept.id])
    log.info("%d of %d concepts of shard %d/%d are complete and verified",
             len(concepts) - len(pending), len(concepts), shard.index, shard.count)
    if pending:
        store.unmerge()
    summaries = []
    bar = tqdm(pending, desc="adapters", unit="concept", disable=not ws.cfg.progress)
    for concept in bar:
        bar.set_postfix_str(concept.id)
        store.drop_concept(concept.id)
        summary = train_adapter(ws, base, concept, store, shard)
        atomic_write_json(adapter_report(ws, concept.id), summary)
        summaries.append(summary)
        finished(summary)
    return summaries


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


def merge_store(ws: Workspace) -> list[dict]:
    steps = sorted(int(s) for s in ws.cfg.builder.checkpoint_steps)
    store = ws.weight_store
    with store_lock(store.lock_path(), f"the merged manifest of {store.root}", ws.lock_timeout_s):
        return store.merge({c.id: steps for c in ws.concepts})


def write_convergence_report(ws: Workspace) -> dict:
    """``reports/adapter_convergence.{json,md}`` from every concept's adapter report: which
    adapters were still gaining at their last step (``builder.plateau_db``)."""
    folder = ws.run_dir / "reports"
    reports = [adapter_report(ws, c.id) for c in shard_order(ws)]
    summaries = [json.loads(path.read_text()) for path in reports if path.is_file()]
    plateau_db = float(ws.cfg.builder.plateau_db)
    rows = convergence_rows(summaries, plateau_db)
    summary = convergence_summary(rows, plateau_db)
    atomic_write_json(folder / "adapter_convergence.json", {"summary": summary, "adapters": rows})
    atomic_write_text(folder / "adapter_convergence.md", convergence_markdown(rows, summary))
    log.info("adapters at a plateau (< %.2f dB over their last third): %d of %d",
             plateau_db, summary["plateaued"], summary["adapters"])
    return {k: summary[k] for k in ("adapters", "plateaued", "median_final_psnr",
                                    "median_last_third_gain_db")}


def build_weight_dataset(ws: Workspace) -> dict:
    """Run the configured ``builder.stage``; returns a summary of what was built."""
    stage = ws.cfg.builder.stage
    if stage not in STAGES:
        raise ConfigError(f"builder.stage={stage!r}: use one of {STAGES}")
    shard = Shard.parse(ws.cfg.builder.shard)
    if stage == "all" and shard.count > 1:
        raise ConfigError(
            "builder.stage=all with several shards would train the base in every shard; run "
            "builder.stage=base once, then builder.stage=adapters per shard, then builder.stage=merge"
        )
    processes = int(ws.cfg.builder.processes)
    trainer = ws.cfg.trainer
    if processes > 1 and stage in ("all", "adapters") and (
            str(trainer.devices) != "1" or "ddp" in str(trainer.strategy)):
        raise ConfigError(
            f"builder.processes={processes} trains adapters in {processes} worker processes, "
            f"each on one device; with trainer.devices={trainer.devices} "
            f"(strategy={trainer.strategy}) each would start its own distributed job: use "
            f"builder.processes=1 with several devices, or trainer.devices=1"
        )
    ws.save_config(f"dataset-{stage}")
    loggers = ws.loggers("dataset") if stage in ("all", "base", "adapters") else []
    summary: dict = {"stage": stage, "shard": f"{shard.index}/{shard.count}"}
    try:
        if stage in ("all", "base"):
            summary["pairs"] = build_pairs_with_preview(ws)
        if stage in ("all", "base", "adapters"):
            base = train_base(ws, loggers) if stage != "adapters" else load_base(ws)
            summary["base"] = {k: base.meta[k] for k in
                               ("steps", "seconds", "val_psnr_train_concepts", "val_ssim_train_concepts")}
        if stage in ("all", "adapters"):
            summary["adapters"] = build_adapters(ws, base, shard, loggers)
        if stage in ("all", "merge"):
            summary["manifest_rows"] = len(merge_store(ws))
            summary["convergence"] = write_convergence_report(ws)
    finally:
        finish_loggers(loggers)
    return summary
