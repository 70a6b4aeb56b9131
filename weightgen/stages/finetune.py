"""The finetune stage: one concept, one initialisation, its quality-vs-time curve on disk."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from weightgen.errors import ConfigError
from weightgen.finetune.finetuner import METHOD_INITS, run_method
from weightgen.finetune.inits import GENERATOR_INITS
from weightgen.stages.artifacts import default_inits, fine_tune_setup, load_base, load_generator
from weightgen.stages.workspace import Workspace
from weightgen.utils.io import atomic_write_json

_METHOD_OF_INIT = {init: method for method, init in METHOD_INITS.items() if init}


def finetune_one(ws: Workspace) -> dict:
    cfg = ws.cfg
    if cfg.init not in _METHOD_OF_INIT:
        raise ConfigError(f"init={cfg.init!r}: use one of {sorted(_METHOD_OF_INIT)}")
    concept = ws.concept(cfg.concept)
    base = load_base(ws)
    generator = load_generator(ws) if cfg.init in GENERATOR_INITS else None
    inits = default_inits(ws, base, generator)
    run, _ = run_method(fine_tune_setup(ws, base, inits), concept, _METHOD_OF_INIT[cfg.init],
                        cfg.steps, cfg.eval_every, cfg.target_psnr, progress=cfg.progress)
    run.samples = None
    out = Path(cfg.paths.run_dir) / "finetune" / f"{concept.id}-{cfg.init}.json"
    atomic_write_json(out, asdict(run))
    return {"concept": concept.id, "init": cfg.init, "zero_shot": run.zero_shot,
            "final": run.final, "init_seconds": run.init_seconds, "curve_file": str(out)}
