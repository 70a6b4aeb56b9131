"""The benchmark's W&B dashboard: results table, sample images, time-to-target charts, figures.

- ``bench/results``: one row per (concept, method) with its numbers;
- ``bench/samples``: per concept, its first validation crops as rows of source | target | each
  method's output at the end (columns in ``bench.methods`` order);
- ``bench/time_to_target/<concept>``: validation PSNR against training seconds, one line per
  method and the target as a flat line;
- ``bench/figures``: the curves and sample-grid PNGs the bench writes;
- the run summary: every figure of ``results.json``'s summary as ``bench/<key>``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from weightgen.data.pairs import PairStore
from weightgen.utils.io import load_safetensors
from weightgen.utils.wandb_media import (
    log_line_series,
    log_pictures,
    log_strips,
    log_table,
    update_summary,
    wandb_on,
)

COLUMNS = ["concept", "prompt", "split", "method", "zero_shot_psnr", "final_psnr", "final_ssim",
           "seconds_to_target", "steps_to_target", "speedup_vs_pix2pix"]
SHOWN = 2  # validation crops per concept in bench/samples


def _rows(payload: dict) -> list[list]:
    return [[r["concept"], r["prompt"], r["split"], method] + [record[k] for k in COLUMNS[4:]]
            for r in payload["concepts"] for method, record in r["methods"].items()]


def _samples(pair_store: PairStore, payload: dict, samples_file: Callable[[str, str], Path]) -> dict:
    strips = {}
    for result in payload["concepts"]:
        pairs = pair_store.load(result["concept"])
        ends = [load_safetensors(samples_file(result["concept"], method))["end"][:SHOWN]
                for method in result["methods"]]
        caption = f"{result['concept']}: " + " | ".join(["source", "target", *result["methods"]])
        strips[caption] = [pairs.val_source[:SHOWN], pairs.val_target[:SHOWN], *ends]
    return strips


def _time_to_target(result: dict) -> dict[str, tuple[list, list]]:
    lines = {method: ([p["seconds"] for p in record["curve"]], [p["psnr"] for p in record["curve"]])
             for method, record in result["methods"].items()}
    end = max(xs[-1] for xs, _ in lines.values())
    return lines | {"target": ([0.0, end], [result["target_psnr"]] * 2)}


def log_bench_dashboard(loggers: list, pair_store: PairStore, bench_dir: Path, payload: dict,
                        samples_file: Callable[[str, str], Path]) -> None:
    """Everything above, to the bench's W&B run (``bench_dir``: where the bench wrote its
    figures); nothing when W&B is off."""
    if not wandb_on(loggers):
        return
    log_table(loggers, "bench/results", COLUMNS, _rows(payload))
    log_strips(loggers, "bench/samples", _samples(pair_store, payload, samples_file))
    for result in payload["concepts"]:
        log_line_series(loggers, f"bench/time_to_target/{result['concept']}",
                        _time_to_target(result), title=f"{result['concept']}: val PSNR (dB)",
                        xname="training seconds")
    log_pictures(loggers, "bench/figures", [bench_dir / name
                                            for name in ("curves.png", "profile.png", "grid.png")])
    update_summary(loggers, payload["summary"], prefix="bench/")
