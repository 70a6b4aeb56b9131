"""How finished the store's adapters are: each concept's validation PSNR along its checkpoints.

A generator can at best reproduce the adapters it learns from, so a store of unfinished adapters
caps every generated init below what a fine-tune reaches (issue 12). The builder trains a fixed
step count (``builder.adapter_steps``, chosen from measured curves: experiments/bench/README.md);
this report says, per concept, whether that count reached a plateau: the gain over the last third
of the run (from the checkpoint nearest two thirds of the steps to the last) below
``plateau_db``. The learning rate decays over the second half of the run, so a plateau here
means "no longer gaining under this schedule", the same rule the benchmark applies to pix2pix.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence


def last_third_gain(checkpoints: Mapping[int, float]) -> float:
    """PSNR gained from the checkpoint nearest 2/3 of the run to the last one (0 with one)."""
    steps = sorted(checkpoints)
    reference = min(steps, key=lambda s: abs(s - 2 * steps[-1] / 3))
    return checkpoints[steps[-1]] - checkpoints[reference]


def convergence_rows(summaries: Sequence[dict], plateau_db: float) -> list[dict]:
    """One row per adapter summary (``weightgen.stages.dataset_adapters.train_adapter``'s)."""
    rows = []
    for summary in summaries:
        psnr = {int(step): q["psnr"] for step, q in summary["checkpoints"].items()}
        final = psnr[max(psnr)]
        gain = last_third_gain(psnr)
        rows.append({"concept": summary["concept"], "split": summary["split"],
                     "base_psnr": summary["base_psnr"], "final_psnr": final,
                     "gain_over_base_db": final - summary["base_psnr"],
                     "last_third_gain_db": gain, "plateau": gain < plateau_db,
                     "seconds": summary["seconds"], "curve": psnr})
    return rows


def convergence_summary(rows: Sequence[dict], plateau_db: float) -> dict:
    """Medians and the count of adapters still gaining at the end of their run."""
    def median(key: str) -> float | None:
        values = [r[key] for r in rows]
        return statistics.median(values) if values else None

    return {"adapters": len(rows), "plateau_db": plateau_db,
            "plateaued": sum(r["plateau"] for r in rows),
            "still_gaining": sorted(r["concept"] for r in rows if not r["plateau"]),
            "median_final_psnr": median("final_psnr"),
            "median_gain_over_base_db": median("gain_over_base_db"),
            "median_last_third_gain_db": median("last_third_gain_db"),
            "median_seconds": median("seconds"),
            "total_adapter_seconds": sum(r["seconds"] for r in rows)}


def convergence_markdown(rows: Sequence[dict], summary: dict) -> str:
    """The store's convergence table for people (one line per adapter, then the medians)."""
    steps = sorted(rows[0]["curve"]) if rows else []
    lines = ["# Adapter convergence", "",
             f"{summary['plateaued']} of {summary['adapters']} adapters gained less than "
             f"{summary['plateau_db']} dB over the last third of their run (plateau). Medians: "
             f"final {summary['median_final_psnr']:.2f} dB, "
             f"{summary['median_gain_over_base_db']:.2f} dB over the base, "
             f"{summary['median_last_third_gain_db']:.2f} dB in the last third, "
             f"{summary['median_seconds']:.0f} s per adapter." if rows else "No adapters.", "",
             "| concept | split | base | " + " | ".join(f"step {s}" for s in steps)
             + " | last-third gain | plateau |",
             "|---|---|---|" + "---|" * len(steps) + "---|---|"]
    for r in rows:
        cells = " | ".join(f"{r['curve'][s]:.2f}" for s in steps)
        lines.append(f"| {r['concept']} | {r['split']} | {r['base_psnr']:.2f} | {cells} | "
                     f"{r['last_third_gain_db']:+.2f} | {'yes' if r['plateau'] else 'no'} |")
    return "\n".join(lines) + "\n"
