"""A quiet console by default, every library's detail with verbose=true (issue 15)."""

from __future__ import annotations

import shutil

from helpers import photos_loaded_once, tiny_workspace

from weightgen.stages.dataset import build_weight_dataset
from weightgen.stages.workspace import Workspace

# Lines that used to appear once per adapter and per benchmark run.
BANNERS = ("GPU available", "TPU available", "Tip:", "Seed set to", "`Trainer.fit` stopped")
WANDB_LINES = ("wandb: Tracking run", "wandb: W&B syncing is set to `offline`", "wandb sync ")


def run_base_stage(tmp_path, capfd, caplog, verbose: bool) -> tuple[Workspace, str]:
    """Train the tiny base GAN with the default loggers (W&B offline + CSV); all it printed."""
    ws = tiny_workspace(tmp_path, "logger=wandb_csv", "progress=true", "builder.stage=base",
                        f"verbose={str(verbose).lower()}")
    with photos_loaded_once():
        build_weight_dataset(ws)
    captured = capfd.readouterr()
    return ws, captured.out + captured.err + caplog.text


def wandb_init_arguments(ws: Workspace) -> dict:
    """What the configured W&B logger will hand to ``wandb.init`` (no run is started)."""
    (wandb_logger,) = [lg for lg in ws.loggers("probe") if type(lg).__name__ == "WandbLogger"]
    return wandb_logger._wandb_init


def test_default_console_has_one_step_bar_and_no_library_banners(tmp_path, capfd, caplog):
    ws, output = run_base_stage(tmp_path, capfd, caplog, verbose=False)
    for line in (*BANNERS, *WANDB_LINES, "anonymous setting", "git root", "Epoch 0"):
        assert line not in output, f"{line!r} printed without verbose=true:\n{output}"
    assert "base GAN: 100%" in output and "4/4" in output  # the stage's one step-counting bar
    assert list((tmp_path / "quickstart" / "logs" / "wandb").glob("offline-run-*"))
    init = wandb_init_arguments(ws)
    assert init["settings"].silent and "anonymous" not in init


def test_verbose_brings_the_library_detail_back(tmp_path, capfd, caplog):
    ws, output = run_base_stage(tmp_path, capfd, caplog, verbose=True)
    for line in ("GPU available", "Tip:", "Seed set to", "`Trainer.fit` stopped"):
        assert line in output, f"{line!r} missing with verbose=true:\n{output}"
    # W&B's terminal output is set once per process, so it is checked on the run's settings.
    init = wandb_init_arguments(ws)
    assert not init["settings"].silent and "anonymous" not in init  # fixed, not hidden


def test_a_rerun_stage_keeps_its_earlier_csv_log_and_prints_no_warning(tmp_path, capfd, recwarn):
    """Issue 21: with one CSV folder per stage, a rerun made Lightning delete the earlier
    metrics and warn about it on stderr, verbose=false or not."""
    for _ in range(2):
        ws = tiny_workspace(tmp_path, "logger=csv", "builder.stage=base", "verbose=false")
        with photos_loaded_once():
            build_weight_dataset(ws)
        shutil.rmtree(ws.cfg.paths.base_dir)  # so the second command trains it again
    captured = capfd.readouterr()
    shown = [str(warning.message) for warning in recwarn] + [captured.out + captured.err]
    assert not any("Experiment logs directory" in text for text in shown), shown
    logs = sorted((tmp_path / "quickstart" / "logs" / "csv").glob("dataset-*/metrics.csv"))
    assert len(logs) == 2 and all(log.stat().st_size > 0 for log in logs)
