"""The headline benchmark (``results.json`` keys are a contract: docs/ARCHITECTURE.md 3.5).

It runs on the held-out concepts of one split, ``bench.split``: ``test`` (reported, never tuned
on) or ``val`` (the validation concepts, the only place where choices are made by looking at
results: fine-tune recipes, generator configurations, checkpoints; its reports go to
``<bench_dir>/val/``, the runs under ``<bench_dir>/runs/`` are shared). Every held-out concept
has a kind, ``new`` or ``paraphrase``, and every figure is given per kind too; the reports
headline the new concepts, with the paraphrases beside them as the wording test.

For each benchmark concept, every method runs in turn on the same data, seed and machine
(interleaved, so drifts in machine speed hit all methods alike):

1. ``pix2pix_scratch`` trains to plateau: ``bench.pix2pix_steps`` steps with pix2pix's schedule
   (constant learning rate, then linear decay to zero). The decay makes the last evaluations
   converge; the run is flagged ``plateau: true`` when the last quarter of its curve gains less
   than ``bench.plateau_db``. Its final PSNR minus ``bench.target_tolerance_db`` is the target.
2. Every other method fine-tunes for at most ``bench.finetune_steps`` steps and stops at the
   target. Time-to-target = clock seconds at the first evaluation at or above the target
   (evaluation excluded; generation included for generated inits); pix2pix's own
   time-to-target is measured the same way on its curve.

Every run is evaluated after steps 1, 2, 4, ... up to ``bench.log_eval_until`` and then every
``bench.eval_every``, so near the start the clock resolves one step. Speed-up = pix2pix's
time-to-target / a method's, per concept; the rows and the summary's medians over the held-out
concepts are computed by ``weightgen.bench.summary``. An init at the target before any training
(``target_at_start``) costs its generation (or selection) time; beside each speed-up,
``one_step_floor`` gives the conservative one, with every time floored at one training step.
The performance profile (``profile.png``, ``summary.performance_profile``) gives, for tau = 1 ..
``bench.profile_max_tau``, the share of concepts each method brings to the target within tau x
E2GAN's time, and its area.

Beside time-to-target each method reports the PSNR it had shown at fixed times
(``bench.psnr_at_seconds``), and the summary gives per-concept paired comparisons against E2GAN
and against the nearest init, with a two-sided sign test.

``trained_init`` is the ceiling: it starts from the held-out concept's own adapter in the weight
store (which the generator never trains on), the best any generator can do with this data;
``summary.speedup_ceiling_vs_pix2pix`` / ``_vs_e2gan`` are its speed-ups by the same rules. A
store without those adapters is an error before any run starts.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

from omegaconf import OmegaConf
from tqdm.auto import tqdm

from weightgen.bench.dashboard import log_bench_dashboard
from weightgen.bench.image_metrics import bench_image_metrics, has_outputs
from weightgen.bench.methods import CEILING, METHODS, REFERENCE, method_named
from weightgen.bench.report import (
    write_curves_plot,
    write_profile_plot,
    write_results_markdown,
    write_sample_grid,
)
from weightgen.bench.stats import plateau_reached
from weightgen.bench.summary import concept_result, summarise
from weightgen.config_checks import check_pick
from weightgen.derived_reports import bench_reports_dir
from weightgen.errors import ConfigError
from weightgen.finetune.finetuner import FineTuneSetup, MethodRun, run_method
from weightgen.gan.recipe import check_recipe
from weightgen.metrics.suite import MetricSuite
from weightgen.stages.artifacts import (
    default_inits,
    fine_tune_setup,
    load_base,
    load_generator,
    read_base_meta,
)
from weightgen.stages.workspace import Workspace, finish_loggers
from weightgen.utils.io import atomic_save_safetensors, atomic_write_json, sha256_file

log = logging.getLogger(__name__)


def split_concepts(ws: Workspace) -> list:
    """The held-out concepts of ``bench.split``; none is a config error that names the knob."""
    split = ws.cfg.bench.split
    held_out = ws.held_out_of(split)
    if not held_out:
        raise ConfigError(f"the benchmark and the zero-shot table score the held-out concepts of "
                          f"bench.split={split}: set {_picked_by(split)} > 0")
    return held_out


def _picked_by(split: str) -> str:
    return "concepts.n_val" if split == "val" else "concepts.n_test"


def bench_concepts(ws: Workspace) -> list:
    """The held-out (unseen) concepts of ``bench.split`` first (``bench.n_unseen`` of them; null:
    all), then optionally a few train (seen) concepts: the first ``bench.n_seen`` in pick order,
    which the generator trains on under any ``diffusion.data.n_concepts`` of at least that."""
    cfg = ws.cfg.bench
    held_out = split_concepts(ws)
    picked_by = _picked_by(cfg.split)
    n_unseen = len(held_out) if cfg.n_unseen is None else cfg.n_unseen
    check_pick("bench.n_unseen", n_unseen, len(held_out), picked_by)
    check_pick("bench.n_seen", cfg.n_seen, len(ws.train_concepts), "concepts.n_train")
    return held_out[:n_unseen] + ws.first_train_concepts(cfg.n_seen)


def _run_file(ws: Workspace, concept_id: str, method: str) -> Path:
    return Path(ws.cfg.paths.bench_dir) / "runs" / concept_id / f"{method}.json"


def bench_recipes(ws: Workspace) -> dict[str, dict]:
    """``bench.recipes`` as plain dicts: method -> overrides of the ``gan`` group for its
    fine-tune. A name that is no method is a config error (a typo would be ignored); a recipe for
    a method this run does not benchmark is unused (a preset's recipes outlive a shorter
    ``bench.methods``)."""
    configured = ws.cfg.bench.recipes
    recipes = OmegaConf.to_container(configured, resolve=True) if configured else {}
    unknown = sorted(set(recipes) - set(METHODS))
    if unknown:
        raise ConfigError(f"bench.recipes names {', '.join(unknown)}, which is no benchmark "
                          f"method (methods: {', '.join(METHODS)}): fix the name or drop it")
    return {method: check_recipe(recipe, ws.cfg.gan, f"bench.recipes.{method}")
            for method, recipe in recipes.items()}


def _run_settings(ws: Workspace, concept_id: str, method: str, steps: int, eval_every: int,
                  target: float | None, recipe: dict | None = None,
                  init: dict | None = None) -> dict:
    """What a stored run depends on besides its concept and method.

    Every run depends on the concept's pairs, and every method but pix2pix on the base. Only
    the methods that start from generated weights depend on the generator, so a new generator
    reruns those and reuses every other stored run. ``recipe``: the method's ``bench.recipes``
    entry, if any; ``init``: what its init depends on besides (``InitSources.settings``: a
    control's knobs, the concept whose pairs a shuffled run reads), if anything.
    """
    settings = {
        "steps": int(steps), "eval_every": int(eval_every),
        "log_eval_until": int(ws.cfg.bench.log_eval_until), "target_psnr": target,
        "seed": int(ws.cfg.seed), "batch_size": int(ws.cfg.data.batch_size),
        "pairs_sha256": ws.pair_store.fingerprints([concept_id])[concept_id],
    }
    if METHODS[method].init is not None:
        settings["base_sha256"] = read_base_meta(ws)["generator_sha256"]
    if recipe:  # only then: runs stored before recipes existed stay valid
        settings["recipe"] = recipe
    if init:  # likewise
        settings["init"] = init
    if METHODS[method].needs_generator:
        generator_meta = Path(ws.cfg.paths.generator_dir) / "generator.json"
        settings["generator_sha256"] = (
            sha256_file(generator_meta) if generator_meta.is_file() else None
        )
    return settings


def offer_stored_runs(source_bench: Path, bench_dir: Path, methods: Iterable[str]) -> None:
    """Copy another bench folder's stored runs of ``methods`` into ``bench_dir`` where it has none
    of its own: the bench then reuses those whose settings still hold (a reference trained
    once, a start that no recipe or generator of this bench changes) and reruns the rest."""
    for method in methods:
        for run in (Path(source_bench) / "runs").glob(f"*/{method}.*"):
            copy = Path(bench_dir) / "runs" / run.parent.name / run.name
            if not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(run, copy)


def _samples_file(ws: Workspace, concept_id: str, method: str) -> Path:
    return _run_file(ws, concept_id, method).with_suffix(".samples.safetensors")


def _cached_or_run(ws: Workspace, setup: FineTuneSetup, concept, method: str, steps: int,
                   eval_every: int, target: float | None, need_outputs: bool = False) -> MethodRun:
    """Resume: a (concept, method) result on disk made with the same settings is reused (if the
    image metrics need its validation outputs, only if it kept them)."""
    path = _run_file(ws, concept.id, method)
    settings = _run_settings(ws, concept.id, method, steps, eval_every, target,
                             setup.recipes.get(method),
                             setup.inits.settings(METHODS[method].init, concept))
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.pop("settings", None) != settings:
            log.info("rerunning %s on %s: its stored run used other settings", method, concept.id)
        elif need_outputs and not has_outputs(_samples_file(ws, concept.id, method)):
            log.info("rerunning %s on %s: the image metrics need its validation outputs, which "
                     "its stored run did not keep", method, concept.id)
        else:
            return MethodRun(**stored)
    run, _ = run_method(setup, concept, method, METHODS[method].init, steps, eval_every, target,
                        log_eval_until=int(ws.cfg.bench.log_eval_until))
    atomic_save_safetensors(run.samples, _samples_file(ws, concept.id, method))
    run.samples = None
    atomic_write_json(path, asdict(run) | {"settings": settings})
    return run


def run_benchmark(ws: Workspace) -> dict:
    cfg = ws.cfg.bench
    methods = list(cfg.methods)
    registered = [method_named(name) for name in methods]
    if methods[0] != REFERENCE:
        raise ConfigError(f"bench.methods must start with {REFERENCE}: it sets the target")
    concepts = bench_concepts(ws)
    ws.save_config("bench")
    base = load_base(ws)
    needs_generator = any(m.needs_generator for m in registered)
    inits = default_inits(ws, base, load_generator(ws) if needs_generator else None)
    if CEILING in methods:  # before hours of runs, not at the first held-out concept
        inits.require_trained(concepts, CEILING)
    for method in registered:  # likewise; the controls are fitted here, once
        if method.needs_examples:
            inits.require_examples(method.name)
        inits.prepare(method.init, method.name)
    suite = MetricSuite.from_config(ws.cfg.metrics)
    setup = replace(fine_tune_setup(ws, base, inits), recipes=bench_recipes(ws))
    loggers = ws.loggers("bench")
    results = []
    try:
        for index, concept in enumerate(tqdm(concepts, desc="bench", unit="concept",
                                             disable=not ws.cfg.progress)):
            p2p = _cached_or_run(ws, setup, concept, REFERENCE, cfg.pix2pix_steps,
                                 cfg.eval_every, None, suite.active)
            target = p2p.final["psnr"] - cfg.target_tolerance_db
            runs = {REFERENCE: p2p}
            for method in methods[1:]:
                runs[method] = _cached_or_run(ws, setup, concept, method, cfg.finetune_steps,
                                              cfg.eval_every, target if cfg.stop_at_target else None,
                                              suite.active)
            result = concept_result(concept, runs, target, plateau_reached(p2p.curve, cfg.plateau_db),
                                    tuple(float(t) for t in cfg.psnr_at_seconds))
            results.append(result)
            for logger in loggers:
                logger.log_metrics({f"bench/{m}/speedup": v["speedup_vs_pix2pix"]
                                    for m, v in result["methods"].items()}, step=index)
        samples_file = partial(_samples_file, ws)
        bench_dir = Path(ws.cfg.paths.bench_dir)
        reports = bench_reports_dir(bench_dir, cfg.split)
        payload = {
            "summary": {"split": cfg.split}
            | summarise(results, methods, cfg.headline, int(cfg.profile_max_tau))
            | {"image_metrics": bench_image_metrics(ws.pair_store, suite, results, methods,
                                                    samples_file)},
            # What the tables were made from: a new generator in that folder deletes them.
            "inputs": {"generator_dir": str(Path(ws.cfg.paths.generator_dir).resolve())
                       if needs_generator else None},
            "config": {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
                       if k != "methods"}
            | {"methods": methods, "adapter": ws.cfg.adapter._target_.rsplit(".", 1)[-1]},
            "concepts": results,
        }
        atomic_write_json(reports / "results.json", payload)
        write_results_markdown(reports / "results.md", payload)
        write_curves_plot(reports / "curves.png", results, methods)
        write_profile_plot(reports / "profile.png", payload["summary"], methods)
        write_sample_grid(ws.pair_store, bench_dir / "runs", reports / "grid.png", concepts,
                          methods)
        log_bench_dashboard(loggers, ws.pair_store, reports, payload, samples_file)
    finally:
        finish_loggers(loggers)
    return payload["summary"]
