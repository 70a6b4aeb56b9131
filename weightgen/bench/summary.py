"""The benchmark's figures, from its runs: one row per concept and the summary over them.

Pure arithmetic over curves and result dicts (``results.json``'s ``concepts`` and ``summary``,
docs/ARCHITECTURE.md 3.5); ``weightgen.stages.bench`` runs the methods and writes the files.

Speed-up = pix2pix's time-to-target / a method's, per concept; the summary quotes medians over
the held-out concepts (a method that never reaches the target counts as speed-up 0; for the
speed-up over E2GAN, an E2GAN run that misses the target counts with its whole budget, a lower
bound of its time). An init at the target before any training costs its generation (or
selection) time; the figures under ``one_step_floor`` are the conservative ones, every time
floored at one training step of the concept's pix2pix run (``weightgen.bench.stats``). In steps
an init at the target counts one step.

Every figure is given over all held-out concepts of the benchmarked split and, under
``by_kind``, over each kind apart: ``new`` concepts (a recipe no training concept has), where
the claim lives and which the reports headline (``HEADLINE_KIND``), and ``paraphrase`` concepts
(a training concept's edit in new words), the wording test.
"""

from __future__ import annotations

from collections import Counter

from weightgen.bench.methods import (
    BASELINE,
    CEILING,
    EXAMPLE_CONTROLS,
    MEAN,
    NEAREST,
    REFERENCE,
)
from weightgen.bench.stats import (
    MIN_SECONDS,
    clock_resolution,
    median_or_none,
    one_step_seconds,
    paired_comparison,
    performance_profile,
    psnr_at,
    speedup,
)
from weightgen.concepts.spec import HOLDOUT_KINDS
from weightgen.finetune.curve import steps_to_target, time_to_target
from weightgen.finetune.finetuner import MethodRun
from weightgen.finetune.pairs_choice import CHOSEN

HEADLINE_KIND = "new"  # the kind the reports headline; the others are reported beside it


def concept_result(concept, runs: dict[str, MethodRun], target: float, plateau: bool,
                   at_seconds: tuple[float, ...] = (2.0, 5.0, 10.0)) -> dict:
    """One concept's row: per method its step-0 and final quality, time-to-target and speed-up
    over pix2pix (and its conservative twin, times floored at one training step), PSNR at
    ``at_seconds``."""
    reference = runs[REFERENCE].curve
    p2p_time = time_to_target(reference, target)
    step_seconds = one_step_seconds(reference)
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
            "speedup_vs_pix2pix": speedup(p2p_time, seconds),
            "speedup_vs_pix2pix_one_step_floor": speedup(p2p_time, seconds, step_seconds),
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
        "kind": concept.kind,
        "seen": concept.split == "train",
        "target_psnr": target,
        "pix2pix_plateau": plateau,
        "clock_resolution_seconds": clock_resolution(reference),
        "one_step_seconds": step_seconds,
        # How far the store's own adapter (the ceiling) starts above the target (negative: below).
        "ceiling_margin_db": (methods[CEILING]["zero_shot_psnr"] - target
                              if CEILING in methods else None),
        "methods": methods,
    }


def paired_ratios(unseen: list[dict], method: str, reference: str, unit: str = "seconds",
                  one_step_floor: bool = False) -> list[float]:
    """Per held-out concept, ``reference``'s time-to-target / ``method``'s, in training
    ``seconds`` or in ``steps``.

    A reference that misses the target within its budget counts with its whole budget (a lower
    bound of its time); a method that misses counts as 0. Seconds are floored at
    ``stats.MIN_SECONDS`` (an init at the target costs its generation time) or, with
    ``one_step_floor``, at one training step; steps at one step. Steps do not depend on the
    machine's load; between fine-tunes of the same adapter, which cost the same per step, their
    ratio is the time ratio on an unloaded machine.
    """
    ratios = []
    for r in unseen:
        if method in r["methods"] and reference in r["methods"]:
            ref, ours = r["methods"][reference], r["methods"][method]
            if unit == "steps":
                budget, floor = ref["final_step"], 1
            else:
                budget = ref["train_seconds_total"]
                floor = r["one_step_seconds"] if one_step_floor else MIN_SECONDS
            t_ref = ref[f"{unit}_to_target"]
            ratios.append(speedup(budget if t_ref is None else t_ref, ours[f"{unit}_to_target"],
                                  floor))
    return ratios


def _median_speedup_vs_e2gan(unseen: list[dict], method: str,
                             one_step_floor: bool = False) -> float | None:
    """Median over held-out concepts of E2GAN's time-to-target / ``method``'s (per concept)."""
    return median_or_none(paired_ratios(unseen, method, BASELINE, one_step_floor=one_step_floor))


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


def _profile(unseen: list[dict], methods: list[str], max_tau: int) -> dict | None:
    """Each method's performance profile against E2GAN (None when E2GAN was not benchmarked)."""
    if BASELINE not in methods:
        return None
    profiles = {m: performance_profile(paired_ratios(unseen, m, BASELINE), max_tau)
                for m in methods}
    return {"reference": BASELINE, "tau": list(range(1, max_tau + 1)),
            "share": {m: p["share"] for m, p in profiles.items()},
            "area": {m: p["area"] for m, p in profiles.items()}}


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


def _choice_wins(unseen: list[dict], methods: list[str]) -> dict[str, dict[str, int]]:
    """For each method that chooses its start on the example pairs, how many concepts each
    candidate won, most first."""
    wins = {}
    for method in methods:
        chosen = [r["methods"][method]["info"][CHOSEN] for r in unseen
                  if CHOSEN in r["methods"].get(method, {}).get("info", {})]
        if chosen:
            wins[method] = dict(Counter(chosen).most_common())
    return wins


def _figures(unseen: list[dict], methods: list[str], headline: str, max_tau: int) -> dict:
    """Every figure of the summary over the held-out rows ``unseen``."""

    def med(method: str, key: str):
        return median_or_none([r["methods"][method][key] for r in unseen if method in r["methods"]])

    ours = headline if headline in methods else None
    ceiling = CEILING if CEILING in methods else None

    def speedups(floored: bool) -> dict:
        """The headline's and the ceiling's speed-ups and every method's over pix2pix."""
        suffix = "_one_step_floor" if floored else ""
        return {
            "speedup_vs_pix2pix": med(ours, f"speedup_vs_pix2pix{suffix}") if ours else None,
            "speedup_vs_e2gan": _median_speedup_vs_e2gan(unseen, ours, floored) if ours else None,
            "speedup_ceiling_vs_pix2pix": med(ceiling, f"speedup_vs_pix2pix{suffix}")
            if ceiling else None,
            "speedup_ceiling_vs_e2gan": _median_speedup_vs_e2gan(unseen, ceiling, floored)
            if ceiling else None,
            "speedup_by_method": {m: med(m, f"speedup_vs_pix2pix{suffix}") for m in methods},
        }

    return {
        "heldout_concepts": [r["concept"] for r in unseen],
        **speedups(floored=False),
        "one_step_floor": speedups(floored=True),
        "final_psnr": {m: med(m, "final_psnr") for m in methods},
        "final_ssim": {m: med(m, "final_ssim") for m in methods},
        "zero_shot_psnr": {m: med(m, "zero_shot_psnr") for m in methods},
        "seconds_to_target": {m: med(m, "seconds_to_target") for m in methods},
        "reached_target": {m: sum(r["methods"][m]["seconds_to_target"] is not None
                                  for r in unseen if m in r["methods"]) for m in methods},
        "target_at_start": {m: sum(r["methods"][m]["target_at_start"] for r in unseen
                                   if m in r["methods"]) for m in methods},
        "psnr_at_seconds": {m: _psnr_at_medians(unseen, m) for m in methods},
        "paired_vs_e2gan": _paired(unseen, methods, BASELINE),
        "paired_vs_nearest": _paired(unseen, methods, NEAREST),
        "paired_steps_vs_e2gan": _paired(unseen, methods, BASELINE, "steps"),
        "performance_profile": _profile(unseen, methods, max_tau),
        "paired_vs_controls": {c: _paired(unseen, methods, c) for c in EXAMPLE_CONTROLS
                               if c in methods},
        "control_fits": _control_fits(unseen, methods),
        "choice_wins": _choice_wins(unseen, methods),
        "zero_shot_wins": _zero_shot_wins(unseen, ours) if ours else None,
        "ceiling_above_target": sum(r["ceiling_margin_db"] >= 0 for r in unseen)
        if ceiling else None,
        "ceiling_margin_db": median_or_none([r["ceiling_margin_db"] for r in unseen])
        if ceiling else None,
        "clock_resolution_seconds": median_or_none([r["clock_resolution_seconds"]
                                                    for r in unseen]),
        "one_step_seconds": median_or_none([r["one_step_seconds"] for r in unseen]),
        "generation_seconds": med(ours, "init_seconds") if ours else None,
        "pix2pix_plateau_reached": sum(r["pix2pix_plateau"] for r in unseen),
    }


def summarise(results: list[dict], methods: list[str], headline: str, max_tau: int = 32) -> dict:
    """Medians over the held-out concepts, all of them and each kind apart (``by_kind``). The
    unqualified speed-ups, ``zero_shot_wins`` and ``generation_seconds`` are the ``headline``
    method's (``bench.headline``; None where it was not benchmarked), ``speedup_ceiling_*`` the
    ceiling's; ``max_tau``: the performance profile's largest multiple of E2GAN's time."""
    unseen = [r for r in results if not r["seen"]]
    kinds = [kind for kind in HOLDOUT_KINDS if any(r["kind"] == kind for r in unseen)]
    return {
        "headline": headline,
        "headline_kind": HEADLINE_KIND,
        "heldout_kinds": {kind: sum(r["kind"] == kind for r in unseen) for kind in kinds},
        "seen_concepts": [r["concept"] for r in results if r["seen"]],
        **_figures(unseen, methods, headline, max_tau),
        "by_kind": {kind: _figures([r for r in unseen if r["kind"] == kind], methods, headline,
                                   max_tau) for kind in kinds},
    }
