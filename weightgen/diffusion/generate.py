"""The generate stage: a prompt in, a full adapter file out, with the seconds it took."""

from __future__ import annotations

from pathlib import Path

from weightgen.diffusion.bundle import WeightGenerator
from weightgen.diffusion.staleness import check_generator_inputs
from weightgen.diffusion.train import generator_expectations
from weightgen.utils.io import atomic_save_safetensors
from weightgen.workspace import Workspace


def load_generator(ws: Workspace) -> WeightGenerator:
    """The run's weight generator, checked against its configuration, base and weight store.

    Every stage that uses a generator loads it here (generate, finetune, bench, zero-shot,
    new-concept, studies).
    """
    folder = ws.cfg.paths.generator_dir
    generator = WeightGenerator.load(folder, expect=generator_expectations(ws))
    check_generator_inputs(ws, generator.meta, folder)
    return generator


def generate_adapter_file(ws: Workspace) -> dict:
    prompt = str(ws.cfg.prompt).strip()
    if not prompt:
        raise ValueError('prompt is empty: pass prompt="a sepia photo with a blue tint"')
    generator = load_generator(ws)
    sampling = dict(ws.cfg.diffusion.sampling)
    result = generator.generate(ws.embed([prompt]), **sampling)
    out = Path(ws.cfg.out)
    sha = atomic_save_safetensors(result.state, out, {"prompt": prompt})
    print(f"generated an adapter for {prompt!r} in {result.seconds:.3f} s -> {out}")
    return {"prompt": prompt, "out": str(out), "seconds": result.seconds, "sha256": sha,
            "sampling": sampling}
