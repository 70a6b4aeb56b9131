"""The GAN dataset builder: base GAN once, then one adapter per concept into the weight store.

Stages (``builder.stage``): ``base`` (pairs + base GAN: :mod:`weightgen.stages.dataset_base`),
``adapters`` (this shard's concepts, in worker processes with ``builder.processes``:
:mod:`weightgen.stages.dataset_adapters`), ``merge`` (join shard manifests, check completeness,
the convergence report: :mod:`weightgen.stages.dataset_merge`), ``all`` (the three in one
process). With several shards, run ``base`` once, ``adapters`` per shard (in parallel, on any
machines that see the run folder), then ``merge``. This module is the stage's entry
(``weightgen-dataset``): it checks the stage settings and runs the parts they ask for.
"""

from __future__ import annotations

from weightgen.errors import ConfigError
from weightgen.stages.artifacts import load_base
from weightgen.stages.dataset_adapters import build_adapters
from weightgen.stages.dataset_base import train_base
from weightgen.stages.dataset_merge import merge_store, write_convergence_report
from weightgen.stages.pairs import build_pairs_with_preview
from weightgen.stages.workspace import Workspace, finish_loggers
from weightgen.weights.store import Shard

STAGES = ("all", "base", "adapters", "merge")


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
