"""The pipeline's closing summary: figures a small run cannot give are said in words (issue 15)."""

from __future__ import annotations

from weightgen.bench.summary import concept_result, summarise
from weightgen.finetune.finetuner import MethodRun
from weightgen.stages.pipeline_report import format_pipeline_report, heldout_method_rows

METHODS = ["pix2pix_scratch", "e2gan_lora", "denoised_init", "nearest_init"]
HEADLINE = "denoised_init"


def run(method: str, *points: tuple[int, float, float]) -> MethodRun:
    curve = [{"step": s, "seconds": t, "psnr": p, "ssim": 0.5} for s, t, p in points]
    return MethodRun(method, "c", curve, init_seconds=curve[0]["seconds"])


def results_payload() -> dict:
    """One held-out concept, target 20.9 dB: pix2pix at 20 s, the generated init at 5 s, E2GAN
    never, and the nearest init already above the target at step 0."""
    concept = type("Concept", (), {"id": "sepia.paraphrase", "prompt": "p", "split": "test"})()
    runs = {
        "pix2pix_scratch": run("pix2pix_scratch", (0, 0.0, 5.0), (10, 1.0, 6.0),
                               (100, 10.0, 20.0), (200, 20.0, 21.0)),
        "e2gan_lora": run("e2gan_lora", (0, 0.0, 15.0), (10, 4.0, 20.5)),
        "denoised_init": run("denoised_init", (0, 0.5, 18.0), (10, 5.0, 20.9)),
        "nearest_init": run("nearest_init", (0, 0.0, 21.5)),
    }
    results = [concept_result(concept, runs, target=20.9, plateau=True)]
    return {"summary": summarise(results, METHODS, HEADLINE), "config": {"methods": METHODS},
            "concepts": results}


def pipeline_summary(payload: dict) -> dict:
    return {
        "run": "quickstart", "train_concepts": 12, "test_concepts": 1,
        "seconds": {"pairs": 3.0, "dataset": 200.0, "bench": 250.0},
        "heldout_concepts": payload["summary"]["heldout_concepts"],
        "target_tolerance_db": 0.1, "finetune_steps": 80,
        "heldout": heldout_method_rows(payload),
        "headline": payload["summary"]["headline"],
        "speedup_vs_e2gan": payload["summary"]["speedup_vs_e2gan"],
        "peak_rss_mib": 1536.0,
        "files": {"pairs_preview": "run/grids/pairs.png", "sample_grid": "run/bench/grid.png",
                  "curves": "run/bench/curves.png", "results": "run/bench/results.md",
                  "zero_shot_table": "run/generator/zero_shot.md"},
    }


def test_method_rows_keep_misses_and_step_zero_hits_out_of_the_medians():
    rows = {r["method"]: r for r in heldout_method_rows(results_payload())}
    assert rows["denoised_init"]["speedup_vs_pix2pix"] == 4.0
    assert rows["denoised_init"]["seconds_to_target"] == 5.0
    assert rows["e2gan_lora"]["reached"] == 0 and rows["e2gan_lora"]["speedup_vs_pix2pix"] is None
    nearest = rows["nearest_init"]
    assert nearest["reached"] == 1 and nearest["at_target_before_training"] == 1
    assert nearest["speedup_vs_pix2pix"] is None and nearest["seconds_to_target"] is None
    assert nearest["zero_shot_psnr"] == 21.5


def test_report_says_in_words_what_a_small_run_cannot_measure():
    text = format_pipeline_report(pipeline_summary(results_payload()), "run/reports/x.json")
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert "4.00x" in lines["denoised_init"] and "5.0 s (1/1)" in lines["denoised_init"]
    assert "never reached" in lines["e2gan_lora"] and "0.00" not in lines["e2gan_lora"]
    assert "at target at step 0" in lines["nearest_init"]
    assert "none measured" in lines["nearest_init"]
    assert "e2gan_lora never reached pix2pix's final PSNR within 80 steps" in text
    assert "nearest_init was at the target before any training on 1 concept(s)" in text
    assert "4.00x sooner than pix2pix" in text and "12 train + 1 held-out" in text
    for path in ("run/grids/pairs.png", "run/bench/grid.png", "run/bench/curves.png",
                 "run/reports/x.json"):
        assert path in text
    assert "{" not in text  # a human summary, not a JSON dump
