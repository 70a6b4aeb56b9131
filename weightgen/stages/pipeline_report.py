"""What `weightgen-pipeline` (`make quickstart`, `make bench`) leaves a person: a console summary
readable in ten seconds, and the same figures as JSON in a file.

Per kind of held-out concept (new first, the headline; paraphrases beside, the wording test),
per method: PSNR at step 0 (zero-shot), final PSNR, seconds to the target and the speed-up over
pix2pix. They are the bench summary's own figures (``summary.by_kind.<kind>``, the medians
``results.md`` gives), so the console and the tables never disagree: a concept a method missed
counts as speed-up 0, and a start already at the target costs its generation or selection time,
with the conservative one-step-floor figure beside. A figure that a small run cannot give is said
in words: a method that never reached the target has no time and no speed-up (not "0").
"""

from __future__ import annotations

from pathlib import Path

from weightgen.bench.methods import METHODS, REFERENCE
from weightgen.bench.report import KIND_TITLES
from weightgen.bench.stats import sign_test
from weightgen.bench.summary import HEADLINE_KIND
from weightgen.utils.io import atomic_write_json


def heldout_method_rows(results: dict, kind: str) -> list[dict]:
    """One row per method over the held-out concepts of ``kind`` of a bench ``results.json``
    payload: the figures of its ``summary.by_kind.<kind>``."""
    figures = results["summary"]["by_kind"][kind]
    floor = figures["one_step_floor"]["speedup_by_method"]
    unseen = [r for r in results["concepts"] if not r["seen"] and r["kind"] == kind]
    rows = []
    for method in results["config"]["methods"]:
        reached = figures["reached_target"][method]
        rows.append({
            "method": method,
            "concepts": sum(method in r["methods"] for r in unseen),
            "zero_shot_psnr": figures["zero_shot_psnr"][method],
            "final_psnr": figures["final_psnr"][method],
            "reached": reached,
            "at_target_before_training": figures["target_at_start"][method],
            "seconds_to_target": figures["seconds_to_target"][method] if reached else None,
            "speedup_vs_pix2pix": figures["speedup_by_method"][method] if reached else None,
            "speedup_vs_pix2pix_one_step_floor": floor[method] if reached else None,
        })
    return rows


def _seconds_words(row: dict) -> str:
    if row["reached"] == 0:
        return "never reached"
    return f"{row['seconds_to_target']:.1f} s ({row['reached']}/{row['concepts']})"


def _speedup_words(row: dict) -> str:
    if row["method"] == REFERENCE:
        return "1.00x (reference)"
    if row["speedup_vs_pix2pix"] is None:
        return "none measured"
    words = f"{row['speedup_vs_pix2pix']:.2f}x"
    if row["at_target_before_training"]:
        words += f" ({row['speedup_vs_pix2pix_one_step_floor']:.2f}x with a one-step floor)"
    return words


def _notes(rows: list[dict], finetune_steps: int, kind: str) -> list[str]:
    notes = []
    for row in rows:
        if row["reached"] == 0:
            notes.append(f"{row['method']} never reached pix2pix's final PSNR within "
                         f"{finetune_steps} steps on any {kind} concept: no time, no speed-up.")
        elif row["reached"] < row["concepts"]:
            notes.append(f"{row['method']} reached the target on {row['reached']} of "
                         f"{row['concepts']} {kind} concepts; a miss counts as speed-up 0 and its "
                         "time is the median over the concepts it reached.")
        if row["at_target_before_training"]:
            notes.append(f"{row['method']} was at the target before any training on "
                         f"{row['at_target_before_training']} {kind} concept(s): there its time is "
                         "its generation or selection time; the one-step-floor figure counts one "
                         "training step instead.")
    return notes


def _concepts(count: int, kind: str) -> str:
    return f"the {count} {kind} concept" + ("s" if count != 1 else "")


def _headline(summary: dict) -> str:
    """The line about the headline method (``bench.headline``): new concepts first, each kind
    with its number of held-out concepts."""
    name = summary["headline"]
    parts = []
    for kind, rows in summary["heldout"].items():
        ours = next((r for r in rows if r["method"] == name), None)
        if ours is None:
            return f"The headline method {name} was not benchmarked (bench.methods)."
        concepts = _concepts(summary["heldout_kinds"][kind], kind)
        if ours["speedup_vs_pix2pix"] is None:
            parts.append(f"on {concepts} no measurable speed-up at this scale (see the notes)")
            continue
        part = f"on {concepts} {ours['speedup_vs_pix2pix']:.2f}x sooner than pix2pix"
        e2gan = summary["by_kind"][kind]["speedup_vs_e2gan"]
        if e2gan:
            part += f", {e2gan:.2f}x vs the E2GAN-style fine-tune"
        parts.append(part)
    return (f"The headline method, {METHODS[name].title}, reached pix2pix's final PSNR "
            + "; ".join(parts) + " (medians per concept; where E2GAN missed the target, its "
            "whole budget counts).")


# A paired comparison is evidence once a sign test over the concepts can reach this p-value.
EVIDENCE_P = 0.05


def _demonstration_note(summary: dict) -> str | None:
    """Said when the headline kind has too few concepts for any sign test to reach
    ``EVIDENCE_P`` (fewer than 6): the figures show the method working, they do not measure it."""
    count = summary["heldout_kinds"].get(HEADLINE_KIND, 0)
    if count and sign_test(count, 0) < EVIDENCE_P:
        return None
    total = sum(summary["heldout_kinds"].values())
    return (f"With {total} held-out concept{'s' if total != 1 else ''} this run is a "
            f"demonstration, not evidence: over {_concepts(count, HEADLINE_KIND)} no sign test "
            f"can reach p < {EVIDENCE_P}. The benchmark measures the method (make bench; "
            "docs/RESULTS.md).")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def format_pipeline_report(summary: dict, json_path: str) -> str:
    """The console summary of a pipeline run (``summary`` as run_pipeline returns it)."""
    timings = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in summary["seconds"].items())
    total = sum(summary["seconds"].values())
    kinds = " and ".join(f"{count} {kind}" for kind, count in summary["heldout_kinds"].items())
    validation = f" + {summary['val_concepts']} validation" if summary["val_concepts"] else ""
    lines = [
        f"weightgen {summary['run']}: {summary['train_concepts']} train{validation} + "
        f"{summary['test_concepts']} held-out test concepts, every stage in {_duration(total)}"
        + (f", peak RSS {summary['peak_rss_mib'] / 1024:.2f} GiB" if "peak_rss_mib" in summary
           else ""),
        f"({timings})",
        f"Benchmarked on the {summary['bench_split']} split: {kinds} held-out concept(s); "
        f"medians per method, target = pix2pix's final PSNR - {summary['target_tolerance_db']} dB.",
    ]
    notes = []
    for kind, rows in summary["heldout"].items():
        concepts = summary["by_kind"][kind]["heldout_concepts"]
        lines += [
            "",
            f"{KIND_TITLES.get(kind, kind)}: {', '.join(concepts)}",
            f"  {'method':<22}{'PSNR step 0':>12}{'final PSNR':>12}  {'time to target':<22}"
            "speed-up vs pix2pix",
        ]
        for row in rows:
            lines.append(
                f"  {row['method']:<22}{row['zero_shot_psnr']:>9.2f} dB"
                f"{row['final_psnr']:>9.2f} dB  {_seconds_words(row):<22}{_speedup_words(row)}"
            )
        notes += _notes(rows, summary["finetune_steps"], kind)
    lines += ["", _headline(summary)]
    demonstration = _demonstration_note(summary)
    if demonstration:
        lines.append(demonstration)
    if notes:
        lines += ["Notes:"] + [f"  - {note}" for note in notes]
    files = summary["files"]
    lines += [
        "",
        "Pictures to open:",
        f"  pairs preview   {files['pairs_preview']}",
        f"  sample grid     {files['sample_grid']}",
        f"  curves          {files['curves']}",
        f"  profile         {files['profile']}",
        f"Tables: {files['results']}, {files['zero_shot_table']}",
        f"Summary JSON: {json_path}",
    ]
    return "\n".join(lines)


def write_pipeline_report(run_dir: Path, summary: dict) -> None:
    """The summary as JSON in ``<run>/reports/pipeline.json``; the short version on the console."""
    path = Path(run_dir) / "reports" / "pipeline.json"
    atomic_write_json(path, summary)
    print(format_pipeline_report(summary, str(path)), flush=True)
