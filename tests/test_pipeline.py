"""weightgen-pipeline (what `make quickstart` and `make bench` run): every stage on a tiny config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import everything_printed, tiny_workspace

from weightgen.bench.methods import METHODS
from weightgen.stages.pipeline import STAGES, run_pipeline
from weightgen.stages.pipeline_report import write_pipeline_report

TINY_PIPELINE = [
    "denoiser=mlp", "denoiser.hidden_dim=32", "denoiser.depth=1", "tokenizer.block_size=128",
    "diffusion.steps=4", "diffusion.val_every=4", "diffusion.val_concepts=1",
    "diffusion.batch_size=4", "bench.n_unseen=1", "bench.n_seen=0", "bench.pix2pix_steps=4",
    "bench.finetune_steps=2", "bench.eval_every=2",
]  # fmt: skip


# What a default run prints beside the tiny sizes: the default loggers (W&B offline + CSV) and
# progress bars, the quiet console.
DEFAULT_CONSOLE = ["logger=wandb_csv", "progress=true", "verbose=false"]


@pytest.fixture(scope="module")
def printed_pipeline(tmp_path_factory):
    """The tiny pipeline with the default console, as weightgen-pipeline runs it (its closing
    summary included), and every line it printed."""
    artifacts = tmp_path_factory.mktemp("pipeline")
    ws = tiny_workspace(artifacts, *TINY_PIPELINE, *DEFAULT_CONSOLE)
    with everything_printed() as printed:
        summary = run_pipeline(ws)
        write_pipeline_report(ws.run_dir, summary)
    return ws, summary, printed


@pytest.fixture(scope="module")
def pipeline(printed_pipeline):
    ws, summary, _ = printed_pipeline
    return ws, summary


@pytest.mark.slow
def test_every_stage_runs_and_the_summary_is_the_benchmarks(pipeline):
    ws, summary = pipeline
    assert list(summary["seconds"]) == [name for name, _ in STAGES]
    results = json.loads((Path(ws.cfg.paths.bench_dir) / "results.json").read_text())
    bench = results["summary"]
    for key in ("headline", "speedup_vs_pix2pix", "speedup_vs_e2gan", "final_psnr",
                "zero_shot_psnr"):
        assert summary[key] == bench[key], key
    assert bench["heldout_concepts"] == [ws.test_concepts[0].id]
    assert results["config"]["finetune_steps"] == 2 and results["config"]["pix2pix_steps"] == 4
    base = json.loads((Path(ws.cfg.paths.base_dir) / "base.json").read_text())
    assert summary["base_val_psnr"] == base["val_psnr_train_concepts"]
    assert base["steps"] == 4
    generator = json.loads((Path(ws.cfg.paths.generator_dir) / "generator.json").read_text())
    assert generator["training"]["steps"] == 4
    assert len(ws.weight_store.rows()) == 2 * len(ws.concepts)  # checkpoint_steps [2, 4]
    assert set(summary["files"]) == {"pairs_preview", "sample_grid", "curves", "profile",
                                     "results", "zero_shot_table"}
    # The held-out concept's kind, and the figures per kind (issue 23).
    assert summary["heldout_kinds"] == {ws.test_concepts[0].kind: 1}
    assert summary["by_kind"][ws.test_concepts[0].kind]["speedup_vs_e2gan"] == bench[
        "speedup_vs_e2gan"]
    for name, report in summary["files"].items():
        assert Path(report).is_file(), name


@pytest.mark.slow
def test_a_second_run_resumes_every_stage_to_the_same_results(pipeline):
    ws, first = pipeline
    again = run_pipeline(tiny_workspace(Path(ws.cfg.paths.artifacts), *TINY_PIPELINE))
    for key in ("base_val_psnr", "speedup_vs_pix2pix", "speedup_vs_e2gan", "final_psnr"):
        assert again[key] == first[key], key


@pytest.mark.slow
def test_a_default_run_prints_no_warning_and_its_summary_names_the_headline(printed_pipeline):
    """Issue 25: no line of a default run (Lightning's, W&B's, the libraries' warnings and log
    records included) says "warning" or "truncated"; the closing summary names bench.headline
    and the held-out concepts' number and kind."""
    ws, summary, printed = printed_pipeline
    assert any("stage bench done" in line for line in printed)  # the capture saw the run
    noisy = [line for line in printed if re.search("warning|truncated", line, re.IGNORECASE)]
    assert not noisy, noisy
    headline = METHODS[ws.cfg.bench.headline].title
    kind = ws.test_concepts[0].kind
    assert any(line.startswith(f"The headline method, {headline}, reached pix2pix's final PSNR "
                               f"on the 1 {kind} concept") for line in printed), printed[-30:]
    assert f"Benchmarked on the test split: 1 {kind} held-out concept(s)" in "\n".join(printed)
