"""The headline benchmark: results.json contract, reports, resume, time-to-target (issue 5)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import record_method_runs, run_workspace, tiny_config

import weightgen.bench.methods as registry
import weightgen.bench.report as report
import weightgen.finetune.inits as inits
import weightgen.stages.bench as bench
from weightgen.bench.report import write_results_markdown
from weightgen.bench.stats import performance_profile, plateau_reached, sign_test
from weightgen.bench.summary import concept_result, summarise
from weightgen.concepts.spec import Concept
from weightgen.derived_reports import drop_generator_reports
from weightgen.errors import ConfigError, IncompleteStoreError
from weightgen.finetune.curve import steps_to_target, time_to_target
from weightgen.finetune.finetuner import MethodRun
from weightgen.stages.bench import bench_concepts, run_benchmark
from weightgen.stages.workspace import Workspace

METHODS = ["pix2pix_scratch", "e2gan_lora", "denoised_init", "mean_init", "nearest_init",
           "shuffled_prompt_init", "trained_init"]
HEADLINE = "denoised_init"  # the tiny run's generator is text only (helpers.TINY)
TINY_BENCH = ["bench.n_unseen=1", "bench.n_seen=1", "bench.pix2pix_steps=6",
              "bench.finetune_steps=4", "bench.eval_every=2"]
PNG = b"\x89PNG\r\n\x1a\n"


def bench_workspace(artifacts, bench_dir, *overrides):
    return run_workspace(artifacts, *TINY_BENCH, f"paths.bench_dir={bench_dir}", *overrides)


@pytest.fixture(scope="module")
def benchmark(tiny_run, tmp_path_factory):
    """One tiny benchmark of all seven methods on 1 held-out + 1 train concept."""
    artifacts = tiny_run["artifacts"]
    bench_dir = tmp_path_factory.mktemp("bench")
    ws = bench_workspace(artifacts, bench_dir)
    summary = run_benchmark(ws)
    return {"artifacts": artifacts, "dir": bench_dir, "ws": ws, "summary": summary,
            "built": tiny_run["dataset"],
            "results": json.loads((bench_dir / "results.json").read_text())}


def test_results_json_has_the_contract_keys(benchmark):
    summary = benchmark["results"]["summary"]
    assert summary == json.loads(json.dumps(benchmark["summary"]))  # what run_benchmark returned
    ws = benchmark["ws"]
    assert summary["heldout_concepts"] == [ws.test_concepts[0].id]
    assert summary["seen_concepts"] == [ws.first_train_concepts(1)[0].id]
    for key in ("speedup_vs_pix2pix", "speedup_vs_e2gan", "speedup_ceiling_vs_pix2pix",
                "speedup_ceiling_vs_e2gan"):
        assert isinstance(summary[key], float) and summary[key] >= 0, key
    assert summary["generation_seconds"] > 0
    heldout = next(r for r in benchmark["results"]["concepts"] if not r["seen"])
    for key in ("final_psnr", "zero_shot_psnr"):
        assert set(summary[key]) == set(METHODS)
    for method, record in heldout["methods"].items():  # medians of one held-out concept
        assert summary["final_psnr"][method] == record["curve"][-1]["psnr"]
        assert summary["zero_shot_psnr"][method] == record["curve"][0]["psnr"]
    # e2gan_lora starts from the standard adapter: the base, as the builder scored it.
    built = {a["concept"]: a for a in benchmark["built"]["adapters"]}
    assert summary["zero_shot_psnr"]["e2gan_lora"] == pytest.approx(
        built[heldout["concept"]]["base_psnr"], abs=1e-4)
    assert summary["reached_target"]["pix2pix_scratch"] == 1  # its own final is within tolerance


def test_results_give_every_figure_per_kind_of_held_out_concept(benchmark):
    """Issue 23: summary.by_kind.<kind> holds the summary's figures over that kind alone."""
    summary = benchmark["results"]["summary"]
    heldout = benchmark["ws"].test_concepts[0]
    assert heldout.kind == "new" and summary["split"] == "test"
    assert summary["heldout_kinds"] == {"new": 1} and summary["headline_kind"] == "new"
    new = summary["by_kind"]["new"]
    overall = {k: v for k, v in summary.items() if k not in (
        "split", "headline", "headline_kind", "heldout_kinds", "seen_concepts", "by_kind",
        "image_metrics")}
    assert new == overall  # the run's only held-out concept is new: its kind's figures are all
    for key in ("speedup_vs_pix2pix", "speedup_vs_e2gan", "one_step_floor", "paired_vs_e2gan",
                "paired_steps_vs_e2gan", "zero_shot_psnr", "psnr_at_seconds", "reached_target",
                "performance_profile"):
        assert new[key] is not None, key
    profile = new["performance_profile"]
    assert profile["reference"] == "e2gan_lora" and profile["tau"] == list(range(1, 33))
    assert set(profile["area"]) == set(METHODS) and all(
        len(share) == 32 and share == sorted(share) for share in profile["share"].values())
    assert [r["kind"] for r in benchmark["results"]["concepts"]] == ["new", None]  # then seen


def test_results_record_each_concept_and_method(benchmark):
    results = benchmark["results"]
    assert results["config"]["methods"] == METHODS
    assert results["config"]["finetune_steps"] == 4
    by_concept = {r["concept"]: r for r in results["concepts"]}
    heldout = by_concept[benchmark["ws"].test_concepts[0].id]
    seen = benchmark["ws"].first_train_concepts(1)[0].id
    assert not heldout["seen"] and by_concept[seen]["seen"]
    p2p = heldout["methods"]["pix2pix_scratch"]
    # bench.log_eval_until (32) then every bench.eval_every (2) up to bench.pix2pix_steps (6)
    assert [p["step"] for p in p2p["curve"]] == [0, 1, 2, 4, 6]
    assert heldout["target_psnr"] == pytest.approx(p2p["final_psnr"] - 0.1)
    summary = results["summary"]
    for method in METHODS:
        record = heldout["methods"][method]
        assert record["curve"][0]["step"] == 0 and record["final_step"] <= 4 + 2 * (
            method == "pix2pix_scratch")
        assert summary["final_psnr"][method] == record["final_psnr"]  # median of one concept
        assert summary["zero_shot_psnr"][method] == record["zero_shot_psnr"]
        run_file = benchmark["dir"] / "runs" / heldout["concept"] / f"{method}.json"
        assert json.loads(run_file.read_text())["curve"] == record["curve"]
        assert run_file.with_suffix(".samples.safetensors").is_file()
    generated = heldout["methods"]["denoised_init"]
    assert generated["curve"][0]["seconds"] == generated["init_seconds"] > 0
    assert summary["generation_seconds"] == generated["init_seconds"]
    assert heldout["methods"]["e2gan_lora"]["init_seconds"] == 0.0
    # The ceiling starts from the held-out concept's own stored adapter.
    stored = {r["concept"]: r for r in benchmark["ws"].weight_store.final_rows()}
    assert stored[heldout["concept"]]["split"] == "test"
    assert heldout["methods"]["trained_init"]["zero_shot_psnr"] == pytest.approx(
        stored[heldout["concept"]]["psnr"], abs=1e-4)


def test_reports_are_written(benchmark):
    markdown = (benchmark["dir"] / "results.md").read_text()
    tables = [line for line in markdown.splitlines() if line.startswith("### ")]
    assert tables[:2] == [  # the new concepts first: the headline
        "### New concepts (a recipe no training concept has: the headline) (1 concepts, medians)",
        "### Seen (train) concepts (1 concepts, medians)"]
    for method in METHODS:  # each row: the method's name and label
        assert f"| {method} ({registry.METHODS[method].label}) |" in markdown
    assert "| trained_init (ceiling) |" in markdown
    assert ("- ceiling (trained_init, the store's own adapter: the best any generator can do with "
            "this data) on 1 new concept(s): speed-up vs pix2pix ") in markdown
    assert "- split: test (reported, never tuned on); held-out concepts: 1 new" in markdown
    assert "### Performance profile vs e2gan_lora (area over tau = 1..32; profile.png)" in markdown
    for name in ("curves.png", "profile.png", "grid.png"):
        data = (benchmark["dir"] / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, name


def test_a_made_up_method_needs_only_its_registry_entry_and_its_init(benchmark, tmp_path,
                                                                     monkeypatch):
    """Adding a method is one entry in weightgen.bench.methods plus its init (issue 22): this one
    starts from the mean adapter under another name, so it trains exactly as mean_init did."""
    def made_up(sources, concept):
        return replace(sources.mean(concept), kind="made_up")

    monkeypatch.setitem(registry.METHODS, "made_up_init",
                        registry.BenchMethod("made_up_init", "made_up", "the mean, renamed"))
    monkeypatch.setitem(inits.INITS, "made_up", made_up)
    for method in ("pix2pix_scratch", "mean_init"):  # reused: only the new method trains
        for run in (benchmark["dir"] / "runs").glob(f"*/{method}.*"):
            (tmp_path / "runs" / run.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(run, tmp_path / "runs" / run.parent.name / run.name)
    calls = record_method_runs(monkeypatch)
    summary = run_benchmark(bench_workspace(
        benchmark["artifacts"], tmp_path, "bench.methods=[pix2pix_scratch,mean_init,made_up_init]",
        "bench.headline=made_up_init"))
    concepts = [c.id for c in benchmark["ws"].test_concepts[:1]
                + benchmark["ws"].first_train_concepts(1)]
    assert calls == [(c, "made_up_init") for c in concepts]
    results = json.loads((tmp_path / "results.json").read_text())
    for result in results["concepts"]:
        ours, mean = result["methods"]["made_up_init"], result["methods"]["mean_init"]
        assert [(p["step"], p["psnr"]) for p in ours["curve"]] == [
            (p["step"], p["psnr"]) for p in mean["curve"]]
        assert (tmp_path / "runs" / result["concept"] / "made_up_init.json").is_file()
    # The summary headlines it (bench.headline), and the tables name it with its label.
    assert summary["headline"] == "made_up_init"
    assert summary["speedup_vs_pix2pix"] == summary["speedup_by_method"]["made_up_init"]
    markdown = (tmp_path / "results.md").read_text()
    assert "| made_up_init (the mean, renamed) |" in markdown
    assert "- made_up_init (bench.headline) on 1 new concept(s): speed-up vs pix2pix" in markdown


def test_rerun_resumes_without_running_any_method(benchmark, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished (concept, method) was run again")

    monkeypatch.setattr(bench, "run_method", must_not_run)
    again = run_benchmark(bench_workspace(benchmark["artifacts"], benchmark["dir"]))
    assert json.loads(json.dumps(again)) == benchmark["results"]["summary"]


def test_rerun_runs_only_the_missing_method(benchmark, monkeypatch):
    concept = benchmark["ws"].test_concepts[0].id
    (benchmark["dir"] / "runs" / concept / "mean_init.json").unlink()
    calls = record_method_runs(monkeypatch)
    again = run_benchmark(bench_workspace(benchmark["artifacts"], benchmark["dir"]))
    assert calls == [(concept, "mean_init")]
    # Deterministic CPU training: the rerun method gives back the same quality.
    assert again["final_psnr"] == benchmark["summary"]["final_psnr"]


def test_a_new_generator_reruns_only_the_methods_that_use_it(benchmark, tmp_path, monkeypatch):
    shutil.copytree(benchmark["dir"] / "runs", tmp_path / "runs")
    generator = tmp_path / "generator"
    shutil.copytree(benchmark["ws"].cfg.paths.generator_dir, generator)
    meta = json.loads((generator / "generator.json").read_text())
    (generator / "generator.json").write_text(json.dumps(meta | {"retrained": True}))
    calls = record_method_runs(monkeypatch)
    run_benchmark(bench_workspace(benchmark["artifacts"], tmp_path,
                                  f"paths.generator_dir={generator}"))
    assert sorted(method for _, method in calls) == [
        "denoised_init", "denoised_init", "shuffled_prompt_init", "shuffled_prompt_init"]  # 2 concepts


def test_a_recipe_reruns_only_its_method_and_trains_it_with_its_gan_overrides(
        benchmark, tmp_path, monkeypatch):
    shutil.copytree(benchmark["dir"] / "runs", tmp_path / "runs")
    calls = record_method_runs(monkeypatch)
    # A recipe that cannot learn (and a keyword the default schedule does not set), beside one
    # for a method this bench does not run (unused).
    frozen = ("bench.recipes={e2gan_lora:{optimizer:{lr:0.0},lr_scheduler:{warmup_steps:2}},"
              "denoised_examples_init:{optimizer:{lr:1.0}}}")
    run_benchmark(bench_workspace(benchmark["artifacts"], tmp_path, frozen))
    assert [method for _, method in calls] == ["e2gan_lora", "e2gan_lora"]  # others reused
    results = json.loads((tmp_path / "results.json").read_text())
    for result in results["concepts"]:
        e2gan = result["methods"]["e2gan_lora"]
        assert e2gan["final_psnr"] == pytest.approx(e2gan["zero_shot_psnr"], abs=1e-5)
    assert results["config"]["recipes"]["e2gan_lora"] == {"optimizer": {"lr": 0.0},
                                                          "lr_scheduler": {"warmup_steps": 2}}


def test_a_recipe_naming_no_method_or_no_gan_key_is_refused(benchmark, tmp_path):
    ws = bench_workspace(benchmark["artifacts"], tmp_path,
                         "bench.recipes={e2gan:{optimizer:{lr:1.0e-4}}}")
    with pytest.raises(ConfigError, match=r"bench.recipes names e2gan, which is no benchmark "
                                          r"method \(methods: pix2pix_scratch, e2gan_lora"):
        run_benchmark(ws)
    ws = bench_workspace(benchmark["artifacts"], tmp_path,
                         "bench.recipes={e2gan_lora:{optimiser:{lr:1.0e-4}}}")
    with pytest.raises(ConfigError, match=r"bench.recipes.e2gan_lora does not fit the gan group"):
        run_benchmark(ws)
    assert not (tmp_path / "results.json").exists()


def test_rerun_with_another_budget_does_not_reuse_stale_runs(benchmark, tmp_path):
    shutil.copytree(benchmark["dir"] / "runs", tmp_path / "runs")
    ws = bench_workspace(benchmark["artifacts"], tmp_path, "bench.finetune_steps=2")
    try:
        run_benchmark(ws)
    except ValueError as err:  # refusing, naming the changed setting, is a fix too
        assert "finetune_steps" in str(err)
        return
    results = json.loads((tmp_path / "results.json").read_text())
    for result in results["concepts"]:
        for method, record in result["methods"].items():
            if method != "pix2pix_scratch":
                assert record["final_step"] <= 2, (result["concept"], method)


def test_methods_must_start_with_pix2pix(benchmark, tmp_path):
    ws = bench_workspace(benchmark["artifacts"], tmp_path,
                         "bench.methods=[e2gan_lora,pix2pix_scratch]")
    with pytest.raises(ValueError, match="bench.methods must start with pix2pix_scratch"):
        run_benchmark(ws)
    assert not (tmp_path / "results.json").exists()


def test_a_method_that_is_not_registered_is_refused_before_any_run(benchmark, tmp_path,
                                                                   monkeypatch):
    """It used to fail at its first run, after pix2pix had trained on the first concept."""
    monkeypatch.setattr(bench, "run_method", lambda *args, **kwargs: pytest.fail("a run started"))
    ws = bench_workspace(benchmark["artifacts"], tmp_path, "bench.methods=[pix2pix_scratch,e2gan]")
    with pytest.raises(ConfigError, match="bench.methods names 'e2gan', which is no benchmark "
                                          "method; use one of pix2pix_scratch, e2gan_lora"):
        run_benchmark(ws)
    assert list(tmp_path.iterdir()) == []


def test_results_name_the_generator_they_were_made_with(benchmark):
    """So a new generator in that folder deletes them (weightgen.derived_reports, issue 14 #3)."""
    folder = Path(benchmark["ws"].cfg.paths.generator_dir).resolve()
    assert benchmark["results"]["inputs"] == {"generator_dir": str(folder)}


@pytest.mark.parametrize("override", ["bench.n_unseen=2", "bench.n_seen=3"])
def test_more_concepts_than_the_run_has_is_refused_before_any_work(benchmark, tmp_path, override):
    """bench.n_unseen=-1 used to slice [:-1] and overwrite results.json (issue 14 #2)."""
    ws = bench_workspace(benchmark["artifacts"], tmp_path, override)
    key, value = override.split("=")
    with pytest.raises(ConfigError, match=rf"{key}={value} is more than the run's \d concepts"):
        run_benchmark(ws)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_validation_split_is_benchmarked_on_its_own_concepts(tmp_path):
    """bench.split=val runs on the validation concepts (where choices are made), never on the
    test concepts it reports; bench.n_unseen=null takes every one of the split."""
    ws = Workspace(tiny_config(tmp_path, "concepts.n_val=2", "bench.split=val",
                               "bench.n_unseen=null", "bench.n_seen=0"))
    assert [c.split for c in bench_concepts(ws)] == ["val", "val"]
    assert bench_concepts(ws) == ws.val_concepts
    assert not {c.id for c in ws.val_concepts} & {c.id for c in ws.test_concepts}
    test = Workspace(tiny_config(tmp_path, "concepts.n_val=2", "bench.n_unseen=null",
                                 "bench.n_seen=0"))
    assert bench_concepts(test) == test.test_concepts
    none = Workspace(tiny_config(tmp_path, "concepts.n_val=0", "bench.split=val"))
    with pytest.raises(ConfigError, match=r"held-out concepts of bench.split=val: set "
                                          r"concepts.n_val > 0"):
        bench_concepts(none)


def test_a_new_generator_deletes_the_validation_split_reports_it_made_too(tmp_path):
    generator, bench_dir = tmp_path / "generator", tmp_path / "bench"
    generator.mkdir()
    made_with = json.dumps({"inputs": {"generator_dir": str(generator.resolve())}})
    for reports in (bench_dir, bench_dir / "val"):
        reports.mkdir(parents=True, exist_ok=True)
        (reports / "results.json").write_text(made_with)
        (reports / "profile.png").write_bytes(PNG)
    (bench_dir / "runs").mkdir()
    gone = drop_generator_reports(generator, bench_dir)
    assert sorted(p.relative_to(bench_dir).as_posix() for p in gone) == [
        "profile.png", "results.json", "val/profile.png", "val/results.json"]
    assert (bench_dir / "runs").is_dir()  # the runs are keyed by their settings: kept


def test_a_store_without_the_held_out_adapters_fails_before_any_run(benchmark, tmp_path,
                                                                     monkeypatch):
    """The ceiling needs each held-out concept's own adapter: never silently skipped."""
    weights = tmp_path / "weights"
    shutil.copytree(benchmark["ws"].cfg.paths.weights_dir, weights)
    heldout = benchmark["ws"].test_concepts[0].id
    manifest = weights / "manifest.jsonl"
    rows = [line for line in manifest.read_text().splitlines()
            if json.loads(line)["concept"] != heldout]
    manifest.write_text("\n".join(rows) + "\n")

    def must_not_run(*args, **kwargs):
        raise AssertionError("a method ran although the ceiling cannot be measured")

    monkeypatch.setattr(bench, "run_method", must_not_run)
    ws = bench_workspace(benchmark["artifacts"], tmp_path / "bench", f"paths.weights_dir={weights}")
    with pytest.raises(IncompleteStoreError, match=f"no trained adapter for {re.escape(heldout)}"
                       ".*make dataset.*drop trained_init"):
        run_benchmark(ws)
    assert not (tmp_path / "bench" / "results.json").exists()


# --- the bookkeeping, on hand-made curves ---------------------------------------------------


def curve(*points: tuple[int, float, float]) -> list[dict]:
    return [{"step": s, "seconds": t, "psnr": p, "ssim": 0.5} for s, t, p in points]


def test_time_and_steps_to_target():
    points = curve((0, 1.0, 10.0), (10, 3.0, 12.0), (20, 5.0, 14.0), (30, 7.0, 13.0))
    assert time_to_target(points, 12.0) == 3.0 and steps_to_target(points, 12.0) == 10
    assert time_to_target(points, 13.5) == 5.0 and steps_to_target(points, 13.5) == 20
    assert time_to_target(points, 9.0) == 1.0 and steps_to_target(points, 9.0) == 0
    assert time_to_target(points, 14.1) is None and steps_to_target(points, 14.1) is None
    assert time_to_target([], 0.0) is None


def test_plateau_is_a_small_gain_over_the_last_quarter():
    rising = curve(*[(i, i, 10.0 + i) for i in range(8)])  # last quarter: 16 -> 17
    assert not plateau_reached(rising, plateau_db=0.3)
    assert plateau_reached(rising, plateau_db=1.5)
    flat_end = curve(*[(i, i, min(10.0 + i, 14.0)) for i in range(8)])
    assert plateau_reached(flat_end, plateau_db=0.3)
    falling = curve((0, 0, 10.0), (1, 1, 20.0), (2, 2, 19.0))  # short curve: last two points
    assert plateau_reached(falling, plateau_db=0.3)


def method_run(method: str, points: list[dict], init_seconds: float = 0.0) -> MethodRun:
    return MethodRun(method, "c", points, init_seconds=init_seconds)


def concept(concept_id: str, split: str = "test", kind: str = "new") -> Concept:
    return Concept(concept_id, "p", instruction="an edit", split=split,
                   holdout=None if split == "train" else kind)


# One held-out concept "c" with target 20.9 dB: pix2pix reaches it at 20 s (21 dB at step 200);
# the generated init starts at 18 dB (0.5 s to generate) and reaches it at 2 s; E2GAN from the
# standard init stops short at 20.5 dB after 4 s.
HELD_OUT = concept("c")


def pix2pix_reaching_21_at_20s() -> MethodRun:
    return method_run("pix2pix_scratch", curve((0, 0.0, 5.0), (10, 1.0, 6.0), (100, 10.0, 20.0),
                                               (200, 20.0, 21.0)))


def e2gan_missing_the_target() -> MethodRun:
    return method_run("e2gan_lora", curve((0, 0.0, 15.0), (10, 4.0, 20.5)))


def generated_reaching_the_target_at_2s() -> MethodRun:
    return method_run("denoised_init", curve((0, 0.5, 18.0), (10, 2.0, 20.9)), init_seconds=0.5)


def test_speedups_are_time_ratios_and_zero_when_the_target_is_missed():
    runs = {
        "pix2pix_scratch": pix2pix_reaching_21_at_20s(),
        "e2gan_lora": e2gan_missing_the_target(),
        "denoised_init": generated_reaching_the_target_at_2s(),
        "mean_init": method_run("mean_init", curve((0, 0.0, 15.0), (10, 2.0, 16.0))),
    }
    result = concept_result(HELD_OUT, runs, target=20.9, plateau=True)
    methods = result["methods"]
    assert methods["pix2pix_scratch"]["seconds_to_target"] == 20.0
    assert methods["pix2pix_scratch"]["speedup_vs_pix2pix"] == 1.0
    assert methods["denoised_init"]["speedup_vs_pix2pix"] == 10.0
    assert methods["denoised_init"]["steps_to_target"] == 10
    assert methods["e2gan_lora"]["seconds_to_target"] is None
    assert methods["e2gan_lora"]["speedup_vs_pix2pix"] == 0.0
    assert methods["denoised_init"]["zero_shot_psnr"] == 18.0
    summary = summarise([result], list(runs), HEADLINE)
    assert summary["speedup_vs_pix2pix"] == 10.0
    assert summary["generation_seconds"] == 0.5
    assert summary["reached_target"] == {"pix2pix_scratch": 1, "e2gan_lora": 0,
                                         "denoised_init": 1, "mean_init": 0}
    assert summary["final_psnr"]["mean_init"] == 16.0


def test_summary_medians_over_held_out_concepts_only():
    def result(concept_id, seen, p2p_seconds, ours_seconds, e2gan_seconds):
        runs = {
            "pix2pix_scratch": method_run("pix2pix_scratch", curve((0, 0.0, 1.0), (1, 0.1, 2.0),
                                                                   (9, p2p_seconds, 20.0))),
            "e2gan_lora": method_run("e2gan_lora", curve((0, 0.0, 1.0),
                                                         (9, e2gan_seconds, 20.0))),
            "denoised_init": method_run("denoised_init", curve((0, 0.1, 1.0),
                                                               (9, ours_seconds, 20.0)), 0.1),
        }
        return concept_result(concept(concept_id, "train" if seen else "test"), runs,
                              target=20.0, plateau=True)

    results = [result("a", False, 12.0, 1.0, 4.0), result("b", False, 12.0, 3.0, 6.0),
               result("c", False, 12.0, 4.0, 4.0), result("d", True, 100.0, 1.0, 50.0)]
    summary = summarise(results, ["pix2pix_scratch", "e2gan_lora", "denoised_init"], HEADLINE)
    assert summary["heldout_concepts"] == ["a", "b", "c"] and summary["seen_concepts"] == ["d"]
    assert summary["speedup_vs_pix2pix"] == 4.0  # median of 12, 4, 3
    assert summary["speedup_vs_e2gan"] == 2.0  # median of 4, 2, 1
    assert summary["seconds_to_target"]["denoised_init"] == 3.0


def test_a_free_init_already_at_the_target_is_not_counted_as_a_miss():
    runs = {
        "pix2pix_scratch": pix2pix_reaching_21_at_20s(),
        "nearest_init": method_run("nearest_init", curve((0, 0.0, 21.0), (10, 2.0, 21.5))),
    }
    nearest = concept_result(HELD_OUT, runs, target=20.9, plateau=True)["methods"]["nearest_init"]
    assert nearest["seconds_to_target"] == 0.0 and nearest["steps_to_target"] == 0
    assert nearest["target_at_start"] and nearest["speedup_vs_pix2pix"] > 0


def test_an_init_at_the_target_costs_its_generation_time_and_one_step_when_conservative():
    """Issue 23: an init at the target before training is charged its generation (or selection)
    time; the conservative figures floor every time at one training step (pix2pix's first
    evaluation interval over its steps: 1 s / 10 steps here), not one evaluation interval."""
    runs = {
        "pix2pix_scratch": pix2pix_reaching_21_at_20s(),
        "e2gan_lora": method_run("e2gan_lora", curve((0, 0.0, 15.0), (1, 0.1, 16.0),
                                                     (40, 4.0, 21.0))),
        "denoised_init": method_run("denoised_init", curve((0, 0.05, 21.2)), init_seconds=0.05),
        "nearest_init": method_run("nearest_init", curve((0, 0.0, 21.0))),
    }
    result = concept_result(HELD_OUT, runs, target=20.9, plateau=True)
    assert result["one_step_seconds"] == pytest.approx(0.1)
    generated, nearest = result["methods"]["denoised_init"], result["methods"]["nearest_init"]
    assert generated["target_at_start"] and generated["seconds_to_target"] == 0.05
    assert generated["speedup_vs_pix2pix"] == pytest.approx(400.0)  # 20 s / 0.05 s generating
    assert generated["speedup_vs_pix2pix_one_step_floor"] == pytest.approx(200.0)  # / 0.1 s
    # A selection that took no measurable time is floored at stats.MIN_SECONDS (0.01 s).
    assert nearest["speedup_vs_pix2pix"] == pytest.approx(2000.0)
    assert nearest["speedup_vs_pix2pix_one_step_floor"] == pytest.approx(200.0)
    summary = summarise([result], list(runs), HEADLINE)
    assert summary["speedup_vs_pix2pix"] == pytest.approx(400.0)
    assert summary["speedup_vs_e2gan"] == pytest.approx(80.0)  # E2GAN's 4 s / 0.05 s
    assert summary["one_step_floor"]["speedup_vs_pix2pix"] == pytest.approx(200.0)
    assert summary["one_step_floor"]["speedup_vs_e2gan"] == pytest.approx(40.0)  # 4 s / 0.1 s
    assert summary["one_step_floor"]["speedup_by_method"]["nearest_init"] == pytest.approx(200.0)
    assert summary["one_step_seconds"] == pytest.approx(0.1)
    # In steps an init at the target counts one step: E2GAN's 40 steps / 1.
    assert summary["paired_steps_vs_e2gan"]["denoised_init"]["median_ratio"] == 40.0


def test_the_ceiling_at_the_target_at_step_zero_is_never_a_division_by_zero():
    runs = {
        "pix2pix_scratch": method_run("pix2pix_scratch",
                                      curve((0, 0.0, 5.0), (10, 1.0, 20.0), (20, 2.0, 21.0))),
        "e2gan_lora": method_run("e2gan_lora", curve((0, 0.0, 15.0), (10, 1.0, 20.0),
                                                     (20, 2.0, 20.95))),
        "trained_init": method_run("trained_init", curve((0, 0.001, 23.0))),
    }
    result = concept_result(HELD_OUT, runs, target=20.9, plateau=True)
    assert result["clock_resolution_seconds"] == 1.0 and result["one_step_seconds"] == 0.1
    trained = result["methods"]["trained_init"]
    assert trained["speedup_vs_pix2pix"] == pytest.approx(200.0)  # 2 s / 0.01 s, not 2000
    assert trained["speedup_vs_pix2pix_one_step_floor"] == pytest.approx(20.0)  # 2 s / 0.1 s
    assert result["ceiling_margin_db"] == pytest.approx(2.1)
    summary = summarise([result], list(runs), HEADLINE)
    assert summary["speedup_ceiling_vs_e2gan"] == pytest.approx(200.0)
    assert summary["one_step_floor"]["speedup_ceiling_vs_e2gan"] == pytest.approx(20.0)
    assert summary["target_at_start"] == {"pix2pix_scratch": 0, "e2gan_lora": 0,
                                          "trained_init": 1}
    assert summary["ceiling_above_target"] == 1
    assert summary["ceiling_margin_db"] == pytest.approx(2.1)


def three_method_result(concept_id: str, kind: str, ours_seconds: float | None,
                        p2p_seconds: float = 12.0) -> dict:
    """pix2pix at ``p2p_seconds``, E2GAN at 4 s and ours at ``ours_seconds`` (None: missed) on
    one held-out concept of ``kind``, each reaching 20 dB at step 9 (or not at all)."""
    ours = curve((0, 0.0, 1.0), (9, 30.0, 15.0)) if ours_seconds is None else curve(
        (0, 0.0, 1.0), (9, ours_seconds, 20.0))
    runs = {
        "pix2pix_scratch": method_run("pix2pix_scratch", curve((0, 0.0, 1.0), (1, 0.1, 2.0),
                                                               (9, p2p_seconds, 20.0))),
        "e2gan_lora": method_run("e2gan_lora", curve((0, 0.0, 1.0), (9, 4.0, 20.0))),
        "denoised_init": method_run("denoised_init", ours),
    }
    return concept_result(concept(concept_id, kind=kind), runs, target=20.0, plateau=True)


def test_every_figure_is_given_per_kind_and_new_concepts_are_the_headline_kind():
    results = [three_method_result("a", "new", 4.0), three_method_result("b", "new", 2.0),
               three_method_result("p", "paraphrase", 0.5)]
    summary = summarise(results, ["pix2pix_scratch", "e2gan_lora", "denoised_init"], HEADLINE)
    assert summary["headline_kind"] == "new"
    assert summary["heldout_kinds"] == {"new": 2, "paraphrase": 1}
    new, paraphrase = summary["by_kind"]["new"], summary["by_kind"]["paraphrase"]
    assert new["heldout_concepts"] == ["a", "b"] and paraphrase["heldout_concepts"] == ["p"]
    assert summary["speedup_vs_e2gan"] == 2.0  # all held-out: median of 1, 2, 8
    assert new["speedup_vs_e2gan"] == 1.5 and paraphrase["speedup_vs_e2gan"] == 8.0
    assert new["speedup_vs_pix2pix"] == 4.5 and paraphrase["speedup_vs_pix2pix"] == 24.0
    assert new["paired_vs_e2gan"]["denoised_init"] == {
        "concepts": 2, "median_ratio": 1.5, "wins": 1, "losses": 0, "ties": 1, "p_value": 1.0}
    assert paraphrase["reached_target"]["denoised_init"] == 1
    assert new["performance_profile"]["area"]["denoised_init"] == 1.0  # both within E2GAN's time
    keys = set(summary) - {"headline", "headline_kind", "heldout_kinds", "seen_concepts",
                           "by_kind"}
    assert set(new) == set(paraphrase) == keys


def test_results_md_puts_the_new_concepts_first_and_the_paraphrases_beside(tmp_path):
    """The report on a hand-made summary (a fast check of results.md: a report that lost a line
    crashed every bench only after its runs)."""
    methods = ["pix2pix_scratch", "e2gan_lora", "denoised_init"]
    results = [three_method_result("a", "new", 4.0), three_method_result("b", "new", 2.0),
               three_method_result("p", "paraphrase", 0.5)]
    payload = {"summary": {"split": "test"} | summarise(results, methods, HEADLINE),
               "config": {"methods": methods, "adapter": "FullDeltaAdapter"},
               "concepts": results}
    write_results_markdown(tmp_path / "results.md", payload)
    text = (tmp_path / "results.md").read_text()
    assert "held-out concepts: 2 new, 1 paraphrase" in text
    assert f"- {HEADLINE} (bench.headline) on 2 new concept(s): speed-up vs pix2pix 4.5" in text
    assert text.index("New concepts") < text.index("Paraphrase") < text.index("Per concept")


def test_the_performance_profile_counts_concepts_within_tau_times_e2gan_and_its_area():
    # The method's time as a multiple of the reference's: 0.5, 1, 3, 40 and a miss.
    profile = performance_profile([2.0, 1.0, 1 / 3, 1 / 40, 0.0], max_tau=4)
    assert profile["share"] == [0.4, 0.4, 0.6, 0.6]  # tau = 1, 2, 3, 4
    assert profile["area"] == pytest.approx((3 + 3 + 1) / (5 * 3))  # integral over [1, 4] / 3
    assert performance_profile([], max_tau=4) == {"share": [], "area": None}
    # Through the summary: E2GAN takes 4 s on each concept; ours 2 s, 8 s, 16 s and a miss.
    results = [three_method_result(name, "new", seconds, p2p_seconds=12.0)
               for name, seconds in (("a", 2.0), ("b", 8.0), ("c", 16.0), ("d", None))]
    profile = summarise(results, ["pix2pix_scratch", "e2gan_lora", "denoised_init"], HEADLINE,
                        max_tau=4)["performance_profile"]
    assert profile["tau"] == [1, 2, 3, 4] and profile["reference"] == "e2gan_lora"
    assert profile["share"] == {"pix2pix_scratch": [0.0, 0.0, 1.0, 1.0],  # 12 s = 3 x 4 s
                                "e2gan_lora": [1.0, 1.0, 1.0, 1.0],
                                "denoised_init": [0.25, 0.5, 0.5, 0.75]}
    assert profile["area"] == pytest.approx({"pix2pix_scratch": 1 / 3, "e2gan_lora": 1.0,
                                             "denoised_init": (3 + 2 + 0) / (4 * 3)})


def test_psnr_at_fixed_seconds_is_the_last_evaluation_shown_by_then():
    runs = {
        "pix2pix_scratch": pix2pix_reaching_21_at_20s(),
        "denoised_init": generated_reaching_the_target_at_2s(),  # 18 dB at 0.5 s, 20.9 at 2 s
    }
    result = concept_result(HELD_OUT, runs, target=20.9, plateau=True, at_seconds=(0.1, 1, 2, 30))
    assert result["methods"]["denoised_init"]["psnr_at_seconds"] == {
        "0.1": None, "1": 18.0, "2": 20.9, "30": 20.9}  # None: not generated yet; kept after
    assert result["methods"]["pix2pix_scratch"]["psnr_at_seconds"]["1"] == 6.0
    summary = summarise([result], list(runs), HEADLINE)
    assert summary["psnr_at_seconds"]["denoised_init"]["2"] == 20.9


def test_paired_comparisons_count_per_concept_wins_and_give_a_sign_test():
    def result(concept_id, ours_seconds, ours_start):
        runs = {
            "pix2pix_scratch": method_run("pix2pix_scratch", curve((0, 0.0, 1.0), (1, 0.1, 5.0),
                                                                   (9, 12.0, 20.0))),
            "e2gan_lora": method_run("e2gan_lora", curve((0, 0.0, 15.0), (9, 4.0, 20.0))),
            "mean_init": method_run("mean_init", curve((0, 0.0, 16.0), (9, 5.0, 20.0))),
            "nearest_init": method_run("nearest_init", curve((0, 0.0, 17.0), (9, 3.0, 20.0))),
            "denoised_init": method_run("denoised_init", curve((0, 0.0, ours_start),
                                                               (9, ours_seconds, 20.0))),
        }
        return concept_result(concept(concept_id), runs, target=20.0, plateau=True)

    # ours beats E2GAN (4 s) on a, b, c and loses on d; beats nearest (3 s) on a and b only.
    results = [result("a", 1.0, 18.0), result("b", 2.0, 18.0), result("c", 3.0, 16.5),
               result("d", 6.0, 15.0)]
    summary = summarise(results, ["pix2pix_scratch", "e2gan_lora", "mean_init", "nearest_init",
                                  "denoised_init"], HEADLINE)
    assert summary["paired_vs_e2gan"]["denoised_init"] == {
        "concepts": 4, "median_ratio": pytest.approx((4 / 3 + 2) / 2), "wins": 3, "losses": 1,
        "ties": 0, "p_value": 0.625}
    assert summary["paired_vs_nearest"]["denoised_init"] == {
        "concepts": 4, "median_ratio": 1.25, "wins": 2, "losses": 1, "ties": 1, "p_value": 1.0}
    assert "pix2pix_scratch" not in summary["paired_vs_e2gan"]
    # Every run reached the target at step 9: in steps (which the machine's load cannot change)
    # ours ties with E2GAN on every concept; its seconds-wins come from the clock alone.
    assert summary["paired_steps_vs_e2gan"]["denoised_init"] == {
        "concepts": 4, "median_ratio": 1.0, "wins": 0, "losses": 0, "ties": 4, "p_value": None}
    assert summary["zero_shot_wins"] == {"above_mean_and_nearest": 2, "concepts": 4}


def test_sign_test_is_the_exact_two_sided_binomial():
    assert sign_test(8, 0) == 2 / 256
    assert sign_test(0, 8) == 2 / 256
    assert sign_test(1, 1) == 1.0
    assert sign_test(12, 4) == pytest.approx(0.0768, abs=1e-4)  # scipy.stats.binomtest(12, 16)
    assert sign_test(0, 0) is None


def test_speedup_vs_e2gan_is_not_zero_when_only_e2gan_misses_the_target():
    runs = {
        "pix2pix_scratch": pix2pix_reaching_21_at_20s(),
        "e2gan_lora": e2gan_missing_the_target(),
        "denoised_init": generated_reaching_the_target_at_2s(),
    }
    summary = summarise([concept_result(HELD_OUT, runs, target=20.9, plateau=True)], list(runs), HEADLINE)
    # e2gan had not reached the target after 4 s, ours did at 2 s: at least a 2x speed-up.
    assert summary["speedup_vs_e2gan"] >= 2.0


def test_e2gan_at_the_target_from_step_zero_is_not_charged_its_whole_budget():
    runs = {  # bench.stop_at_target=false: e2gan keeps training after reaching the target
        "pix2pix_scratch": pix2pix_reaching_21_at_20s(),
        "e2gan_lora": method_run("e2gan_lora", curve((0, 0.0, 21.0), (10, 4.0, 21.5))),
        "denoised_init": generated_reaching_the_target_at_2s(),
    }
    summary = summarise([concept_result(HELD_OUT, runs, target=20.9, plateau=True)], list(runs), HEADLINE)
    assert summary["speedup_vs_e2gan"] < 1.0  # e2gan needed no training; ours needed 2 s


def test_the_ceiling_speedups_use_the_same_per_concept_rules():
    def result(concept_id, p2p_seconds, trained_seconds, e2gan_seconds):
        runs = {
            "pix2pix_scratch": method_run("pix2pix_scratch", curve((0, 0.0, 1.0), (1, 0.1, 2.0),
                                                                   (9, p2p_seconds, 20.0))),
            "e2gan_lora": method_run("e2gan_lora", curve((0, 0.0, 1.0), (9, e2gan_seconds, 20.0))),
            "trained_init": method_run("trained_init", curve((0, 0.0, 19.0),
                                                             (9, trained_seconds, 20.0))),
        }
        return concept_result(concept(concept_id), runs, target=20.0, plateau=True)

    results = [result("a", 12.0, 1.0, 4.0), result("b", 12.0, 3.0, 6.0), result("c", 12.0, 4.0, 4.0)]
    summary = summarise(results, ["pix2pix_scratch", "e2gan_lora", "trained_init"], HEADLINE)
    assert summary["speedup_ceiling_vs_pix2pix"] == 4.0  # median of 12, 4, 3
    assert summary["speedup_ceiling_vs_e2gan"] == 2.0  # median of 4, 2, 1
    assert summary["speedup_vs_pix2pix"] is None  # no denoised_init in this bench
    without = summarise(results, ["pix2pix_scratch", "e2gan_lora"], HEADLINE)
    assert without["speedup_ceiling_vs_pix2pix"] is None is without["speedup_ceiling_vs_e2gan"]


def test_sample_grid_labels_name_methods_and_concepts_in_full(benchmark, tmp_path, monkeypatch):
    drawn = {}

    def capture(path, rows, row_labels, col_labels):
        drawn.update(rows=rows, row_labels=row_labels, col_labels=col_labels)

    monkeypatch.setattr(report, "save_grid", capture)
    concepts = benchmark["ws"].test_concepts[:1]
    ws = benchmark["ws"]
    report.write_sample_grid(ws.pair_store, benchmark["dir"] / "runs", tmp_path / "grid.png",
                             concepts, METHODS)
    assert drawn["row_labels"] == [concepts[0].id] * 2
    assert drawn["col_labels"] == ["source", "target"] + [
        f"{m} {when}" for m in METHODS for when in ("step 0", "end")]
    assert len(drawn["rows"][0]) == len(drawn["col_labels"])


def test_the_seen_concepts_are_the_first_the_generator_trains_on(tmp_path):
    """bench.n_seen=k benchmarks the first k train concepts in pick order, those every
    diffusion.data.n_concepts >= k trains on (the catalogue's first k may not be among them)."""
    ws = Workspace(tiny_config(tmp_path, "concepts.n_train=12", "bench.n_unseen=0",
                               "bench.n_seen=3"))
    seen = [c.id for c in bench_concepts(ws)]
    assert seen == ws.train_pick_order[:3]
    assert seen != [c.id for c in ws.train_concepts[:3]]  # the two orders differ here
