"""`trainer=ddp` on CPU: the real weightgen-train-generator CLI with 2 gloo processes (issue 4).

Lightning's DDP launcher re-executes the Hydra command for rank 1; both ranks train, rank 0
validates and writes the generator, and each rank prints its summary (world size and the
all-gathered parameter checksums of both replicas).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import TINY, TINY_GENERATOR

from weightgen.diffusion.bundle import WeightGenerator
from weightgen.stages.train_generator import parameter_checksum

CLI = Path(sys.executable).parent / "weightgen-train-generator"


def printed_summaries(stdout: str) -> list[dict]:
    """Every summary the ranks printed (a JSON object opened by a ``{`` line of its own)."""
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"^\{$", stdout, re.MULTILINE)]
    return [decoder.raw_decode(stdout, start)[0] for start in starts]


def test_two_process_ddp_training_on_cpu(tiny_run, tmp_path):
    built = tiny_run["artifacts"] / "quickstart"
    generator_dir = tmp_path / "run" / "generator"
    command = [
        str(CLI), *TINY, *TINY_GENERATOR,
        # inputs from the shared built run (read only); everything written goes to tmp_path
        f"paths.artifacts={tmp_path}", f"paths.run_dir={tmp_path / 'run'}",
        f"paths.pairs_dir={built / 'pairs'}", f"paths.base_dir={built / 'base'}",
        f"paths.weights_dir={built / 'weights'}",
        "denoiser.hidden_dim=32", "denoiser.depth=1", "diffusion.batch_size=8",
        "diffusion.steps=4", "diffusion.val_every=2", "num_threads=1",
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)  # generous: CI machines may be busy
    assert done.returncode == 0, done.stderr[-3000:]

    summaries = printed_summaries(done.stdout)
    assert len(summaries) == 2, done.stdout  # both ranks finished and reported
    for summary in summaries:
        assert summary["world_size"] == 2 and summary["steps"] == 4
        checksums = summary["replica_checksums"]
        assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert summaries[0]["replica_checksums"] == summaries[1]["replica_checksums"]
    # Rank 0 alone validated (generated adapters -> GAN PSNR at steps 2 and 4).
    validations = sorted(len(s["validation"]) for s in summaries)
    assert validations == [0, 2]

    # The saved generator holds exactly the weights both replicas ended with.
    saved = WeightGenerator.load(generator_dir)
    assert int(parameter_checksum(saved.denoiser)[:15], 16) == summaries[0]["replica_checksums"][0]
    assert saved.meta["training"]["world_size"] == 2
    assert sorted(p.name for p in generator_dir.iterdir()) == [
        "denoiser.safetensors", "generator.json", "tokenizer.safetensors"]
