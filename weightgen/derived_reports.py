"""Reports derived from a weight generator never outlive it, and never die before it.

``zero_shot.{json,md}`` beside the generator, and the benchmark's ``results.{json,md}``,
``curves.png``, ``profile.png`` and ``grid.png`` when they were made with that generator folder
(those of the test split in the bench folder, of the validation split in its ``val/``), describe
one trained generator, as do the CSV logs of its training. Training a new generator into the
folder deletes them once the new one is saved, so no table is left describing weights that are no
longer there (the zero-shot and bench stages write them again); a training that fails or is
stopped before that (a full disk, SIGTERM) leaves the old generator's reports and logs as they
were.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from weightgen.concepts.spec import HELD_OUT_SPLITS

log = logging.getLogger(__name__)

GENERATOR_REPORTS = ("zero_shot.json", "zero_shot.md")
BENCH_REPORTS = ("results.json", "results.md", "curves.png", "profile.png", "grid.png")


def bench_reports_dir(bench_dir: str | Path, split: str) -> Path:
    """Where the bench writes its reports of a concept split (``bench.split``): the test split's
    in ``bench_dir``, the validation split's in ``bench_dir/val`` (both share ``runs/``)."""
    return Path(bench_dir) if split == "test" else Path(bench_dir) / split


def bench_generator_dir(reports_dir: str | Path) -> str | None:
    """The generator folder the bench results in ``reports_dir`` were made with (None: none)."""
    path = Path(reports_dir) / "results.json"
    if not path.is_file():
        return None
    try:
        inputs = json.loads(path.read_text()).get("inputs") or {}
    except json.JSONDecodeError:
        return None  # a damaged table describes nothing: rewritten by the next bench
    return inputs.get("generator_dir")


def drop_earlier_logs(log_dir: str | Path, stage: str) -> list[Path]:
    """Delete the CSV logs of earlier trainings beside ``log_dir`` (this training's): the folders
    named ``stage`` or ``stage-<time>``, a finished or a stopped one; returns what went."""
    log_dir = Path(log_dir)
    earlier = [path for path in sorted(log_dir.parent.glob(f"{stage}*"))
               if path.is_dir() and path != log_dir
               and (path.name == stage or path.name.startswith(f"{stage}-"))]
    for path in earlier:
        shutil.rmtree(path)
        log.info("deleted %s: the log of a training before the generator now in place", path)
    return earlier


def drop_generator_reports(generator_dir: str | Path, bench_dir: str | Path) -> list[Path]:
    """Delete the reports made from the generator in ``generator_dir``; returns what went."""
    generator_dir = Path(generator_dir)
    doomed = [generator_dir / name for name in GENERATOR_REPORTS]
    for reports in (bench_reports_dir(bench_dir, split) for split in HELD_OUT_SPLITS):
        if bench_generator_dir(reports) == str(generator_dir.resolve()):
            doomed += [reports / name for name in BENCH_REPORTS]
    gone = [path for path in doomed if path.is_file()]
    for path in gone:
        path.unlink()
        log.info("deleted %s: it described the weight generator being replaced", path)
    return gone
