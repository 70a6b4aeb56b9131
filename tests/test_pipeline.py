"""weightgen-pipeline (what `make quickstart` and `make bench` run): every stage on a tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import tiny_workspace

from weightgen.stages.pipeline import STAGES, run_pipeline

TINY_PIPELINE = [
    "denoiser=mlp", "denoiser.hidden_dim=32", "denoiser.depth=1", "tokenizer.block_size=128",
    "diffusion.steps=4", "diffusion.val_every=4", "diffusion.val_concepts=1",
    "diffusion.batch_size=4", "bench.n_unseen=1", "bench.n_seen=0", "bench.pix2pix_steps=4",
    "bench.finetune_steps=2", "bench.eval_every=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("pipeline")
    ws = tiny_workspace(artifacts, *TINY_PIPELINE)
    return ws, run_pipeline(ws)


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
