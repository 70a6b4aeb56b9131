"""Every stage end to end, in order, on one config: pairs, dataset, generator, zero-shot
table, benchmark."""

from __future__ import annotations

import json
import time
from pathlib import Path

from weightgen.stages.bench import run_benchmark
from weightgen.stages.dataset import build_weight_dataset
from weightgen.stages.pairs import build_pairs_with_preview
from weightgen.stages.pipeline_report import heldout_method_rows
from weightgen.stages.train_generator import train_weight_generator
from weightgen.stages.workspace import Workspace
from weightgen.stages.zero_shot import zero_shot_report

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
    bench_dir = Path(ws.cfg.paths.bench_dir)
    results = json.loads((bench_dir / "results.json").read_text())
    return {
        "run": ws.cfg.run_name,
        "train_concepts": len(ws.train_concepts),
        "test_concepts": len(ws.test_concepts),
        "seconds": timings,
        "base_val_psnr": summaries["dataset"]["base"]["val_psnr_train_concepts"],
        "heldout_concepts": bench["heldout_concepts"],
        "target_tolerance_db": float(ws.cfg.bench.target_tolerance_db),
        "finetune_steps": int(ws.cfg.bench.finetune_steps),
        "heldout": heldout_method_rows(results),
        "headline": bench["headline"],
        "speedup_vs_pix2pix": bench["speedup_vs_pix2pix"],
        "speedup_vs_e2gan": bench["speedup_vs_e2gan"],
        "final_psnr": bench["final_psnr"],
        "zero_shot_psnr": bench["zero_shot_psnr"],
        "files": {
            "pairs_preview": summaries["pairs"]["preview"],
            "sample_grid": str(bench_dir / "grid.png"),
            "curves": str(bench_dir / "curves.png"),
            "results": str(bench_dir / "results.md"),
            "zero_shot_table": f"{ws.cfg.paths.generator_dir}/zero_shot.md",
        },
    }
