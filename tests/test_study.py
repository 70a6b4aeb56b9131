"""Studies (issue 6): a study job's measurements and the Hydra multirun that gathers them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY, TINY_GENERATOR, run_workspace
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from weightgen.concepts.catalog import builtin_concepts, split_concepts
from weightgen.stages.artifacts import scoring_tools
from weightgen.stages.study import run_study_job
from weightgen.study.generalisation import generalisation_table
from weightgen.study.prompt_variants import (
    VARIANTS,
    paraphrase_gap,
    paraphrase_sources,
    prompt_variant_quality,
)
from weightgen.study.report import RESULT_FILE, StudyReport, job_label

CLI = Path(sys.executable).parent / "weightgen-study"


def _paths(built: Path, tmp_path: Path) -> list[str]:
    """Read the shared tiny run; write everything (configs, generator copy) under tmp_path."""
    generator_dir = tmp_path / "generator"
    if not generator_dir.exists():
        shutil.copytree(built / "generator", generator_dir)
    return [f"paths.run_dir={tmp_path / 'run'}", f"paths.pairs_dir={built / 'pairs'}",
            f"paths.base_dir={built / 'base'}", f"paths.weights_dir={built / 'weights'}",
            f"paths.generator_dir={generator_dir}"]


@pytest.fixture(scope="module")
def job(tiny_run, tmp_path_factory):
    built = tiny_run
    tmp_path = tmp_path_factory.mktemp("study_job")
    ws = run_workspace(
        built["artifacts"], *_paths(built["artifacts"] / "quickstart", tmp_path),
        "study.measure=[zero_shot,finetune,prompts,memorisation]", "study.n_train_eval=2",
        "study.finetune_concepts=1", "study.finetune_steps=2",
        "study.knobs=[tokenizer.block_size,diffusion.sampling.steps]",
    )
    return run_study_job(ws), ws


def test_a_study_job_reuses_the_trained_generator_and_reports_its_knobs(job):
    result, ws = job
    assert result["knob/tokenizer.block_size"] == 128
    assert result["knob/diffusion.sampling.steps"] == 1
    meta = json.loads((Path(ws.cfg.paths.generator_dir) / "generator.json").read_text())
    assert result["generator/train_seconds"] == meta["training"]["seconds"]  # not retrained


def test_zero_shot_and_finetune_measures(job, tiny_run):
    result, ws = job
    job_run = tiny_run
    built = {a["concept"]: a for a in job_run["dataset"]["adapters"]}
    concept = ws.test_concepts[0].id
    assert result["zero_shot/test/standard"] == pytest.approx(built[concept]["base_psnr"],
                                                             abs=1e-4)
    assert result["zero_shot/test/trained"] == pytest.approx(
        built[concept]["checkpoints"][4]["psnr"], abs=1e-4)
    assert result["zero_shot/test/count"] == 1
    assert result["zero_shot/test/beats_mean"] == float(
        result["zero_shot/test/generated"] > result["zero_shot/test/mean"])
    assert result["finetune/steps"] == 2 and result["finetune/concepts"] == 1
    assert 0 < result["finetune/test/final_psnr"] < 100


def test_prompt_variants_score_four_different_prompts(job):
    result, ws = job
    evaluator, inits = scoring_tools(ws)
    rows = prompt_variant_quality(evaluator, inits, ws.train_concepts[:2] + ws.test_concepts)[
        "concepts"]
    first, second = rows[0], rows[1]
    assert first["prompts"]["correct"] == ws.train_concepts[0].prompt
    assert first["prompts"]["shuffled"] == ws.train_concepts[1].prompt  # the only other one
    assert first["prompts"]["paraphrase"] not in (None, first["prompts"]["correct"])
    assert first["prompts"]["empty"] == ""
    # Different prompts give the overfit generator's two different adapters, so other scores.
    assert first["correct"] != first["shuffled"] and second["correct"] != second["shuffled"]
    for variant in VARIANTS:
        assert 0 < result[f"prompts/train/{variant}"] < 100


def test_the_paraphrase_gap_is_measured_on_the_train_concepts_the_paraphrases_reword():
    train, _, test = split_concepts(builtin_concepts())
    sources = paraphrase_sources(train, test)
    reworded = [c for c in test if c.holdout == "paraphrase"]
    assert sources and len(sources) == len(reworded)
    assert {f"{c.id}.paraphrase" for c in sources} == {c.id for c in reworded}
    assert all(c.split == "train" and c.heldout_phrasing for c in sources)
    assert paraphrase_sources(train, [c for c in test if c.holdout != "paraphrase"]) == []


def test_the_paraphrase_gap_is_the_median_per_concept_loss_of_the_held_out_wording(job):
    _, ws = job
    evaluator, inits = scoring_tools(ws)
    gap = paraphrase_gap(evaluator, inits, ws.train_concepts[:2])
    rows = gap["rows"]
    assert gap["concepts"] == len(rows) == 2
    assert gap["gap_db"] == pytest.approx(
        sum(r["correct"] - r["paraphrase"] for r in rows) / 2)  # the median of two
    assert gap["wrong_prompt"] == pytest.approx((rows[0]["shuffled"] + rows[1]["shuffled"]) / 2)
    with pytest.raises(ValueError, match="held-out phrasing"):
        paraphrase_gap(evaluator, inits, [c for c in ws.test_concepts if not c.heldout_phrasing])


def test_memorisation_finds_each_train_prompt_next_to_its_own_adapter(job):
    result, _ = job
    assert result["memorisation/train/nearest_is_own"] == 2
    between = result["memorisation/between_concepts_median"]
    assert between > 0
    assert result["memorisation/train/distance_ratio"] == pytest.approx(
        result["memorisation/train/nearest_distance_median"] / between)
    assert result["memorisation/test/count"] == 1
    assert "memorisation/test/nearest_is_own" not in result  # held-out concepts have no own adapter


def test_unknown_measure_is_a_clear_error(tiny_run, tmp_path):
    built = tiny_run["artifacts"]
    ws = run_workspace(built, *_paths(built / "quickstart", tmp_path), "study.measure=[fid]")
    with pytest.raises(ValueError, match=r"unknown entries \['fid'\]"):
        run_study_job(ws)


def test_the_report_callback_gathers_only_this_sweeps_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "7").mkdir(parents=True)
    (sweep / "7" / RESULT_FILE).write_text(json.dumps({"job": 7, "stale": True}))
    report = StudyReport(out_dir=str(tmp_path / "out"), title="T", command="cmd",
                         columns=["zero_shot/test/generated"], lines=["zero_shot/test/generated"])
    report.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    for num, value in ((1, 18.5), (0, 17.0)):
        config = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(sweep / str(num))},
                                             "job": {"num": num}}})
        ret = JobReturn(status=JobStatus.COMPLETED,
                        _return_value={"knob/tokenizer.block_size": 128 * (num + 1),
                                       "zero_shot/test/generated": value})
        report.on_job_end(config, ret)
    failed = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("job failed"))
    report.on_job_end(OmegaConf.create({"hydra": {"runtime": {"output_dir": str(sweep / "2")},
                                                  "job": {"num": 2}}}), failed)
    report.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    jobs = json.loads((tmp_path / "out" / "results.json").read_text())["jobs"]
    assert [j["job"] for j in jobs] == [0, 1]  # job order; stale and failed jobs left out
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| block_size=128 | 17.00 |" in table and "| block_size=256 | 18.50 |" in table
    assert (tmp_path / "out" / "results.png").stat().st_size > 1000
    assert job_label({}) == "default"


def test_a_study_is_a_real_hydra_multirun(tiny_run, tmp_path):
    """weightgen-study --multirun: two jobs share one generator; the callback writes the table."""
    built = tiny_run["artifacts"] / "quickstart"
    out = tmp_path / "report"
    callback = ("+hydra.callbacks.study_report={_target_:weightgen.study.report.StudyReport,"
                f"out_dir:'{out}',title:tiny,command:cmd,"
                "columns:[zero_shot/test/generated,zero_shot/generation_seconds]}")
    command = [
        str(CLI), "--multirun", *TINY, *TINY_GENERATOR, *_paths(built, tmp_path),
        f"paths.artifacts={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "study.knobs=[diffusion.sampling.steps]", "study.n_train_eval=1", "num_threads=1",
        callback, "diffusion.sampling.steps=1,2",
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = json.loads((out / "results.json").read_text())["jobs"]
    assert [j["knob/diffusion.sampling.steps"] for j in jobs] == [1, 2]
    assert jobs[0]["generator/train_seconds"] == jobs[1]["generator/train_seconds"]
    assert "steps=2" in (out / "results.md").read_text()


def _zero_shot_report(generated: list[float]) -> dict:
    """A zero_shot.json-shaped report: held-out concepts with the given generated PSNRs."""
    kinds = {"standard": 17.0, "mean": 17.5, "nearest": 18.0, "trained": 23.0}
    concepts = [{"concept": f"c{i}", "split": "test", "generated": {"psnr": g}}
                | {k: {"psnr": v} for k, v in kinds.items()} for i, g in enumerate(generated)]
    median = sorted(generated)[len(generated) // 2]
    summary = {"train": kinds | {"generated": 22.0}, "test": kinds | {"generated": median},
               "generation_seconds": 0.01}
    return {"summary": summary, "concepts": concepts}


def test_generalisation_table_counts_wins_per_concept(tmp_path):
    records = [{"name": "a", "note": "n", "overrides": [], "train_seconds": 12.0,
                "zero_shot": _zero_shot_report([17.6, 18.5, 16.0])}]
    generalisation_table(records, tmp_path)
    row = json.loads((tmp_path / "results.json").read_text())["configurations"][0]
    assert (row["beats_mean"], row["beats_nearest"], row["beats_both"]) == (2, 1, 1)
    assert row["beats_base"] == 2 and row["test_count"] == 3
    assert "2, 1, **1** (of 3) | not run |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.png").stat().st_size > 1000


def test_generalisation_table_shows_the_paraphrase_gap_where_it_was_measured(tmp_path):
    measured = _zero_shot_report([18.5])
    measured["summary"]["paraphrase_gap"] = {"concepts": 8, "training_phrasing": 25.0,
                                             "heldout_phrasing": 21.5, "wrong_prompt": 15.0,
                                             "gap_db": 3.25}
    records = [{"name": name, "note": "n", "overrides": [], "train_seconds": 1.0,
                "zero_shot": report}
               for name, report in (("a", measured), ("b", _zero_shot_report([18.5])))]
    generalisation_table(records, tmp_path)
    rows = json.loads((tmp_path / "results.json").read_text())["configurations"]
    assert rows[0]["paraphrase_gap"]["gap_db"] == 3.25 and rows[1]["paraphrase_gap"] is None
    table = (tmp_path / "results.md").read_text().splitlines()
    assert "| 25.00 / 21.50 / 15.00, **3.25** |" in table[2]
    assert "| not run | not run | not run |" in table[3]


def test_generalisation_table_gives_text_plus_examples_its_own_cell_with_its_speedups(tmp_path):
    report = _zero_shot_report([17.6, 18.5])
    for row, psnr in zip(report["concepts"], (19.0, 17.0), strict=True):
        row["generated_examples"] = {"psnr": psnr}
    report["summary"]["test"]["generated_examples"] = 18.0
    paired = {"concepts": 2, "median_ratio": 3.5, "wins": 2, "losses": 0, "ties": 0,
              "p_value": 0.5}
    methods = ("denoised_init", "denoised_examples_init", "e2gan_lora")
    bench_results = {
        "summary": {"seconds_to_target": dict.fromkeys(methods, 5.0),
                    "speedup_vs_e2gan": 1.5, "speedup_vs_pix2pix": 4.0,
                    "speedup_ceiling_vs_e2gan": 9.0,
                    "speedup_by_method": {"denoised_examples_init": 12.0},
                    "paired_vs_e2gan": {"denoised_init": paired,
                                        "denoised_examples_init": paired},
                    "paired_steps_vs_e2gan": {"denoised_init": paired,
                                              "denoised_examples_init": paired
                                              | {"median_ratio": 4.0, "wins": 1}}},
        "concepts": [{"seen": False, "methods": {m: {"steps_to_target": 10} for m in methods}}],
    }
    records = [{"name": "a", "note": "n", "overrides": [], "train_seconds": 1.0,
                "zero_shot": report, "bench": bench_results},
               {"name": "b", "note": "n", "overrides": [], "train_seconds": 1.0,
                "zero_shot": _zero_shot_report([18.5])}]
    generalisation_table(records, tmp_path)
    row = json.loads((tmp_path / "results.json").read_text())["configurations"][0]
    assert row["examples_beats_both"] == 1 and row["examples_speedup_vs_pix2pix"] == 12.0
    table = (tmp_path / "results.md").read_text().splitlines()
    assert ("| **18.00** (1); vs E2GAN 3.50x (2-0), in steps 4.00x (1-0); vs pix2pix 12.00x |"
            in table[2])
    assert "(of 1) | — | not run |" in table[3]  # a configuration without examples
    # a bench of the text + examples method alone (run.py --generated denoised_examples_init)
    for key in ("seconds_to_target", "paired_vs_e2gan", "paired_steps_vs_e2gan"):
        bench_results["summary"][key].pop("denoised_init")
    generalisation_table(records[:1], tmp_path)
    row = json.loads((tmp_path / "results.json").read_text())["configurations"][0]
    assert row["examples_speedup_vs_pix2pix"] == 12.0 and "speedup_vs_e2gan" not in row
    assert "| not run | not run |" in (tmp_path / "results.md").read_text().splitlines()[2]


def test_generalisation_table_reads_steps_to_target_from_a_benchmark(tmp_path):
    def run(steps):
        return {"steps_to_target": steps}

    bench_results = {
        "summary": {"seconds_to_target": {"denoised_init": 9.5, "e2gan_lora": 20.0}},
        "concepts": [
            {"seen": False, "methods": {"denoised_init": run(50), "e2gan_lora": run(150)}},
            {"seen": False, "methods": {"denoised_init": run(None), "e2gan_lora": run(100)}},
            {"seen": True, "methods": {"denoised_init": run(1000), "e2gan_lora": run(1000)}},
        ],
    }
    records = [{"name": "a", "note": "n", "overrides": [], "train_seconds": 1.0,
                "zero_shot": _zero_shot_report([18.5]), "bench": bench_results}]
    generalisation_table(records, tmp_path)
    row = json.loads((tmp_path / "results.json").read_text())["configurations"][0]
    # Medians over held-out concepts that reached the target; seen concepts are left out.
    assert (row["steps_to_target"], row["standard_steps_to_target"]) == (50, 125)
    assert row["seconds_to_target"] == 9.5
    assert "| 50 / 125 |" in (tmp_path / "results.md").read_text()


def test_generalisation_table_gives_the_speedup_over_e2gan_with_its_sign_test(tmp_path):
    paired = {"concepts": 3, "wins": 2, "losses": 1, "ties": 0, "p_value": 1.0}
    bench_results = {
        "summary": {"seconds_to_target": {"denoised_init": 5.0, "e2gan_lora": 10.0},
                    "speedup_vs_e2gan": 1.5, "speedup_vs_pix2pix": 4.0,
                    "speedup_ceiling_vs_e2gan": 9.0,
                    "paired_vs_e2gan": {"denoised_init": paired},
                    "paired_steps_vs_e2gan": {"denoised_init": paired | {"median_ratio": 2.0}}},
        "concepts": [{"seen": False, "methods": {"denoised_init": {"steps_to_target": 10},
                                                 "e2gan_lora": {"steps_to_target": 20}}}],
    }
    records = [{"name": "a", "note": "n", "overrides": [], "train_seconds": 1.0,
                "zero_shot": _zero_shot_report([18.5]), "bench": bench_results}]
    generalisation_table(records, tmp_path)
    row = json.loads((tmp_path / "results.json").read_text())["configurations"][0]
    assert row["speedup_vs_e2gan"] == 1.5 and row["paired_vs_e2gan"] == paired
    assert "| 1.50x (9x); 2-1, p=1; in steps 2.00x, 2-1, p=1 |" in (
        tmp_path / "results.md").read_text()
