"""The headline benchmark (``results.json`` keys are a contract: docs/ARCHITECTURE.md 3.5).

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

Speed-up = pix2pix's time-to-target / a method's, per concept; the summary quotes medians over
the held-out concepts (a method that never reaches the target counts as speed-up 0; for the
speed-up over E2GAN, an E2GAN run that misses the target counts with its whole budget, a lower
bound of its time). Times are floored at the clock's resolution, the training seconds of one
evaluation interval of the concept's pix2pix run: an init at the target before any training
(``target_at_start``) is credited with that much, so its speed-ups are lower bounds, not a
division by its loading time (``weightgen.finetune.bench_stats``).

Beside time-to-target, which is quantised by ``bench.eval_every``, each method reports the PSNR it
had shown at fixed times (``bench.psnr_at_seconds``), and the summary gives per-concept paired
comparisons against E2GAN and against the nearest init, with a two-sided sign test.

``trained_init`` is the ceiling: it starts from the held-out concept's own adapter in the weight
store (which the generator never trains on), the best any generator can do with this data;
``summary.speedup_ceiling_vs_pix2pix`` / ``_vs_e2gan`` are its speed-ups by the same rules. A
store without those adapters is an error before any run starts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

from omegaconf import OmegaConf
from tqdm.auto import tqdm

from weightgen.config_checks import check_pick
from weightgen.errors import ConfigError
from weightgen.finetune.bench_metrics import bench_image_metrics, has_outputs
from weightgen.finetune.bench_stats import clock_resolution, paired_comparison, psnr_at, speedup
from weightgen.finetune.curve import steps_to_target, time_to_target
from weightgen.finetune.dashboard import log_bench_dashboard
from weightgen.finetune.finetuner import (
    CEILING_METHOD,
    METHOD_INITS,
    FineTuneSetup,
    MethodRun,
    run_method,
)
from weightgen.finetune.inits import GENERATOR_INITS
from weightgen.finetune.report import (
    median_or_none,
    write_curves_plot,
    write_results_markdown,
    write_sample_grid,
)
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

GENERATED_METHODS = {m for m, k in METHOD_INITS.items() if k in GENERATOR_INITS}


def plateau_reached(curve: list[dict], plateau_db: float) -> bool:
    """Whether the last quarter of a curve gained less than ``plateau_db``."""
    quarter = curve[-max(2, len(curve) // 4):]
    return quarter[-1]["psnr"] - quarter[0]["psnr"] < plateau_db


def bench_concepts(ws: Workspace) -> list:
    """Held-out (unseen) concepts first, then optionally a few train (seen) concepts."""
    cfg = ws.cfg.bench
    if not ws.test_concepts:
        raise ConfigError("the benchmark needs held-out concepts: set concepts.n_test > 0")
    check_pick("bench.n_unseen", cfg.n_unseen, len(ws.test_concepts), "concepts.n_test")
    check_pick("bench.n_seen", cfg.n_seen, len(ws.train_concepts), "concepts.n_train")
    return ws.test_concepts[: cfg.n_unseen] + ws.train_concepts[: cfg.n_seen]


def _run_file(ws: Workspace, concept_id: str, method: str) -> Path:
    return Path(ws.cfg.paths.bench_dir) / "runs" / concept_id / f"{method}.json"


def bench_recipes(ws: Workspace) -> dict[str, dict]:
    """``bench.recipes`` as plain dicts: method -> overrides of the ``gan`` group for its
    fine-tune. A name that is no method is a config error (a typo would be ignored); a recipe for
    a method this run does not benchmark is unused (a preset's recipes outlive a shorter
    ``bench.methods``)."""
    configured = ws.cfg.bench.recipes
    recipes = OmegaConf.to_container(configured, resolve=True) if configured else {}
    unknown = sorted(set(recipes) - set(METHOD_INITS))
    if unknown:
        raise ConfigError(f"bench.recipes names {', '.join(unknown)}, which is no benchmark "
                          f"method (methods: {', '.join(METHOD_INITS)}): fix the name or drop it")
    for method, recipe in recipes.items():
        strange = sorted(set(recipe or {}) - set(ws.cfg.gan))
        if not isinstance(recipe, dict) or strange:
            raise ConfigError(f"bench.recipes.{method} does not fit the gan group (unknown keys: "
                              f"{', '.join(strange) or recipe!r}): give overrides of its groups, "
                              f"e.g. {{optimizer: {{lr: 1.0e-4}}, lr_scheduler: {{warmup_steps: "
                              f"20}}}}")
    return recipes


def _run_settings(ws: Workspace, concept_id: str, method: str, steps: int, eval_every: int,
                  target: float | None, recipe: dict | None = None) -> dict:
    """What a stored run depends on besides its concept and method.

    Every run depends on the concept's pairs, and every method but pix2pix on the base. Only
    the methods that start from generated weights depend on the generator, so a new generator
    reruns those and reuses every other stored run. ``recipe``: the method's ``bench.recipes``
    entry, if any.
    """
    settings = {
        "steps": int(steps), "eval_every": int(eval_every), "target_psnr": target,
        "seed": int(ws.cfg.seed), "batch_size": int(ws.cfg.data.batch_size),
        "pairs_sha256": ws.pair_store.fingerprints([concept_id])[concept_id],
    }
    if METHOD_INITS.get(method) is not None:
        settings["base_sha256"] = read_base_meta(ws)["generator_sha256"]
    if recipe:  # only then: runs stored before recipes existed stay valid
        settings["recipe"] = recipe
    if METHOD_INITS.get(method) in GENERATOR_INITS:
        generator_meta = Path(ws.cfg.paths.generator_dir) / "generator.json"
        settings["generator_sha256"] = (
            sha256_file(generator_meta) if generator_meta.is_file() else None
        )
    return settings


def _samples_file(ws: Workspace, concept_id: str, method: str) -> Path:
    return _run_file(ws, concept_id, method).with_suffix(".samples.safetensors")


def _cached_or_run(ws: Workspace, setup: FineTuneSetup, concept, method: str, steps: int,
                   eval_every: int, target: float | None, need_outputs: bool = False) -> MethodRun:
    """Resume: a (concept, method) result on disk made with the same settings is reused (if the
    image metrics need its validation outputs, only if it kept them)."""
    path = _run_file(ws, concept.id, method)
    settings = _run_settings(ws, concept.id, method, steps, eval_every, target,
                             setup.recipes.get(method))
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.pop("settings", None) != settings:
            log.info("rerunning %s on %s: its stored run used other settings", method, concept.id)
        elif need_outputs and not has_outputs(_samples_file(ws, concept.id, method)):
            log.info("rerunning %s on %s: the image metrics need its validation outputs, which "
                     "its stored run did not keep", method, concept.id)
        else:
            return MethodRun(**stored)
    run, _ = run_method(setup, concept, method, steps, eval_every, target)
    atomic_save_safetensors(run.samples, _samples_file(ws, concept.id, method))
    run.samples = None
    atomic_write_json(path, asdict(run) | {"settings": settings})
    return run


def concept_result(concept, runs: dict[str, MethodRun], target: float, plateau: bool,
                   at_seconds: tuple[float, ...] = (2.0, 5.0, 10.0)) -> dict:
    """One concept's row: per method its step-0 and final quality, time-to-target and speed-up
    over pix2pix (at the concept's clock resolution), PSNR at ``at_seconds``."""
    p2p_time = time_to_target(runs["pix2pix_scratch"].curve, target)
    resolution = clock_resolution(runs["pix2pix_scratch"].curve)
    methods = {}
    for method, run in runs.items():
        seconds = time_to_target(run.curve, target)
        steps = steps_to_target(run.curve, target)
        methods[method] = {
            "zero_shot_psnr": run.zero_shot["psnr"],
            "zero_shot_ssim": run.zero_shot["ssim"],
            "final_psnr": run.final["psnr"],
            "final_ssim": run.final["ssim"],
            "final_step": run.final["step"],
            "seconds_to_target": seconds,
            "steps_to_target": steps,
            "target_at_start": steps == 0,
            "speedup_vs_pix2pix": speedup(p2p_time, seconds, resolution),
            "psnr_at_seconds": {f"{t:g}": psnr_at(run.curve, t) for t in at_seconds},
            "init_seconds": run.init_seconds,
            "train_seconds_total": run.final["seconds"],
            "info": run.info,
            "curve": run.curve,
        }
    return {
        "concept": concept.id,
        "prompt": concept.prompt,
        "split": concept.split,
        "seen": concept.split == "train",
        "target_psnr": target,
        "pix2pix_plateau": plateau,
        "clock_resolution_seconds": resolution,
        # How far the store's own adapter (the ceiling) starts above the target (negative: below).
        "ceiling_margin_db": (methods[CEILING_METHOD]["zero_shot_psnr"] - target
                              if CEILING_METHOD in methods else None),
        "methods": methods,
    }


def paired_ratios(unseen: list[dict], method: str, reference: str,
                  unit: str = "seconds") -> list[float]:
    """Per held-out concept, ``reference``'s time-to-target / ``method``'s, in training
    ``seconds`` or in ``steps``.

    A reference that misses the target within its budget counts with its whole budget (a lower
    bound of its time); a method that misses counts as 0. Seconds are floored at the concept's
    clock resolution, steps at one evaluation interval. Steps do not depend on the machine's
    load; between fine-tunes of the same adapter, which cost the same per step, their ratio is
    the time ratio on an unloaded machine.
    """
    ratios = []
    for r in unseen:
        if method in r["methods"] and reference in r["methods"]:
            ref, ours = r["methods"][reference], r["methods"][method]
            if unit == "steps":
                budget, resolution = ref["final_step"], _step_resolution(ref)
            else:
                budget, resolution = ref["train_seconds_total"], r.get("clock_resolution_seconds",
                                                                       0.0)
            t_ref = ref[f"{unit}_to_target"]
            ratios.append(speedup(budget if t_ref is None else t_ref, ours[f"{unit}_to_target"],
                                  resolution))
    return ratios


def _step_resolution(run: dict) -> int:
    """The steps between a run's evaluations (its first evaluation after step 0)."""
    return next((point["step"] for point in run["curve"] if point["step"] > 0), 1)


def _median_speedup_vs_e2gan(unseen: list[dict], method: str) -> float | None:
    """Median over held-out concepts of E2GAN's time-to-target / ``method``'s (per concept)."""
    return median_or_none(paired_ratios(unseen, method, "e2gan_lora"))


def _paired(unseen: list[dict], methods: list[str], reference: str,
            unit: str = "seconds") -> dict:
    """Each method against ``reference``, concept by concept: wins, losses, sign test."""
    if reference not in methods:
        return {}
    return {m: paired_comparison(paired_ratios(unseen, m, reference, unit))
            for m in methods if m not in ("pix2pix_scratch", reference)}


def _psnr_at_medians(unseen: list[dict], method: str) -> dict[str, float | None]:
    """Median over held-out concepts of the PSNR ``method`` had shown at each fixed time."""
    cells = [r["methods"][method]["psnr_at_seconds"] for r in unseen if method in r["methods"]]
    times = cells[0] if cells else {}
    return {t: median_or_none([c.get(t) for c in cells]) for t in times}


def _zero_shot_wins(unseen: list[dict], method: str) -> dict | None:
    """On how many held-out concepts ``method`` starts above both the mean and the nearest init."""
    rows = [r["methods"] for r in unseen
            if {method, "mean_init", "nearest_init"} <= set(r["methods"])]
    if not rows:
        return None
    wins = sum(m[method]["zero_shot_psnr"] > max(m["mean_init"]["zero_shot_psnr"],
                                                 m["nearest_init"]["zero_shot_psnr"])
               for m in rows)
    return {"above_mean_and_nearest": wins, "concepts": len(rows)}


def summarise(results: list[dict], methods: list[str]) -> dict:
    """Medians over the held-out concepts; ``speedup_ceiling_*`` are ``CEILING_METHOD``'s."""
    unseen = [r for r in results if not r["seen"]]

    def med(method: str, key: str, rows=unseen):
        return median_or_none([r["methods"][method][key] for r in rows if method in r["methods"]])

    ours = "denoised_init" if "denoised_init" in methods else None
    ceiling = CEILING_METHOD if CEILING_METHOD in methods else None
    return {
        "heldout_concepts": [r["concept"] for r in unseen],
        "seen_concepts": [r["concept"] for r in results if r["seen"]],
        "speedup_vs_pix2pix": med(ours, "speedup_vs_pix2pix") if ours else None,
        "speedup_vs_e2gan": _median_speedup_vs_e2gan(unseen, ours) if ours else None,
        "speedup_ceiling_vs_pix2pix": med(ceiling, "speedup_vs_pix2pix") if ceiling else None,
        "speedup_ceiling_vs_e2gan": _median_speedup_vs_e2gan(unseen, ceiling) if ceiling else None,
        "final_psnr": {m: med(m, "final_psnr") for m in methods},
        "final_ssim": {m: med(m, "final_ssim") for m in methods},
        "zero_shot_psnr": {m: med(m, "zero_shot_psnr") for m in methods},
        "seconds_to_target": {m: med(m, "seconds_to_target") for m in methods},
        "speedup_by_method": {m: med(m, "speedup_vs_pix2pix") for m in methods},
        "reached_target": {
            m: sum(r["methods"][m]["seconds_to_target"] is not None for r in unseen)
            for m in methods
        },
        "target_at_start": {m: sum(r["methods"][m]["target_at_start"] for r in unseen
                                   if m in r["methods"]) for m in methods},
        "psnr_at_seconds": {m: _psnr_at_medians(unseen, m) for m in methods},
        "paired_vs_e2gan": _paired(unseen, methods, "e2gan_lora"),
        "paired_vs_nearest": _paired(unseen, methods, "nearest_init"),
        "paired_steps_vs_e2gan": _paired(unseen, methods, "e2gan_lora", "steps"),
        "zero_shot_wins": _zero_shot_wins(unseen, ours) if ours else None,
        "ceiling_above_target": sum(r["ceiling_margin_db"] >= 0 for r in unseen)
        if ceiling else None,
        "ceiling_margin_db": median_or_none([r["ceiling_margin_db"] for r in unseen])
        if ceiling else None,
        "clock_resolution_seconds": median_or_none([r["clock_resolution_seconds"]
                                                    for r in unseen]),
        "generation_seconds": med(ours, "init_seconds") if ours else None,
        "pix2pix_plateau_reached": sum(r["pix2pix_plateau"] for r in unseen),
    }


def run_benchmark(ws: Workspace) -> dict:
    cfg = ws.cfg.bench
    methods = list(cfg.methods)
    if methods[0] != "pix2pix_scratch":
        raise ConfigError("bench.methods must start with pix2pix_scratch: it sets the target")
    concepts = bench_concepts(ws)
    ws.save_config("bench")
    base = load_base(ws)
    needs_generator = bool(GENERATED_METHODS & set(methods))
    inits = default_inits(ws, base, load_generator(ws) if needs_generator else None)
    if CEILING_METHOD in methods:
        inits.require_trained(concepts)  # before hours of runs, not at the first held-out concept
    if any(METHOD_INITS.get(m) == "generated_examples" for m in methods):
        inits.require_examples()  # likewise
    suite = MetricSuite.from_config(ws.cfg.metrics)
    setup = replace(fine_tune_setup(ws, base, inits), recipes=bench_recipes(ws))
    loggers = ws.loggers("bench")
    results = []
    try:
        for index, concept in enumerate(tqdm(concepts, desc="bench", unit="concept",
                                             disable=not ws.cfg.progress)):
            p2p = _cached_or_run(ws, setup, concept, "pix2pix_scratch", cfg.pix2pix_steps,
                                 cfg.eval_every, None, suite.active)
            target = p2p.final["psnr"] - cfg.target_tolerance_db
            runs = {"pix2pix_scratch": p2p}
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
        payload = {
            "summary": summarise(results, methods)
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
        atomic_write_json(bench_dir / "results.json", payload)
        write_results_markdown(bench_dir / "results.md", payload)
        write_curves_plot(bench_dir / "curves.png", results, methods)
        write_sample_grid(ws.pair_store, bench_dir / "runs", bench_dir / "grid.png", concepts,
                          methods)
        log_bench_dashboard(loggers, ws.pair_store, bench_dir, payload, samples_file)
    finally:
        finish_loggers(loggers)
    return payload["summary"]
