"""One job of a study: make sure the stages it needs exist, then take the study's measurements.

A study is a Hydra multirun over the real configs (``conf/experiment/study_*.yaml``); every job
runs :func:`run_study_job` on its own composed config and returns a flat ``metric -> value``
dict that :class:`weightgen.study.report.StudyReport` gathers into the study's table. Stages
resume, so the jobs of a study share the workspace's pairs, base and weight store, and jobs whose
generator config is equal share the trained generator.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from omegaconf import OmegaConf

from weightgen.bench.methods import METHODS, TEXT_ONLY
from weightgen.config_checks import check_pick
from weightgen.errors import ConfigError
from weightgen.finetune.finetuner import run_method
from weightgen.stages.artifacts import (
    default_inits,
    fine_tune_setup,
    load_base,
    load_generator,
    scoring_tools,
    training_rows,
)
from weightgen.stages.dataset import build_weight_dataset
from weightgen.stages.pairs import build_pairs_with_preview
from weightgen.stages.train_generator import train_weight_generator
from weightgen.stages.workspace import Workspace, finish_loggers
from weightgen.stages.zero_shot import zero_shot_report
from weightgen.study.memorisation import memorisation_report
from weightgen.study.prompt_variants import prompt_variant_quality
from weightgen.utils.wandb_media import update_summary, wandb_loggers


def _zero_shot(ws: Workspace) -> dict:
    summary = zero_shot_report(ws, n_train=ws.cfg.study.n_train_eval)
    held_out = str(ws.cfg.bench.split)  # val or test: the zero-shot table's held-out rows
    flat = {f"{split}/{kind}": psnr for split in ("train", held_out) if split in summary
            for kind, psnr in summary[split].items()}
    for rival in ("mean", "nearest"):
        flat[f"{held_out}/beats_{rival}"] = summary[f"generated_beats_{rival}"][held_out]
    flat[f"{held_out}/count"] = len(ws.held_out_of(held_out))
    flat["generation_seconds"] = summary["generation_seconds"]
    return flat


def _finetune(ws: Workspace) -> dict:
    """PSNR after a short fine-tune from the generated (text-only) init, on the first held-out
    concepts."""
    cfg = ws.cfg.study
    base = load_base(ws)
    setup = fine_tune_setup(ws, base, default_inits(ws, base, load_generator(ws)))
    finals = []
    for concept in ws.test_concepts[: cfg.finetune_concepts]:
        run, _ = run_method(setup, concept, TEXT_ONLY, METHODS[TEXT_ONLY].init,
                            cfg.finetune_steps, eval_every=cfg.finetune_steps)
        finals.append(run.final["psnr"])
    return {"test/final_psnr": statistics.median(finals), "steps": int(cfg.finetune_steps),
            "concepts": len(finals)}


def scored_concepts(ws: Workspace) -> list:
    """The first ``study.n_train_eval`` train concepts in pick order (those every
    ``diffusion.data.n_concepts`` of at least as many trains on) and every held-out one."""
    return ws.first_train_concepts(ws.cfg.study.n_train_eval) + ws.test_concepts


def _prompts(ws: Workspace) -> dict:
    evaluator, inits = scoring_tools(ws)
    return prompt_variant_quality(evaluator, inits, scored_concepts(ws))["summary"]


def _memorisation(ws: Workspace) -> dict:
    evaluator, inits = scoring_tools(ws)
    return memorisation_report(evaluator, inits, ws.weight_store, training_rows(ws, "all"),
                               scored_concepts(ws))["summary"]


MEASURES: dict[str, Callable[[Workspace], dict]] = {
    "zero_shot": _zero_shot,
    "finetune": _finetune,
    "prompts": _prompts,
    "memorisation": _memorisation,
}


def run_study_job(ws: Workspace) -> dict:
    """Pairs, weight store and generator (each resumes), then every ``study.measure``."""
    cfg = ws.cfg.study
    unknown = [m for m in cfg.measure if m not in MEASURES]
    if unknown:
        raise ConfigError(f"study.measure has unknown entries {unknown}; use any of {list(MEASURES)}")
    check_pick("study.n_train_eval", cfg.n_train_eval, len(ws.train_concepts), "concepts.n_train")
    if "finetune" in cfg.measure:
        check_pick("study.finetune_concepts", cfg.finetune_concepts, len(ws.test_concepts),
                   "concepts.n_test")
    build_pairs_with_preview(ws)
    build_weight_dataset(ws)
    training = train_weight_generator(ws)
    result = {f"knob/{key}": OmegaConf.select(ws.cfg, key) for key in cfg.knobs}
    # A generator reused from an earlier job reports the seconds its training took then.
    result["generator/train_seconds"] = training["seconds"]
    result["generator/num_blocks"] = training["num_blocks"]
    for measure in cfg.measure:
        result |= {f"{measure}/{key}": value for key, value in MEASURES[measure](ws).items()}
    log_study_job(ws, result)
    return result


def log_study_job(ws: Workspace, result: dict) -> None:
    """The job as a W&B run of the study's group: the config (swept values included) and the
    job's results as its summary, what W&B's run table and parallel coordinates read."""
    label = ",".join(f"{key}={OmegaConf.select(ws.cfg, key)}" for key in ws.cfg.study.knobs)
    loggers = wandb_loggers(ws.loggers("study", label=label or None))
    try:
        update_summary(loggers, result)
    finally:
        finish_loggers(loggers)
