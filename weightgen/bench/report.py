"""What the benchmark leaves for people: a results table, quality-vs-time curves, the performance
profile, a sample grid. The new held-out concepts come first (the headline); the paraphrases,
the wording test, beside them."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from weightgen.bench.methods import (  # noqa: E402
    BASELINE,
    CEILING,
    EXAMPLE_CONTROLS,
    MEAN,
    METHODS,
    NEAREST,
    REFERENCE,
)
from weightgen.bench.stats import median_or_none  # noqa: E402
from weightgen.bench.summary import HEADLINE_KIND  # noqa: E402
from weightgen.data.datamodule import images_to_tensor  # noqa: E402
from weightgen.data.pairs import PairStore  # noqa: E402
from weightgen.finetune.pairs_choice import CHOSEN  # noqa: E402
from weightgen.utils.grid import save_grid, to_uint8  # noqa: E402
from weightgen.utils.io import (  # noqa: E402
    atomic_save_figure,
    atomic_write_text,
    load_safetensors,
)


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}"


CEILING_LABEL = "the store's own adapter: the best any generator can do with this data"
# What each kind of held-out concept is, as tables title it.
KIND_TITLES = {"new": "New concepts (a recipe no training concept has: the headline)",
               "paraphrase": "Paraphrases (a training concept's edit in new words: the wording "
                             "test)"}
SPLIT_WORDS = {"test": "test (reported, never tuned on)",
               "val": "val (the validation concepts, where recipes and configurations are chosen)"}


def _label(method: str) -> str:
    """A method as tables and plots show it: its name and what it is."""
    return METHODS[method].title


def _table(rows: list[dict], methods: list[str], title: str) -> list[str]:
    lines = [f"### {title} ({len(rows)} concepts, medians)", "",
             "| method | PSNR step 0 | final PSNR | final SSIM | s to target | reached | speed-up vs "
             "pix2pix | with a one-step floor |", "|---|---|---|---|---|---|---|---|"]
    for method in methods:
        cells = [r["methods"][method] for r in rows if method in r["methods"]]
        if not cells:
            continue
        reached = sum(c["seconds_to_target"] is not None for c in cells)
        lines.append(
            f"| {_label(method)} | {_fmt(median_or_none([c['zero_shot_psnr'] for c in cells]))} "
            f"| {_fmt(median_or_none([c['final_psnr'] for c in cells]))} "
            f"| {_fmt(median_or_none([c['final_ssim'] for c in cells]), 3)} "
            f"| {_fmt(median_or_none([c['seconds_to_target'] for c in cells]), 1)} "
            f"| {reached}/{len(cells)} "
            f"| {_fmt(median_or_none([c['speedup_vs_pix2pix'] for c in cells]))} "
            f"| {_fmt(median_or_none([c['speedup_vs_pix2pix_one_step_floor'] for c in cells]))} |"
        )
    return lines + [""]


def _image_metrics_lines(metrics: dict, methods: list[str]) -> list[str]:
    """The FID/KID and CLIP score table, or the one line that says why there is none."""
    by_method = metrics.get("by_method")
    skipped = metrics.get("skipped") or {}
    why = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
    if not by_method:
        return [f"Image-set metrics (FID/KID, CLIP score): not computed ({why or 'metrics off'}).",
                ""]
    names = list(by_method[methods[0]])
    lines = [f"### Image-set metrics ({metrics['images']} validation images of the held-out "
             f"concepts, pooled)", "",
             f"Set distance to the targets on {metrics['features']} features (FID needs more "
             f"images than feature dimensions; smaller sets get KID); CLIP score against the prompt "
             f"with {metrics['clip_model']}." + (f" Skipped: {why}." if why else ""), "",
             "| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for method in [*methods, "targets"]:
        row = by_method.get(method, metrics["targets"] if method == "targets" else {})
        name = method if method == "targets" else _label(method)
        lines.append(f"| {name} | " + " | ".join(_fmt(row.get(n), 4) for n in names) + " |")
    return lines + [""]


def _paired_lines(summary: dict, methods: list[str], title: str) -> list[str]:
    """Concept-by-concept comparisons: how often each method beats E2GAN / the nearest init."""
    versus = {f"vs {BASELINE}": summary.get("paired_vs_e2gan") or {},
              f"vs {NEAREST}": summary.get("paired_vs_nearest") or {},
              f"vs {BASELINE} in steps": summary.get("paired_steps_vs_e2gan") or {}}
    versus |= {f"vs {control}": table for control in EXAMPLE_CONTROLS
               if (table := (summary.get("paired_vs_controls") or {}).get(control))}
    if not any(versus.values()):
        return []
    lines = [f"### {title}: per-concept comparisons (time-to-target ratio: median; wins / losses "
             "/ ties, sign test p)", "",
             "Steps do not depend on the machine's load; fine-tunes of the same adapter cost the "
             "same per step.", "",
             "| method | " + " | ".join(versus) + " |", "|---|" + "---|" * len(versus)]
    for method in methods:
        cells = []
        for table in versus.values():
            c = table.get(method)
            cells.append("—" if c is None else
                         f"{_fmt(c.get('median_ratio'))}x; {c['wins']} / {c['losses']} / "
                         f"{c['ties']}, p={_fmt(c['p_value'], 3)}")
        if any(cell != "—" for cell in cells):
            lines.append(f"| {_label(method)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _psnr_at_lines(psnr_at: dict, methods: list[str], title: str) -> list[str]:
    """Median PSNR each method had shown at fixed training seconds."""
    times = next((list(v) for v in psnr_at.values() if v), [])
    if not times:
        return []
    lines = [f"### {title}: PSNR at fixed training seconds (medians; less quantised than "
             "time-to-target)", "", "| method | " + " | ".join(f"{t} s" for t in times) + " |",
             "|---|" + "---|" * len(times)]
    for method in methods:
        row = psnr_at.get(method) or {}
        lines.append(f"| {_label(method)} | " + " | ".join(_fmt(row.get(t)) for t in times) + " |")
    return lines + [""]


def _profile_lines(summary: dict, methods: list[str]) -> list[str]:
    """The area under each method's performance profile, per kind (profile.png draws them)."""
    by_kind = {kind: figures["performance_profile"]
               for kind, figures in summary["by_kind"].items() if figures["performance_profile"]}
    if not by_kind:
        return []
    tau = next(iter(by_kind.values()))["tau"]
    lines = [f"### Performance profile vs {BASELINE} (area over tau = 1..{tau[-1]}; profile.png)",
             "", f"The share of concepts a method brings to the target within tau x {BASELINE}'s "
             f"time, integrated over tau and divided by {tau[-1] - 1}: 1 = every concept within "
             f"{BASELINE}'s time, 0 = none within {tau[-1]}x it.", "",
             "| method | " + " | ".join(by_kind) + " |", "|---|" + "---|" * len(by_kind)]
    for method in methods:
        lines.append(f"| {_label(method)} | "
                     + " | ".join(_fmt(p["area"].get(method), 3) for p in by_kind.values()) + " |")
    return lines + [""]


def _headline_lines(summary: dict, methods: list[str]) -> list[str]:
    """The headline method's (and the ceiling's) figures, per kind: new first."""
    headline = summary["headline"]
    lines = []
    for kind, figures in summary["by_kind"].items():
        floor = figures["one_step_floor"]
        what = f"on {summary['heldout_kinds'][kind]} {kind} concept(s)"
        lines.append(
            f"- {headline} (bench.headline) {what}: speed-up vs pix2pix "
            f"{_fmt(figures['speedup_vs_pix2pix'])} ({_fmt(floor['speedup_vs_pix2pix'])} with a "
            f"one-step floor), vs {BASELINE} {_fmt(figures['speedup_vs_e2gan'])} "
            f"({_fmt(floor['speedup_vs_e2gan'])}); zero-shot PSNR "
            f"{_fmt(figures['zero_shot_psnr'].get(headline))} dB"
            + ("" if headline in methods else " (not benchmarked: not in bench.methods)"))
        if CEILING in methods:
            lines.append(
                f"- ceiling ({CEILING}, {CEILING_LABEL}) {what}: speed-up vs pix2pix "
                f"{_fmt(figures['speedup_ceiling_vs_pix2pix'])} "
                f"({_fmt(floor['speedup_ceiling_vs_pix2pix'])}), vs {BASELINE} "
                f"{_fmt(figures['speedup_ceiling_vs_e2gan'])} "
                f"({_fmt(floor['speedup_ceiling_vs_e2gan'])}); the store's adapter starts at or "
                f"above the target on {figures['ceiling_above_target']} of "
                f"{len(figures['heldout_concepts'])} (median margin "
                f"{_fmt(figures['ceiling_margin_db'])} dB)")
        wins = figures.get("zero_shot_wins")
        if wins:
            lines.append(f"- {headline} starts above both {MEAN} and {NEAREST} {what}: "
                         f"{wins['above_mean_and_nearest']} of {wins['concepts']}")
    return lines


def _control_fit_lines(fits: dict[str, dict]) -> list[str]:
    """One line per control fitted once for the bench: its seconds, a ridge map's alpha."""
    lines = []
    for method, fit in fits.items():
        chosen = (f"; alpha {fit['alpha']:g} chosen by {fit['selection'].replace('_', '-')}"
                  + (f" on {', '.join(fit['validation_concepts'])}"
                     if fit.get("validation_concepts") else "")) if "alpha" in fit else ""
        lines.append(f"- {method} fitted once in {_fmt(fit['seconds'])} s{chosen} (its "
                     f"per-concept seconds count as generation seconds)")
    return lines


def _choice_lines(summary: dict) -> list[str]:
    """Per kind, which candidate each method that chooses on the example pairs started from."""
    lines = []
    for kind, figures in summary["by_kind"].items():
        for method, wins in (figures.get("choice_wins") or {}).items():
            counts = ", ".join(f"{candidate} {count}" for candidate, count in wins.items())
            lines.append(f"- {method} chose on the example pairs, on {sum(wins.values())} {kind} "
                         f"concept(s): {counts}")
    return lines


def write_results_markdown(path: Path, payload: dict) -> None:
    """The paper-style tables: the new held-out concepts first, the paraphrases beside them, the
    seen (train) concepts after; then per-kind comparisons, the profile, per concept."""
    results, methods = payload["concepts"], payload["config"]["methods"]
    summary = payload["summary"]
    headline = summary["headline"]
    kinds = ", ".join(f"{count} {kind}" for kind, count in summary["heldout_kinds"].items())
    lines = ["# weightgen benchmark", "",
             "PSNR/SSIM against the exact procedural targets on held-out validation photos. "
             f"Target = {REFERENCE}'s final PSNR minus the tolerance; seconds are training "
             "seconds (evaluation excluded, generation included). The claim is about "
             f"{HEADLINE_KIND} concepts: their figures come first, the paraphrases beside them.",
             "",
             f"- split: {SPLIT_WORDS[summary['split']]}; held-out "
             f"concepts: {kinds}",
             f"- adapter: {payload['config'].get('adapter', '?')} (the `{BASELINE}` row "
             f"fine-tunes this adapter from its standard init)",
             *_headline_lines(summary, methods),
             f"- {headline}'s generation seconds: {_fmt(summary['generation_seconds'], 3)}"]
    if summary.get("one_step_seconds") is not None:
        lines.append(f"- clock: evaluations at steps 1, 2, 4, ... then every bench.eval_every; "
                     f"one training step takes {_fmt(summary['one_step_seconds'], 3)} s (median). "
                     f"An init at the target before training costs its generation (or "
                     f"selection) time; the one-step-floor figures charge it one training step")
    lines += _control_fit_lines(summary.get("control_fits") or {})
    lines += _choice_lines(summary)
    lines.append("")
    unseen = [r for r in results if not r["seen"]]
    seen = [r for r in results if r["seen"]]
    for kind in summary["heldout_kinds"]:
        lines += _table([r for r in unseen if r["kind"] == kind], methods,
                        KIND_TITLES.get(kind, kind))
    if seen:
        lines += _table(seen, methods, "Seen (train) concepts")
    for kind, figures in summary["by_kind"].items():
        title = f"{kind.capitalize()} concepts"
        lines += _paired_lines(figures, methods, title)
        lines += _psnr_at_lines(figures.get("psnr_at_seconds") or {}, methods, title)
    lines += _profile_lines(summary, methods)
    lines += _image_metrics_lines(summary.get("image_metrics", {}), methods)
    lines += ["### Per concept (final PSNR / seconds to target; a start chosen on the example "
              "pairs: the candidate)", "",
              "| concept | kind | target | " + " | ".join(map(_label, methods)) + " |",
              "|---|---|---|" + "---|" * len(methods)]
    for r in results:
        cells = []
        for method in methods:
            m = r["methods"].get(method)
            chosen = (m or {}).get("info", {}).get(CHOSEN)
            cells.append("—" if m is None else
                         f"{_fmt(m['final_psnr'])} / {_fmt(m['seconds_to_target'], 1)}"
                         + (f" ({chosen})" if chosen else ""))
        lines.append(f"| {r['concept']}{' (seen)' if r['seen'] else ''} | {r['kind'] or 'train'} "
                     f"| {_fmt(r['target_psnr'])} | " + " | ".join(cells) + " |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_curves_plot(path: Path, results: list[dict], methods: list[str]) -> None:
    """PSNR vs training seconds, one panel per concept, one line per method, target dashed."""
    count = len(results)
    cols = min(4, count)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, result in zip(axes.flat, results, strict=False):
        for method in methods:
            m = result["methods"].get(method)
            if m:
                ax.plot([p["seconds"] for p in m["curve"]], [p["psnr"] for p in m["curve"]],
                        marker=".", label=_label(method))
        ax.axhline(result["target_psnr"], color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{result['concept']}{' (seen)' if result['seen'] else ''}", fontsize=9)
        ax.set_xlabel("training seconds")
        ax.set_ylabel("val PSNR (dB)")
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_profile_plot(path: Path, summary: dict, methods: list[str]) -> None:
    """The performance profile, one panel per kind of held-out concept: for tau = 1..max, the
    share of concepts each method brings to the target within tau x E2GAN's time."""
    kinds = list(summary["by_kind"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 3.8), squeeze=False)
    for ax, kind in zip(axes.flat, kinds, strict=True):
        profile = summary["by_kind"][kind]["performance_profile"]
        ax.set_title(f"{kind} ({summary['heldout_kinds'][kind]} concepts)", fontsize=9)
        if profile is None:
            ax.text(0.5, 0.5, f"no {BASELINE} in bench.methods: no profile", ha="center",
                    va="center", transform=ax.transAxes)
            ax.axis("off")
            continue
        for method in methods:
            ax.step(profile["tau"], profile["share"][method], where="post",
                    label=f"{method} (area {_fmt(profile['area'][method], 3)})")
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"tau: multiple of {BASELINE}'s time to target")
        ax.set_ylabel("share of concepts reached")
        ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_sample_grid(pair_store: PairStore, runs_dir: Path, path: Path, concepts: list,
                      methods: list[str], per_concept: int = 2):
    """Rows: for each concept, ``per_concept`` images; columns: source | target | each method
    at step 0 and at the end (``runs_dir/<concept>/<method>.samples.safetensors``)."""
    rows, labels = [], []
    for concept in concepts:
        pairs = pair_store.load(concept.id)
        sources = images_to_tensor(pairs.val_source[:per_concept])
        targets = images_to_tensor(pairs.val_target[:per_concept])
        samples = {m: load_safetensors(runs_dir / concept.id / f"{m}.samples.safetensors")
                   for m in methods}
        for i in range(per_concept):
            row = [to_uint8(sources[i : i + 1])[0], to_uint8(targets[i : i + 1])[0]]
            for method in methods:
                row += [to_uint8(samples[method]["start"][i : i + 1])[0],
                        to_uint8(samples[method]["end"][i : i + 1])[0]]
            rows.append(row)
            labels.append(concept.id)
    columns = ["source", "target"] + [f"{m} {w}" for m in methods for w in ("step 0", "end")]
    save_grid(path, rows, labels, columns)
