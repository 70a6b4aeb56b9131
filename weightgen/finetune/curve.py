"""Quality against training time: the clock that excludes evaluation, and the curve it feeds.

The clock runs from each training batch's start and pauses for every evaluation, so evaluation
time never counts; it starts at ``offset`` seconds, which is how a generated initialisation's generation
time is charged to the method that used it. The curve scores the model itself after the training
steps of its schedule (``evaluation_steps``: log-spaced at the start, so the clock resolves one
step there, then every ``eval_every``), records (step, seconds, PSNR, SSIM) and, once PSNR reaches
``target_psnr``, stops training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass

import lightning as L

from weightgen.gan.evaluate import Quality


def evaluation_steps(max_steps: int, eval_every: int, log_until: int = 0) -> list[int]:
    """The training steps after which a run is scored (step 0 is scored before training).

    Steps 1, 2, 4, 8, ... up to ``log_until`` (0: none), so a run that reaches its target within
    a few steps is timed to the step, and every ``eval_every``-th step; none beyond
    ``max_steps``. E.g. (200, 10, 32): 1, 2, 4, 8, 10, 16, 20, 30, 32, 40, 50, ..., 200.
    """
    log_spaced = {2**i for i in range(max(log_until, 0).bit_length())}
    regular = set(range(eval_every, max_steps + 1, eval_every))
    return sorted(step for step in log_spaced | regular if step <= max_steps)


@dataclass(frozen=True)
class CurvePoint:
    step: int
    seconds: float
    psnr: float
    ssim: float


class QualityCurve(L.Callback):
    """``score``: the model's quality now (on the run's validation pairs); called after each
    training step in ``steps``, with the clock paused."""

    def __init__(self, score: Callable[[], Quality] | None = None, steps: Collection[int] = (),
                 offset_seconds: float = 0.0, target_psnr: float | None = None):
        self.score = score
        self.steps = frozenset(steps)
        self.offset = offset_seconds
        self.target_psnr = target_psnr
        self.points: list[CurvePoint] = []
        self._elapsed = 0.0
        self._running_since: float | None = None

    # --- the clock ------------------------------------------------------------------------
    @property
    def seconds(self) -> float:
        running = time.perf_counter() - self._running_since if self._running_since else 0.0
        return self.offset + self._elapsed + running

    def _pause(self) -> None:
        if self._running_since is not None:
            self._elapsed += time.perf_counter() - self._running_since
            self._running_since = None

    def _resume(self) -> None:
        if self._running_since is None:
            self._running_since = time.perf_counter()

    def on_train_start(self, trainer, module) -> None:
        self._resume()

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._resume()  # after an evaluation, the next batch restarts the clock

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step not in self.steps:
            return
        self._pause()
        quality = self.score()
        self.record(trainer.global_step, quality.psnr, quality.ssim)
        if self.reached_target:
            trainer.should_stop = True

    def on_train_end(self, trainer, module) -> None:
        self._pause()

    # --- the curve ------------------------------------------------------------------------
    def record(self, step: int, psnr: float, ssim: float) -> None:
        """Add a point at the current clock (used for step 0, before training starts, too)."""
        self.points.append(CurvePoint(int(step), self.seconds, float(psnr), float(ssim)))

    @property
    def reached_target(self) -> bool:
        return (
            self.target_psnr is not None
            and bool(self.points)
            and self.points[-1].psnr >= self.target_psnr
        )

    def as_dicts(self) -> list[dict]:
        return [asdict(p) for p in self.points]


def time_to_target(points: list[dict], target_psnr: float) -> float | None:
    """Clock seconds at the first point whose PSNR reaches the target; None if none does."""
    for point in points:
        if point["psnr"] >= target_psnr:
            return point["seconds"]
    return None


def steps_to_target(points: list[dict], target_psnr: float) -> int | None:
    for point in points:
        if point["psnr"] >= target_psnr:
            return point["step"]
    return None
