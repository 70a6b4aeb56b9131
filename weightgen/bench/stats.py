"""Statistics of the benchmark's quality curves: the clock's resolution, PSNR at fixed times,
whether a curve plateaued, medians, paired per-concept comparisons and their sign test, and the
performance profile.

A curve is the list of evaluations of one fine-tune (``{"step", "seconds", "psnr", "ssim"}``,
step 0 first; seconds are training seconds, generation included, evaluation excluded).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# Times below this are never divided by (a curve without a second point has no resolution).
MIN_SECONDS = 0.01


def clock_resolution(curve: Sequence[dict]) -> float:
    """Training seconds between a curve's first two evaluations.

    The benchmark only sees quality at evaluations, so a time-to-target near the start is known
    to this precision; with the log-spaced evaluations (``bench.log_eval_until``) that is one
    step.
    """
    if len(curve) < 2:
        return MIN_SECONDS
    return max(curve[1]["seconds"] - curve[0]["seconds"], MIN_SECONDS)


def one_step_seconds(curve: Sequence[dict]) -> float:
    """Training seconds of one step of a run: its first evaluation interval over its steps.

    The conservative figures floor every time at this much: an init at the target before any
    training is then charged one training step rather than its generation (or selection) time,
    which can be ~0 s.
    """
    if len(curve) < 2 or curve[1]["step"] <= curve[0]["step"]:
        return MIN_SECONDS
    return max(clock_resolution(curve) / (curve[1]["step"] - curve[0]["step"]), MIN_SECONDS)


def speedup(reference_seconds: float | None, seconds: float | None,
            floor: float = MIN_SECONDS) -> float:
    """reference / seconds, both floored at ``floor``; 0 when the method never got there."""
    if seconds is None or reference_seconds is None:
        return 0.0
    floor = max(floor, MIN_SECONDS)
    return max(reference_seconds, floor) / max(seconds, floor)


def psnr_at(curve: Sequence[dict], seconds: float) -> float | None:
    """The quality a run had shown by ``seconds``: its last evaluation at or before that time.

    A run stopped at the target keeps its last value (a lower bound of what it would show);
    None when the run had no weights yet (its generation took longer).
    """
    shown = [p["psnr"] for p in curve if p["seconds"] <= seconds]
    return shown[-1] if shown else None


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial p-value of ``wins`` against ``losses`` (ties left out)."""
    n = wins + losses
    if n == 0:
        return None
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_comparison(ratios: Sequence[float]) -> dict:
    """Per-concept ratios (reference time / method time): their median, wins (>1), losses (<1),
    ties and the sign test's p."""
    wins = sum(r > 1 for r in ratios)
    losses = sum(r < 1 for r in ratios)
    return {"concepts": len(ratios), "median_ratio": statistics.median(ratios) if ratios else None,
            "wins": wins, "losses": losses, "ties": len(ratios) - wins - losses,
            "p_value": sign_test(wins, losses)}


def median_or_none(values) -> float | None:
    """Median of the values that exist (None = a method that never got there)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def plateau_reached(curve: list[dict], plateau_db: float) -> bool:
    """Whether the last quarter of a curve gained less than ``plateau_db``."""
    quarter = curve[-max(2, len(curve) // 4):]
    return quarter[-1]["psnr"] - quarter[0]["psnr"] < plateau_db


def performance_profile(speedups: Sequence[float], max_tau: int) -> dict:
    """A method's performance profile against a reference (AlgoPerf style), over concepts.

    ``speedups``: per concept, the reference's time-to-target / the method's (0: the method never
    reached the target). The method needs tau_i = 1 / speed-up times the reference's time on
    concept i; ``share[t - 1]`` is the share of concepts with tau_i <= t, for t = 1..``max_tau``,
    and ``area`` the integral of that step function over tau in [1, max_tau] divided by
    max_tau - 1: 1 when every concept is reached within the reference's time, 0 when none is
    within ``max_tau`` times it (None without concepts).
    """
    taus = [1.0 / s if s > 0 else math.inf for s in speedups]
    if not taus:
        return {"share": [], "area": None}
    share = [sum(t <= tau for t in taus) / len(taus) for tau in range(1, max_tau + 1)]
    covered = sum(max_tau - max(t, 1.0) for t in taus if t <= max_tau)
    return {"share": share, "area": covered / (len(taus) * (max_tau - 1))}
