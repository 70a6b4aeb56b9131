"""The benchmark's figures, from its runs: one row per concept and the summary over them.

Pure arithmetic over curves and result dicts (``results.json``'s ``concepts`` and ``summary``,
docs/ARCHITECTURE.md 3.5); ``weightgen.stages.bench`` runs the methods and writes the files.

Speed-up = pix2pix's time-to-target / a method's, per concept; the summary quotes medians over
the held-out concepts (a method that never reaches the target counts as speed-up 0; for the
speed-up over E2GAN, an E2GAN run that misses the target counts with its whole budget, a lower
bound of its time). Times are floored at the clock's resolution, the training seconds of one
evaluation interval of the concept's pix2pix run (``weightgen.bench.stats``).
"""

from __future__ import annotations

from weightgen.bench.methods import (
    BASELINE,
    CEILING,
    EXAMPLE_CONTROLS,
    MEAN,
    NEAREST,
    REFERENCE,
)
from weightgen.bench.stats import (
    clock_resolution,
    median_or_none,
    paired_comparison,
    psnr_at,
    speedup,
)
from weightgen.finetune.curve import steps_to_target, time_to_target
from weightgen.finetune.finetuner import MethodRun


def concept_result(concept, runs: dict[str, MethodRun], target: float, plateau: bool,
                   at_seconds: tuple[float, ...] = (2.0, 5.0, 10.0)) -> dict:
    """One concept's row: per method its step-0 and final quality, time-to-target and speed-up
    over pix2pix (at the concept's clock resolution), PSNR at ``at_seconds``."""
    p2p_time = time_to_target(runs[REFERENCE].curve, target)
    resolution = clock_resolution(runs[REFERENCE].curve)
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
        "ceiling_margin_db": (methods[CEILING]["zero_shot_psnr"] - target
                              if CEILING in methods else None),
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
    return median_or_none(paired_ratios(unseen, method, BASELINE))


def _paired(unseen: list[dict], methods: list[str], reference: str,
            unit: str = "seconds") -> dict:
    """Each method against ``reference``, concept by concept: wins, losses, sign test."""
    if reference not in methods:
        return {}
    return {m: paired_comparison(paired_ratios(unseen, m, reference, unit))
            for m in methods if m not in (REFERENCE, reference)}


def _psnr_at_medians(unseen: list[dict], method: str) -> dict[str, float | None]:
    """Median over held-out concepts of the PSNR ``method`` had shown at each fixed time."""
    cells = [r["methods"][method]["psnr_at_seconds"] for r in unseen if method in r["methods"]]
    times = cells[0] if cells else {}
    return {t: median_or_none([c.get(t) for c in cells]) for t in times}


def _zero_shot_wins(unseen: list[dict], method: str) -> dict | None:
    """On how many held-out concepts ``method`` starts above both the mean and the nearest init."""
    rows = [r["methods"] for r in unseen
            if {method, MEAN, NEAREST} <= set(r["methods"])]
    if not rows:
        return None
    wins = sum(m[method]["zero_shot_psnr"] > max(m[MEAN]["zero_shot_psnr"],
                                                 m[NEAREST]["zero_shot_psnr"])
               for m in rows)
    return {"above_mean_and_nearest": wins, "concepts": len(rows)}


def _control_fits(results: list[dict], methods: list[str]) -> dict[str, dict]:
    """Each control's fit, done once per bench (its seconds; a ridge map's alpha, how it was
    chosen and on which validation concepts), as the first run that started from it recorded."""
    fits = {}
    for method in methods:
        recorded = [r["methods"][method]["info"]["fit"] for r in results
                    if "fit" in r["methods"].get(method, {}).get("info", {})]
        if recorded:
            fits[method] = recorded[0]
    return fits


def summarise(results: list[dict], methods: list[str], headline: str) -> dict:
    """Medians over the held-out concepts. The unqualified speed-ups, ``zero_shot_wins`` and
    ``generation_seconds`` are the ``headline`` method's (``bench.headline``; None where it was
    not benchmarked), ``speedup_ceiling_*`` the ceiling's."""
    unseen = [r for r in results if not r["seen"]]

    def med(method: str, key: str, rows=unseen):
        return median_or_none([r["methods"][method][key] for r in rows if method in r["methods"]])

    ours = headline if headline in methods else None
    ceiling = CEILING if CEILING in methods else None
    return {
        "headline": headline,
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
        "paired_vs_e2gan": _paired(unseen, methods, BASELINE),
        "paired_vs_nearest": _paired(unseen, methods, NEAREST),
        "paired_steps_vs_e2gan": _paired(unseen, methods, BASELINE, "steps"),
        "paired_vs_controls": {c: _paired(unseen, methods, c) for c in EXAMPLE_CONTROLS
                               if c in methods},
        "control_fits": _control_fits(results, methods),
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
