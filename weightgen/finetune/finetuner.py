"""The fast fine-tuner: start a concept's GAN from some initialisation and train it briefly.

``FineTuneModule`` is the GAN module with a starting point: the adapter (on the frozen base) is
loaded from an :class:`~weightgen.finetune.inits.AdapterInit` and the discriminator starts from
the base's. ``run_method`` runs one benchmark method on one concept and returns its quality
curve; ``pix2pix_scratch`` trains the full generator from random initialisation with the same
losses, data and evaluation, so every method is measured the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import lightning as L
import torch
from hydra.utils import instantiate

from weightgen.concepts.spec import Concept
from weightgen.data.datamodule import PairsDataModule
from weightgen.errors import ConfigError
from weightgen.finetune.curve import QualityCurve
from weightgen.finetune.inits import AdapterInit, InitSources
from weightgen.gan.adapters import Adapter
from weightgen.gan.evaluate import evaluate, generate
from weightgen.gan.module import GANModule
from weightgen.stages.dataset import (
    BaseGAN,
    build_networks,
    gan_module,
    gan_training_options,
)
from weightgen.stages.workspace import Workspace
from weightgen.training import fit, make_trainer
from weightgen.utils.grid import to_uint8

# Benchmark method -> the adapter initialisation it fine-tunes from (None: no base, no adapter).
METHOD_INITS = {
    "pix2pix_scratch": None,
    "e2gan_lora": "standard",
    "denoised_init": "generated",
    "mean_init": "mean",
    "nearest_init": "nearest",
    "shuffled_prompt_init": "shuffled",
    "trained_init": "trained",
}
# The store's own adapter of each held-out concept: the best any generator can do with this data.
CEILING_METHOD = "trained_init"


class FineTuneModule(GANModule):
    """GAN module whose adapter starts from ``init`` (generated, trained, mean, ...)."""

    def __init__(self, generator, discriminator, text_tokens, text_mask, adapter: Adapter,
                 init: AdapterInit, **loss):
        adapter.load_state(generator, init.state)
        super().__init__(generator, discriminator, text_tokens, text_mask, adapter=adapter, **loss)
        self.init = init


# The samples key of a run's final outputs on every validation image (what image metrics score).
OUTPUTS = "outputs"


@dataclass
class MethodRun:
    method: str
    concept: str
    curve: list[dict]
    init_seconds: float = 0.0
    train_seconds: float = 0.0
    info: dict = field(default_factory=dict)
    # Outputs on the first validation images at step 0 and at the end ([k,3,H,W]), and on every
    # validation image at the end as saved images (OUTPUTS, uint8 [N,H,W,3]); not saved with the
    # JSON record.
    samples: dict[str, torch.Tensor] | None = None

    @property
    def zero_shot(self) -> dict:
        return self.curve[0]

    @property
    def final(self) -> dict:
        return self.curve[-1]


def _fit(ws: Workspace, module: GANModule, concept: Concept, steps: int, eval_every: int,
         curve: QualityCurve, progress: bool = False, n_samples: int = 4
         ) -> tuple[float, dict[str, torch.Tensor]]:
    """Evaluate at step 0, train to the budget or target; (wall seconds, sample outputs)."""
    data = PairsDataModule(ws.cfg.paths.pairs_dir, [concept.id], ws.cfg.data.batch_size,
                           seed=ws.cfg.seed)
    data.setup()
    text_tokens, text_mask = module.text_tokens[0], module.text_mask[0]
    start_quality = evaluate(module.generator, data.val_set.sources, data.val_set.targets[0],
                             text_tokens, text_mask)
    curve.record(0, start_quality.psnr, start_quality.ssim)
    shown = data.val_set.sources[:n_samples]
    samples = {"start": generate(module.generator, shown, text_tokens, text_mask)}
    wall = 0.0
    if not curve.reached_target and steps > 0:
        trainer = make_trainer(ws.cfg.trainer, steps, val_every=eval_every, callbacks=[curve],
                               progress=progress, progress_label=f"fine-tune {concept.id}")
        start = time.perf_counter()
        fit(trainer, module, data, f"fine-tuning on concept {concept.id!r}")
        wall = time.perf_counter() - start
    samples["end"] = generate(module.generator, shown, text_tokens, text_mask)
    outputs = generate(module.generator, data.val_set.sources, text_tokens, text_mask)
    samples[OUTPUTS] = torch.from_numpy(to_uint8(outputs))
    return wall, samples


def run_method(ws: Workspace, base: BaseGAN, inits: InitSources, concept: Concept, method: str,
               steps: int, eval_every: int, target_psnr: float | None = None,
               progress: bool = False) -> tuple[MethodRun, GANModule]:
    """Run one method on one concept: its curve from step 0 to the budget or target, and the
    trained module (``module.generator`` / ``module.adapter`` for export)."""
    if method not in METHOD_INITS:
        raise ConfigError(f"unknown method {method!r}; use one of {sorted(METHOD_INITS)}")
    L.seed_everything(ws.cfg.seed, workers=True)
    text = ws.embed([concept.prompt])
    kind = METHOD_INITS[method]
    if kind is None:
        generator, discriminator = build_networks(ws)
        module = gan_module(ws, generator, discriminator, text)
        init = AdapterInit("scratch", {})
    else:
        init = inits.get(kind, concept)
        generator, discriminator = base.fresh_copy()
        adapter: Adapter = instantiate(ws.cfg.adapter)
        generator = adapter.attach(generator)
        module = FineTuneModule(generator, discriminator, text.tokens, text.mask, adapter, init,
                                **gan_training_options(ws.cfg.gan))
    curve = QualityCurve(offset_seconds=init.seconds, target_psnr=target_psnr)
    wall, samples = _fit(ws, module, concept, steps, eval_every, curve, progress)
    run = MethodRun(method, concept.id, curve.as_dicts(), init.seconds, wall, init.info, samples)
    return run, module


def default_inits(ws: Workspace, base: BaseGAN, generator=None) -> InitSources:
    """Init sources on this run's store and (optional) weight generator."""
    adapter: Adapter = instantiate(ws.cfg.adapter)
    adapter.attach(base.fresh_copy()[0])
    sampling = dict(ws.cfg.diffusion.sampling)
    return InitSources(ws, adapter.standard_state(), generator, sampling)
