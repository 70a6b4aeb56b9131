"""The dataset builder's ``base`` stage: the base GAN, trained once on the mix of train concepts.

The base records the fingerprints of its train concepts' pairs and prompts, each adapter those of
its concept's pairs and texts: when those of a train concept change, the base is refused
(:class:`StaleArtifactError`, with the fix: delete it and rebuild, its adapters follow), and so
is a base that records none (an older weightgen built it). A base whose ``base.json`` or weight
files are missing or damaged is trained again.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate

from weightgen.concepts.text_fingerprints import PROMPT, texts_fingerprints
from weightgen.data.datamodule import PairsDataModule
from weightgen.errors import ConfigError
from weightgen.gan.base import META_FILE as BASE_META_FILE
from weightgen.gan.base import (
    BaseGAN,
    base_files_intact,
    build_networks,
    gan_module,
    save_base,
)
from weightgen.gan.evaluate import generate
from weightgen.gan.module import GANModule
from weightgen.stages.artifacts import architecture, load_base
from weightgen.stages.workspace import Workspace
from weightgen.training import fit, make_trainer
from weightgen.utils.locks import lock_beside, store_lock
from weightgen.utils.wandb_media import ValidationImages

log = logging.getLogger(__name__)


def train_base(ws: Workspace, loggers: list | bool = False) -> BaseGAN:
    """Train the base GAN on the mix of train concepts (skipped if it is already on disk)."""
    base_dir = Path(ws.cfg.paths.base_dir)
    with store_lock(lock_beside(base_dir), f"the base GAN {base_dir}", ws.lock_timeout_s):
        return _train_base(ws, base_dir, loggers)


def _train_base(ws: Workspace, base_dir: Path, loggers: list | bool) -> BaseGAN:
    builder = ws.cfg.builder
    concepts = ws.train_concepts
    if (base_dir / BASE_META_FILE).is_file() and not base_files_intact(base_dir):
        log.warning("%s: base.json or a weight file is damaged or missing: training the base "
                    "GAN again", base_dir)
    elif (base_dir / BASE_META_FILE).is_file():
        base = load_base(ws)
        wanted = {"steps": int(builder.base_steps), "train_concepts": [c.id for c in concepts]}
        found = {k: base.meta[k] for k in wanted}
        if found != wanted:
            raise ConfigError(
                f"the base GAN at {base_dir} was trained with {found}, but this run asks for "
                f"{wanted}; delete {base_dir} to retrain it, or use another run_name"
            )
        return base
    if not concepts:
        raise ConfigError("the base GAN needs train concepts; the concept selection has none")
    text = ws.embed([c.prompt for c in concepts])
    L.seed_everything(ws.cfg.seed, workers=True)
    generator, discriminator = build_networks(ws.cfg.gan, ws.text_encoder.dim)
    module = gan_module(ws.cfg.gan, generator, discriminator, text,
                        lr_scheduler=instantiate(builder.base_lr_scheduler, _convert_="all"))
    data = PairsDataModule(
        ws.cfg.paths.pairs_dir, [c.id for c in concepts], ws.cfg.data.batch_size, seed=ws.cfg.seed
    )
    samples = ValidationImages("base/samples", partial(
        validation_strips, data=data, concept_ids=[c.id for c in concepts], count=builder.grid_images,
    ))
    trainer = make_trainer(
        ws.cfg.trainer, builder.base_steps, val_every=builder.base_steps, callbacks=[samples],
        logger=loggers, progress=ws.cfg.progress, progress_label="base GAN",
    )
    start = time.perf_counter()
    fit(trainer, module, data, "training the base GAN")
    seconds = time.perf_counter() - start
    meta = {
        "architecture": architecture(ws),
        "train_concepts": [c.id for c in concepts],
        "pairs_sha256": ws.pair_store.fingerprints([c.id for c in concepts]),
        "texts_sha256": texts_fingerprints(concepts, PROMPT),
        "steps": int(builder.base_steps),
        "seconds": seconds,
        "val_psnr_train_concepts": module.last_quality.get("val/psnr"),
        "val_ssim_train_concepts": module.last_quality.get("val/ssim"),
        "generator_parameters": sum(p.numel() for p in generator.parameters()),
    }
    base = save_base(base_dir, generator, discriminator, meta)
    log.info("base GAN: %.2f dB PSNR on train concepts after %d steps (%.0f s)",
             meta["val_psnr_train_concepts"], meta["steps"], seconds)
    return base


SHOWN_CONCEPTS = 4  # concepts with sample images at each validation of the base


def validation_strips(module: GANModule, data: PairsDataModule, concept_ids: list[str],
                      count: int) -> dict[str, list[torch.Tensor]]:
    """source | target | output on the first ``count`` validation crops of a few concepts."""
    sources = data.val_set.sources[:count].to(module.device)
    return {
        f"{concept_id}: source | target | base": [sources, data.val_set.targets[index][:count],
                     generate(module.generator, sources, module.text_tokens[index],
                              module.text_mask[index])]
        for index, concept_id in enumerate(concept_ids[:SHOWN_CONCEPTS])
    }
