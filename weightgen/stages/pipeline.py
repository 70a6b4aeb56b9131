"""Every stage end to end, in order, on one config: pairs, dataset, generator, zero-shot
table, benchmark."""

from __future__ import annotations

import json
import time

from weightgen.derived_reports import bench_reports_dir
from weightgen.stages.bench import run_benchmark
from weightgen.stages.dataset import build_weight_dataset
from weightgen.stages.pairs import build_pairs_with_preview
from weightgen.stages.pipeline_report import heldout_method_rows
from weightgen.stages.train_generator import train_weight_generator
from weightgen.stages.workspace import Workspace
from weightgen.stages.zero_shot import zero_shot_report

# The bench figures the pipeline's summary repeats for each kind of held-out concept.
PER_KIND = ("heldout_concepts", "speedup_vs_pix2pix", "speedup_vs_e2gan", "final_psnr",
            "zero_shot_psnr")

STAGES = (
    ("pairs", build_pairs_with_preview),
    ("dataset", build_weight_dataset),
    ("generator", train_weight_generator),
    ("zero_shot", zero_shot_report),
    ("bench", run_benchmark),
)


def run_pipeline(ws: Workspace) -> dict:
    """Run each stage (each resumes if its artifacts exist) and time it."""
    timings, summaries = {}, {}
    for name, stage in STAGES:
        start = time.perf_counter()
        summaries[name] = stage(ws)
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"[weightgen] stage {name} done in {timings[name]} s", flush=True)
    bench = summaries["bench"]
    reports = bench_reports_dir(ws.cfg.paths.bench_dir, ws.cfg.bench.split)
    results = json.loads((reports / "results.json").read_text())
    return {
        "run": ws.cfg.run_name,
        "train_concepts": len(ws.train_concepts),
        "val_concepts": len(ws.val_concepts),
        "test_concepts": len(ws.test_concepts),
        "bench_split": ws.cfg.bench.split,
        "seconds": timings,
        "base_val_psnr": summaries["dataset"]["base"]["val_psnr_train_concepts"],
        "heldout_concepts": bench["heldout_concepts"],
        "heldout_kinds": bench["heldout_kinds"],
        "target_tolerance_db": float(ws.cfg.bench.target_tolerance_db),
        "finetune_steps": int(ws.cfg.bench.finetune_steps),
        "heldout": {kind: heldout_method_rows(results, kind) for kind in bench["heldout_kinds"]},
        "headline": bench["headline"],
        "speedup_vs_pix2pix": bench["speedup_vs_pix2pix"],
        "speedup_vs_e2gan": bench["speedup_vs_e2gan"],
        "final_psnr": bench["final_psnr"],
        "zero_shot_psnr": bench["zero_shot_psnr"],
        # The same figures per kind of held-out concept: new (the headline) and paraphrase.
        "by_kind": {kind: {key: figures[key] for key in PER_KIND}
                    for kind, figures in bench["by_kind"].items()},
        "files": {
            "pairs_preview": summaries["pairs"]["preview"],
            "sample_grid": str(reports / "grid.png"),
            "curves": str(reports / "curves.png"),
            "profile": str(reports / "profile.png"),
            "results": str(reports / "results.md"),
            "zero_shot_table": f"{ws.cfg.paths.generator_dir}/zero_shot.md",
        },
    }
