"""The pipeline's closing summary: figures a small run cannot give are said in words (issue 15)."""

from __future__ import annotations

from weightgen.bench.summary import concept_result, summarise
from weightgen.concepts.spec import Concept
from weightgen.finetune.finetuner import MethodRun
from weightgen.stages.pipeline import PER_KIND
from weightgen.stages.pipeline_report import format_pipeline_report, heldout_method_rows

METHODS = ["pix2pix_scratch", "e2gan_lora", "denoised_init", "nearest_init"]
HEADLINE = "denoised_init"


def run(method: str, *points: tuple[int, float, float]) -> MethodRun:
    curve = [{"step": s, "seconds": t, "psnr": p, "ssim": 0.5} for s, t, p in points]
    return MethodRun(method, "c", curve, init_seconds=curve[0]["seconds"])


def pix2pix_at_20s() -> MethodRun:
    return run("pix2pix_scratch", (0, 0.0, 5.0), (10, 1.0, 6.0), (100, 10.0, 20.0),
               (200, 20.0, 21.0))


def results_payload() -> dict:
    """Two held-out concepts, target 20.9 dB, pix2pix at 20 s on both. The new one: the generated
    init at 5 s, E2GAN never, the nearest init above the target at step 0. The paraphrase: the
    generated init at 1 s, E2GAN at 4 s, the nearest init at 2 s."""
    new = Concept("blur+sepia", "p", instruction="an edit", split="test", holdout="new")
    paraphrase = Concept("sepia.paraphrase", "q", instruction="an edit", split="test",
                         holdout="paraphrase")
    new_runs = {
        "pix2pix_scratch": pix2pix_at_20s(),
        "e2gan_lora": run("e2gan_lora", (0, 0.0, 15.0), (10, 4.0, 20.5)),
        "denoised_init": run("denoised_init", (0, 0.5, 18.0), (10, 5.0, 20.9)),
        "nearest_init": run("nearest_init", (0, 0.0, 21.5)),
    }
    paraphrase_runs = {
        "pix2pix_scratch": pix2pix_at_20s(),
        "e2gan_lora": run("e2gan_lora", (0, 0.0, 15.0), (10, 4.0, 21.0)),
        "denoised_init": run("denoised_init", (0, 0.5, 19.0), (1, 1.0, 21.0)),
        "nearest_init": run("nearest_init", (0, 0.0, 18.0), (10, 2.0, 21.0)),
    }
    results = [concept_result(new, new_runs, target=20.9, plateau=True),
               concept_result(paraphrase, paraphrase_runs, target=20.9, plateau=True)]
    return {"summary": summarise(results, METHODS, HEADLINE), "config": {"methods": METHODS},
            "concepts": results}


def pipeline_summary(payload: dict) -> dict:
    """What run_pipeline returns, from a bench payload."""
    bench = payload["summary"]
    return {
        "run": "quickstart", "train_concepts": 12, "val_concepts": 0, "test_concepts": 2,
        "bench_split": "test",
        "seconds": {"pairs": 3.0, "dataset": 200.0, "bench": 250.0},
        "heldout_concepts": bench["heldout_concepts"],
        "heldout_kinds": bench["heldout_kinds"],
        "target_tolerance_db": 0.1, "finetune_steps": 80,
        "heldout": {kind: heldout_method_rows(payload, kind) for kind in bench["heldout_kinds"]},
        "headline": bench["headline"],
        "speedup_vs_e2gan": bench["speedup_vs_e2gan"],
        "by_kind": {kind: {key: figures[key] for key in PER_KIND}
                    for kind, figures in bench["by_kind"].items()},
        "peak_rss_mib": 1536.0,
        "files": {"pairs_preview": "run/grids/pairs.png", "sample_grid": "run/bench/grid.png",
                  "curves": "run/bench/curves.png", "profile": "run/bench/profile.png",
                  "results": "run/bench/results.md",
                  "zero_shot_table": "run/generator/zero_shot.md"},
    }


def test_method_rows_are_the_bench_summarys_figures():
    """The console rows give the summary's medians (results.md's), not figures of their own: a
    start at the target costs its generation time, with the one-step floor beside it."""
    payload = results_payload()
    rows = {r["method"]: r for r in heldout_method_rows(payload, "new")}
    assert rows["denoised_init"]["speedup_vs_pix2pix"] == 4.0
    assert rows["denoised_init"]["seconds_to_target"] == 5.0
    assert rows["e2gan_lora"]["reached"] == 0 and rows["e2gan_lora"]["speedup_vs_pix2pix"] is None
    nearest = rows["nearest_init"]
    assert nearest["reached"] == 1 and nearest["at_target_before_training"] == 1
    assert nearest["seconds_to_target"] == 0.0 and nearest["zero_shot_psnr"] == 21.5
    assert nearest["speedup_vs_pix2pix"] == (
        payload["summary"]["by_kind"]["new"]["speedup_by_method"]["nearest_init"]) > 200.0
    assert nearest["speedup_vs_pix2pix_one_step_floor"] == 200.0  # 20 s / 0.1 s per step
    paraphrase = {r["method"]: r for r in heldout_method_rows(payload, "paraphrase")}
    assert paraphrase["denoised_init"]["concepts"] == 1 and paraphrase["e2gan_lora"]["reached"] == 1


def test_a_missed_concept_counts_as_zero_in_the_console_as_in_the_summary():
    """Two new concepts, E2GAN at 4 s on one (5x) and never on the other: the console says the
    summary's median 2.5x over both (it said 5x over the one it reached)."""
    concepts = [Concept(f"blur+tint_{c}", "p", instruction="e", split="test", holdout="new")
                for c in ("red", "blue")]
    results = [concept_result(concept, {
        "pix2pix_scratch": pix2pix_at_20s(),
        "e2gan_lora": run("e2gan_lora", (0, 0.0, 15.0), (10, 4.0, 21.0 if hit else 20.0)),
        "denoised_init": run("denoised_init", (0, 0.5, 18.0), (10, 5.0, 20.9)),
        "nearest_init": run("nearest_init", (0, 0.0, 18.0), (10, 2.0, 21.0)),
    }, target=20.9, plateau=True) for concept, hit in zip(concepts, (True, False), strict=True)]
    payload = {"summary": summarise(results, METHODS, HEADLINE), "config": {"methods": METHODS},
               "concepts": results}
    e2gan = next(r for r in heldout_method_rows(payload, "new") if r["method"] == "e2gan_lora")
    assert e2gan["reached"] == 1 and e2gan["speedup_vs_pix2pix"] == 2.5
    assert payload["summary"]["by_kind"]["new"]["speedup_by_method"]["e2gan_lora"] == 2.5


def table_lines(text: str, title: str) -> dict[str, str]:
    """The rows of one kind's table in the console summary, by method."""
    block = text.split(title, 1)[1].split("\n\n", 1)[0]
    return {line.split()[0]: line for line in block.splitlines() if line.startswith("  ")}


def test_report_says_in_words_what_a_small_run_cannot_measure():
    text = format_pipeline_report(pipeline_summary(results_payload()), "run/reports/x.json")
    lines = table_lines(text, "New concepts")
    assert "4.00x" in lines["denoised_init"] and "5.0 s (1/1)" in lines["denoised_init"]
    assert "never reached" in lines["e2gan_lora"] and "0.00" not in lines["e2gan_lora"]
    assert "0.0 s (1/1)" in lines["nearest_init"]
    assert "(200.00x with a one-step floor)" in lines["nearest_init"]
    assert "e2gan_lora never reached pix2pix's final PSNR within 80 steps on any new concept" in text
    assert "nearest_init was at the target before any training on 1 new concept(s)" in text
    assert "12 train + 2 held-out test concepts" in text
    for path in ("run/grids/pairs.png", "run/bench/grid.png", "run/bench/curves.png",
                 "run/bench/profile.png", "run/reports/x.json"):
        assert path in text
    assert "{" not in text  # a human summary, not a JSON dump


def test_the_summary_headlines_the_new_concepts_and_reports_paraphrases_beside():
    """Issue 23: the quickstart says how many held-out concepts of which kind it has; the new
    ones come first, the paraphrases (the wording test) after."""
    text = format_pipeline_report(pipeline_summary(results_payload()), "run/reports/x.json")
    assert "Benchmarked on the test split: 1 new and 1 paraphrase held-out concept(s)" in text
    new_at, paraphrase_at = text.index("New concepts ("), text.index("Paraphrases (")
    assert new_at < paraphrase_at
    assert "New concepts (a recipe no training concept has: the headline): blur+sepia" in text
    assert "the wording test): sepia.paraphrase" in text
    assert "20.00x" in table_lines(text, "Paraphrases")["denoised_init"]  # 20 s / 1 s
    headline = next(line for line in text.splitlines() if line.startswith("The headline method"))
    assert headline.index("on the 1 new concept 4.00x sooner") < headline.index(
        "on the 1 paraphrase concept 20.00x sooner than pix2pix, 4.00x vs the E2GAN-style "
        "fine-tune")


def test_the_summary_names_the_headline_method_and_calls_two_concepts_a_demonstration():
    """Issue 25: the quickstart's closing sentence names bench.headline with its label, says how
    many held-out concepts of which kind it has and that so few are a demonstration; a bench
    with enough new concepts for a sign test to reach p < 0.05 (6) is not called one."""
    summary = pipeline_summary(results_payload())
    lines = format_pipeline_report(summary, "run/reports/x.json").splitlines()
    headline = next(line for line in lines if line.startswith("The headline method"))
    assert headline.startswith("The headline method, denoised_init (generated: text), reached")
    assert "on the 1 new concept" in headline and "on the 1 paraphrase concept" in headline
    note = lines[lines.index(headline) + 1]
    assert note.startswith("With 2 held-out concepts this run is a demonstration, not "
                           "evidence: over the 1 new concept no sign test can reach p < 0.05.")
    assert "make bench" in note
    for new_concepts, demonstration in ((5, True), (6, False)):
        summary["heldout_kinds"] = {"new": new_concepts, "paraphrase": 1}
        text = format_pipeline_report(summary, "run/reports/x.json")
        assert ("a demonstration, not evidence" in text) is demonstration, new_concepts
