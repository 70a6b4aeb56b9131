"""W&B dashboards (issue 15): what each stage logs to its offline run, read back from the folder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import (
    photos_loaded_once,
    run_workspace,
    tiny_metrics,
    tiny_workspace,
)
from lightning.pytorch.loggers import CSVLogger
from offline_wandb import offline_runs
from PIL import Image

from weightgen.bench.dashboard import COLUMNS
from weightgen.stages.bench import run_benchmark
from weightgen.stages.dataset import build_weight_dataset
from weightgen.stages.study import log_study_job
from weightgen.stages.train_generator import train_weight_generator
from weightgen.text.tiny_clip import save_tiny_clip_model
from weightgen.utils.wandb_media import ValidationImages, log_strips, log_table, update_summary

METHODS = ["pix2pix_scratch", "e2gan_lora", "denoised_init"]
WANDB = "logger=wandb_csv"  # W&B offline (conftest sets WANDB_MODE=offline) + CSV


def png_size(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    return Image.open(path).size


def table(run, key) -> dict:
    assert run.history[key]["_type"] == "table-file", run.history.get(key)
    return json.loads(run.media(key)[0].read_text())


def only_run(runs, job_type):
    found = [r for r in runs if r.job_type == job_type]
    assert len(found) == 1, [(r.name, r.job_type) for r in runs]
    return found[0]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip_model(tmp_path_factory.mktemp("clip"), image_size=32, seed=2)


@pytest.fixture(scope="module")
def bench(tiny_run, tmp_path_factory, clip_dir):
    """A tiny bench of three methods on one held-out concept, W&B offline, metrics on."""
    artifacts = tiny_run["artifacts"]
    out = tmp_path_factory.mktemp("bench_wandb")
    ws = run_workspace(
        artifacts, WANDB, f"paths.bench_dir={out / 'bench'}", f"paths.logs_dir={out / 'logs'}",
        f"bench.methods=[{','.join(METHODS)}]", "bench.n_unseen=1", "bench.n_seen=0",
        "bench.pix2pix_steps=4", "bench.finetune_steps=2", "bench.eval_every=2",
        *tiny_metrics(clip_dir),
    )
    summary = run_benchmark(ws)
    results = json.loads((out / "bench" / "results.json").read_text())
    return {"ws": ws, "summary": summary, "results": results, "out": out,
            "run": only_run(offline_runs(out / "logs"), "bench")}


def test_the_bench_run_holds_its_config_table_samples_curves_and_summary(bench):
    run, ws = bench["run"], bench["ws"]
    concept = ws.test_concepts[0]
    assert run.name == "quickstart/bench" and run.group == "quickstart"
    assert run.config["bench"]["n_unseen"] == 1 and run.config["run_name"] == "quickstart"

    results = table(run, "bench/results")
    assert results["columns"] == COLUMNS
    assert [row[3] for row in results["data"]] == METHODS
    assert all(row[0] == concept.id for row in results["data"])

    samples = run.media("bench/samples")
    assert run.history["bench/samples"]["captions"] == [
        f"{concept.id}: source | target | " + " | ".join(METHODS)]
    size = ws.cfg.data.size
    assert png_size(samples[0]) == ((2 + len(METHODS)) * size, 2 * size)  # 2 crops, 5 columns

    curves = table(run, f"bench/time_to_target/{concept.id}_table")
    line = curves["columns"].index("lineKey")
    assert {row[line] for row in curves["data"]} == {*METHODS, "target"}  # one line per method

    for figure in ("curves", "profile", "grid"):
        assert png_size(run.media(f"bench/figures/{figure}")[0])[0] > 100

    summary = bench["results"]["summary"]
    assert run.summary["bench/speedup_vs_pix2pix"] == summary["speedup_vs_pix2pix"]
    assert run.summary["bench/final_psnr/denoised_init"] == summary["final_psnr"]["denoised_init"]


def test_the_bench_scores_fid_and_clip_with_local_models(bench, clip_dir):
    metrics = bench["results"]["summary"]["image_metrics"]
    clip_name = "clip_score_" + clip_dir.name.replace("-", "_").lower()
    assert metrics["images"] == bench["ws"].cfg.data.n_val  # one held-out concept
    assert metrics["features"] == "TinyFeatures" and metrics["skipped"] == {}
    for method in METHODS:
        scores = metrics["by_method"][method]
        assert set(scores) == {"kernel_distance_tinyfeatures", "kernel_distance_tinyfeatures_std",
                               clip_name}  # 4 images do not exceed 4 features: KID
        assert all(math.isfinite(v) for v in scores.values())
    assert math.isfinite(metrics["targets"][clip_name])
    assert bench["run"].summary[f"bench/image_metrics/by_method/denoised_init/{clip_name}"] == (
        metrics["by_method"]["denoised_init"][clip_name])
    markdown = (bench["out"] / "bench" / "results.md").read_text()
    assert "### Image-set metrics (4 validation images" in markdown
    assert f"| kernel_distance_tinyfeatures | kernel_distance_tinyfeatures_std | {clip_name} |" in (
        markdown)


@pytest.mark.slow  # a tiny dataset build and generator training with W&B logging
def test_the_dataset_and_generator_runs_hold_sample_images(tmp_path):
    ws = tiny_workspace(tmp_path, WANDB, "denoiser=mlp", "denoiser.hidden_dim=32",
                        "denoiser.depth=1", "diffusion.steps=2", "diffusion.val_every=2",
                        "diffusion.val_concepts=1", "diffusion.lr_scheduler.num_warmup_steps=1",
                        "diffusion.batch_size=4")
    with photos_loaded_once():
        build_weight_dataset(ws)
    train_weight_generator(ws)
    runs = offline_runs(ws.cfg.paths.logs_dir)
    size = ws.cfg.data.size

    dataset = only_run(runs, "dataset")
    assert dataset.config["builder"]["base_steps"] == 4
    base = dataset.media("base/samples")
    assert len(base) == len(ws.train_concepts)  # one strip per concept
    assert png_size(base[0]) == (3 * size, 2 * size)  # source | target | base, 2 crops
    adapters = table(dataset, "adapters/results")
    assert sorted(row[0] for row in adapters["data"]) == sorted(c.id for c in ws.concepts)
    for concept in ws.concepts:  # a panel per concept: rows source, target, base, adapter
        assert png_size(dataset.media(f"adapters/samples/{concept.id}")[0])[1] > 4 * size

    generator = only_run(runs, "generator")
    captions = generator.history["generator/samples"]["captions"]
    assert captions == [f"{ws.train_concepts[0].id} (train): source | target | generated",
                        f"{ws.test_concepts[0].id} (test): source | target | generated"]
    assert png_size(generator.media("generator/samples")[0]) == (3 * size, 4 * size)


def test_a_study_job_is_a_run_of_the_study_group_with_its_swept_values(tmp_path):
    ws = tiny_workspace(tmp_path, WANDB, "wandb_group=study_tiny", "tokenizer.block_size=128",
                        "study.knobs=[tokenizer.block_size]")
    log_study_job(ws, {"knob/tokenizer.block_size": 128, "zero_shot/test/generated": 20.5})
    run = only_run(offline_runs(ws.cfg.paths.logs_dir), "study")
    assert run.group == "study_tiny" and run.name == "quickstart/study/tokenizer.block_size=128"
    assert run.config["tokenizer"]["block_size"] == 128
    assert run.summary["zero_shot/test/generated"] == 20.5


def test_without_wandb_nothing_is_rendered_or_written(tmp_path):
    csv = [CSVLogger(tmp_path)]
    calls = []
    log_strips(csv, "x", {"a": [np.zeros((1, 4, 4, 3), np.uint8)]})
    log_table(csv, "t", ["a"], [[1]])
    update_summary(csv, {"a": 1})

    class Trainer:
        loggers = csv
        global_step = 0

    ValidationImages("x", calls.append).on_validation_end(Trainer(), module=None)
    assert calls == [] and not any(tmp_path.iterdir())
