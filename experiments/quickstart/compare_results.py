"""Two bench results.json files of the same seed compared run by run (issue 22's check that a
refactor changed nothing): steps to target, every curve point, zero-shot and final PSNR.

    .venv/bin/python experiments/quickstart/compare_results.py BEFORE/results.json AFTER/results.json

Prints a Markdown table and a closing line: whether every step count is the same and the largest
PSNR difference in dB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def run_difference(before: dict, after: dict) -> tuple[bool, float]:
    """(same steps, largest absolute PSNR difference) of one method's run on one concept."""
    same_steps = (before["steps_to_target"] == after["steps_to_target"]
                  and before["final_step"] == after["final_step"]
                  and [p["step"] for p in before["curve"]] == [p["step"] for p in after["curve"]])
    pairs = [(p["psnr"], q["psnr"]) for p, q in zip(before["curve"], after["curve"], strict=False)]
    pairs += [(before[key], after[key]) for key in ("zero_shot_psnr", "final_psnr")]
    return same_steps, max(abs(x - y) for x, y in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = (json.loads(path.read_text())["concepts"] for path in (args.before, args.after))
    print("| concept | method | steps to target before / after | zero-shot PSNR before / after "
          "| final PSNR before / after | max abs PSNR diff |")
    print("|---|---|---|---|---|---|")
    all_same, worst, runs = True, 0.0, 0
    for old, new in zip(before, after, strict=True):
        if old["concept"] != new["concept"]:
            raise SystemExit(f"the files hold other concepts: {old['concept']} / {new['concept']}")
        for method in sorted(old["methods"]):
            a, b = old["methods"][method], new["methods"][method]
            same, difference = run_difference(a, b)
            all_same, worst, runs = all_same and same, max(worst, difference), runs + 1
            print(f"| {old['concept']} | {method} | {a['steps_to_target']} / {b['steps_to_target']}"
                  f" | {a['zero_shot_psnr']:.4f} / {b['zero_shot_psnr']:.4f} | "
                  f"{a['final_psnr']:.4f} / {b['final_psnr']:.4f} | {difference:.2e} |")
    print(f"\n{runs} runs; steps identical: {all_same}; largest PSNR difference: {worst:.2e} dB")


if __name__ == "__main__":
    main()
