"""A study's table and plot, gathered from its multirun jobs by a Hydra callback.

Each job's return value (a flat ``metric -> value`` dict from :func:`run_study_job`) is written
beside the job's Hydra output as ``study_result.json`` (``on_job_end``, which runs where the job
runs: locally or on a SLURM node under the submitit launcher); when the sweep ends the callback
reads them all back from the sweep folder and writes ``results.json``, ``results.md`` and
``results.png`` into the study's ``experiments/<name>/`` folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from weightgen.utils.io import atomic_save_figure, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

RESULT_FILE = "study_result.json"


def job_label(result: dict) -> str:
    """"block_size=256, steps=5": the last part of each knob's key; class paths shortened."""
    knobs = []
    for key, value in result.items():
        if key.startswith("knob/"):
            name = key.split(".")[-1]
            if name == "_target_":
                name, value = key.split(".")[-2].removeprefix("knob/"), str(value).split(".")[-1]
            knobs.append(f"{name}={value}")
    return ", ".join(knobs) or "default"


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def study_markdown(title: str, command: str, results: Sequence[dict], columns: Sequence[str]) -> str:
    lines = [f"# {title}", "", f"Command: `{command}`", "",
             "| job | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for result in results:
        lines.append(f"| {job_label(result)} | "
                     + " | ".join(_cell(result.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def study_plot(title: str, results: Sequence[dict], lines: Sequence[str],
               references: Sequence[str], path: Path) -> None:
    """Each metric in ``lines`` (solid) and ``references`` (dashed) across the jobs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [job_label(r) for r in results]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels) + 2), 3.6))
    for keys, style in ((lines, "-o"), (references, "--")):
        for key in keys:
            values = [r.get(key) for r in results]
            if any(v is not None for v in values):
                ax.plot(labels, [float("nan") if v is None else v for v in values], style,
                        label=key)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("GAN validation PSNR (dB)")
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)


def write_study_report(out_dir: str | Path, title: str, command: str, results: Sequence[dict],
                       columns: Sequence[str], lines: Sequence[str],
                       references: Sequence[str]) -> Path:
    out = Path(out_dir)
    atomic_write_json(out / "results.json", {"title": title, "command": command,
                                             "jobs": list(results)})
    atomic_write_text(out / "results.md", study_markdown(title, command, results, columns))
    study_plot(title, results, lines, references, out / "results.png")
    return out


class StudyReport(Callback):
    """Hydra callback: job results -> ``study_result.json``; the sweep's results -> a report."""

    def __init__(self, out_dir: str, title: str, command: str, columns: Sequence[str],
                 lines: Sequence[str] = (), references: Sequence[str] = ()) -> None:
        self.out_dir, self.title, self.command = out_dir, title, command
        self.columns, self.lines, self.references = list(columns), list(lines), list(references)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # Results of an earlier sweep of this study would otherwise join this sweep's table.
        for stale in Path(config.hydra.sweep.dir).glob(f"*/{RESULT_FILE}"):
            stale.unlink()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if job_return.status != JobStatus.COMPLETED or not isinstance(job_return.return_value, dict):
            return
        path = Path(config.hydra.runtime.output_dir) / RESULT_FILE
        atomic_write_json(path, {"job": config.hydra.job.num} | job_return.return_value)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        files = sorted(Path(config.hydra.sweep.dir).glob(f"*/{RESULT_FILE}"),
                       key=lambda p: json.loads(p.read_text())["job"])
        if not files:
            log.warning("study %r: no job finished, so no report was written", self.title)
            return
        results = [json.loads(p.read_text()) for p in files]
        out = write_study_report(self.out_dir, self.title, self.command, results, self.columns,
                                 self.lines, self.references)
        log.info("study report (%d jobs) written to %s", len(results), out)
