"""The finetune stage: one concept, one initialisation, its quality-vs-time curve on disk."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from weightgen.bench.methods import METHODS, method_of_init
from weightgen.errors import ConfigError
from weightgen.finetune.finetuner import run_method
from weightgen.stages.artifacts import default_inits, fine_tune_setup, load_base, load_generator
from weightgen.stages.workspace import Workspace
from weightgen.utils.io import atomic_write_json


def finetune_one(ws: Workspace) -> dict:
    cfg = ws.cfg
    method = method_of_init(cfg.init)
    if method is None:
        raise ConfigError(f"init={cfg.init!r}: use one of "
                          f"{sorted(m.init for m in METHODS.values() if m.init)}")
    concept = ws.concept(cfg.concept)
    base = load_base(ws)
    inits = default_inits(ws, base, load_generator(ws) if method.needs_generator else None)
    run, _ = run_method(fine_tune_setup(ws, base, inits), concept, method.name, method.init,
                        cfg.steps, cfg.eval_every, cfg.target_psnr, progress=cfg.progress)
    run.samples = None
    out = Path(cfg.paths.run_dir) / "finetune" / f"{concept.id}-{cfg.init}.json"
    atomic_write_json(out, asdict(run))
    return {"concept": concept.id, "init": cfg.init, "zero_shot": run.zero_shot,
            "final": run.final, "init_seconds": run.init_seconds, "curve_file": str(out)}
