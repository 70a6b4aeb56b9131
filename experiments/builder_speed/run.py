"""Where an adapter step's time goes, and which ways of running it pay on this machine.

Side by side in one run, on one concept of an existing run's store inputs (its base and pairs):

* ``builder``: the dataset builder's own path (``weightgen.stages.dataset_adapters.train_adapter``:
  the Lightning Trainer, validation at each checkpoint, store writes), per step;
* ``plain``: the same losses and optimisers in a bare torch loop (batch from the same data);
* the bare loop at a larger batch, with ``channels_last``, without oneDNN, and under
  ``torch.compile`` (each a way the arithmetic itself could get cheaper);
* two bare loops at once, one thread each (what ``builder.processes=2`` does).

Writes ``results.json`` and ``results.md`` beside this file. Usage (a run with a base, e.g. after
``make quickstart``):

    .venv/bin/python experiments/builder_speed/run.py experiment=quickstart [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from weightgen.cli.app import compose_workspace
from weightgen.finetune.concept_fit import adapter_module
from weightgen.stages.artifacts import load_base
from weightgen.stages.dataset_adapters import train_adapter
from weightgen.stages.workspace import Workspace
from weightgen.weights.store import Shard, WeightStore

HERE = Path(__file__).resolve().parent


def workspace(overrides: list[str], steps: int) -> Workspace:
    """The run's workspace with ``steps`` adapter steps, composed and checked as the commands do."""
    return compose_workspace([*overrides, "progress=false", "logger=none",
                              f"builder.adapter_steps={steps}",
                              f"builder.checkpoint_steps=[{steps}]"])


def builder_ms(ws: Workspace, steps: int) -> float:
    """Milliseconds per step of the builder's own adapter run (fit seconds / steps)."""
    base = load_base(ws)
    with tempfile.TemporaryDirectory() as folder:
        summary = train_adapter(ws, base, ws.train_concepts[0], WeightStore(folder), Shard(0, 1))
    return 1000 * summary["seconds"] / steps


def plain_ms(ws: Workspace, steps: int, batch: int, variant: str) -> float:
    """Milliseconds per step of the pix2pix losses in a bare loop (after 3 warm-up steps)."""
    if variant == "no_onednn":
        torch.backends.mkldnn.enabled = False
    base = load_base(ws)
    adapter = instantiate(ws.cfg.adapter)
    module = adapter_module(base, adapter, ws.embed([ws.train_concepts[0].prompt]), ws.cfg.gan)
    g, d = module.generator, module.discriminator
    source, target = torch.randn(batch, 3, 64, 64), torch.randn(batch, 3, 64, 64)
    concept = torch.zeros(batch, dtype=torch.long)
    tokens, mask = module.text_tokens[concept], module.text_mask[concept]
    if variant == "channels_last":
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        source = source.contiguous(memory_format=torch.channels_last)
        target = target.contiguous(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(adapter.trainable_parameters(g), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    if variant == "compile":
        g, d = torch.compile(g), torch.compile(d)

    def step() -> None:
        fake = g(source, tokens, mask)
        real_logits, fake_logits = d(source, target), d(source, fake.detach())
        loss_d = 0.5 * (F.mse_loss(real_logits, torch.ones_like(real_logits))
                        + F.mse_loss(fake_logits, torch.zeros_like(fake_logits)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        adversarial = d(source, fake)
        loss_g = 100 * F.l1_loss(fake, target) + F.mse_loss(adversarial,
                                                             torch.ones_like(adversarial))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - start) / steps


def in_subprocess(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--one", nargs=3, metavar=("THREADS", "BATCH", "VARIANT"),
                        help="internal: time one bare loop and print its ms/step")
    args = parser.parse_args()
    ws = workspace(args.overrides, args.steps)
    if args.one:
        threads, batch, variant = int(args.one[0]), int(args.one[1]), args.one[2]
        torch.set_num_threads(threads)
        print(plain_ms(ws, args.steps, batch, variant))
        return
    common = [*args.overrides, "--steps", str(args.steps)]

    def one(threads: int, batch: int, variant: str) -> float:
        out = in_subprocess([*common, "--one", str(threads), str(batch), variant])
        return float(out.communicate()[0].strip().splitlines()[-1])

    torch.set_num_threads(torch.get_num_threads())
    rows = {"builder (Lightning, 2 threads, batch 4)": builder_ms(ws, args.steps),
            "plain loop (2 threads, batch 4)": one(2, 4, "plain"),
            "plain loop, 1 thread": one(1, 4, "plain"),
            "plain loop, batch 16 (per 4 images)": one(2, 16, "plain") / 4,
            "plain loop, channels_last": one(2, 4, "channels_last"),
            "plain loop, oneDNN off": one(2, 4, "no_onednn"),
            "plain loop, torch.compile": one(2, 4, "compile")}
    pair = [in_subprocess([*common, "--one", "1", "4", "plain"]) for _ in range(2)]
    each = [float(p.communicate()[0].strip().splitlines()[-1]) for p in pair]
    rows["two plain loops at once, 1 thread each (per step of either)"] = sum(each) / 2
    rows["two plain loops at once: effective ms per concept-step"] = sum(each) / 4
    reference = rows["plain loop (2 threads, batch 4)"]
    results = {"steps": args.steps, "overrides": args.overrides,
               "ms_per_step": {k: round(v, 1) for k, v in rows.items()},
               "relative_to_plain": {k: round(reference / v, 2) for k, v in rows.items()}}
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# One adapter step on this machine", "",
             f"`{' '.join(['.venv/bin/python experiments/builder_speed/run.py', *sys.argv[1:]])}`"
             f" ({args.steps} timed steps each, 64 px, E2GAN generator + PatchGAN, Adam).", "",
             "| way | ms per step | speed vs plain loop |", "|---|---|---|"]
    lines += [f"| {k} | {v:.1f} | {reference / v:.2f}x |" for k, v in rows.items()]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
