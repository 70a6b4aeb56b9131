"""From a prompt to a deployable editor: pairs, generated adapter, short fine-tune, model folder.

``weightgen-new-concept`` runs this on a run that has a base GAN and a trained weight generator:

1. **Pairs** for the concept, from exactly one of:

   * ``recipe=[...]`` (the procedural editor): the concept is added to the run's pair cache, on
     the run's own source crops, so its targets are exact;
   * ``editor=instruct_pix2pix`` (no recipe): the diffusion editor edits the run's source crops
     with the prompt as its instruction; the concept is added to the run's pair cache too;
   * ``pairs=<folder>``: your own pairs (layout and rules: ``weightgen.data.pair_folder``).
     Their sources are not the run's, so they get a pair store of their own under
     ``user_pairs_dir/<concept id>/`` in the pair cache's format: aligned crops of each
     (source, target) image pair at the run's ``data.size``, whole pairs held out for
     validation (``pairs_val_fraction``).

2. **Start** the concept's adapter from ``init=`` (``weightgen.stages.new_concept_init``):
   by default the best the weight generator can make, the prompt and the concept's own example
   pairs for a generator trained with them, the prompt alone otherwise (one step by default).
3. **Fine-tune** it (the bench method of that init, ``weightgen.bench.methods``) for ``steps``
   or until ``target_psnr``.
4. **Write** the model folder (``weightgen.editor.model_folder``): merged generator weights, the
   adapter alone, the prompt's text tokens, a before/after grid and the model card (prompt, data,
   the init and why, metrics before and after fine-tuning, the zero-shot PSNR of the init beside
   the cheap ones, seconds, the weight generator and base with their sha256, seed); with
   ``export=true`` also ONNX + TorchScript and latency.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from weightgen.concepts.ops import describe_recipe
from weightgen.concepts.procedural_editor import ProceduralEditor
from weightgen.concepts.spec import Concept
from weightgen.data.datamodule import images_to_tensor
from weightgen.data.pair_folder import read_pair_folder, write_folder_pair_store
from weightgen.data.pairs import PairSettings, PairStore
from weightgen.editor.export import export_model_folder
from weightgen.editor.model_folder import read_card, write_model_folder
from weightgen.errors import ConfigError, OutputExistsError
from weightgen.finetune.finetuner import OUTPUTS, run_method
from weightgen.finetune.pairs_choice import CHOSEN
from weightgen.gan.base import BaseGAN
from weightgen.gan.evaluate import evaluate
from weightgen.gan.module import GANModule
from weightgen.metrics.suite import MetricSuite
from weightgen.stages.artifacts import (
    adapter_evaluator,
    architecture,
    default_inits,
    fine_tune_setup,
    load_base,
    load_generator,
)
from weightgen.stages.new_concept_init import choose_init, zero_shot_by_init
from weightgen.stages.pairs import build_pairs
from weightgen.stages.workspace import Workspace, finish_loggers
from weightgen.utils.grid import save_grid, to_uint8
from weightgen.utils.io import sha256_file
from weightgen.utils.paths import file_in_the_way, folder_holding
from weightgen.utils.wandb_media import log_pictures, update_summary, wandb_loggers

log = logging.getLogger(__name__)

MAX_SLUG_LENGTH = 48


# --- the concept ------------------------------------------------------------------------------
def concept_slug(prompt: str) -> str:
    """A file-safe concept id from the prompt: "Watercolor painting!" -> "watercolor-painting".

    Prompts with no letters or digits in ASCII (e.g. "水彩画") get "concept-<sha256 prefix>".
    """
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug[:MAX_SLUG_LENGTH].rstrip("-")
    return slug or "concept-" + hashlib.sha256(prompt.encode()).hexdigest()[:8]


def checked_prompt(prompt) -> str:
    text = "" if prompt is None else str(prompt).strip()
    if not text:
        raise ConfigError(
            'prompt is empty: an editor is made for one concept; pass prompt="watercolor painting"'
        )
    return text


def check_out_folder(out, run_folders: Mapping[str, Path]) -> Path:
    """The model folder to write: new or empty, so nothing a user has is ever overwritten, and
    outside the run's own folders (``run_folders``, key -> folder)."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"out={folder} is a file; give a new folder path for the model")
    if file_in_the_way(folder) is not None:
        raise ConfigError(
            f"out={folder}: {file_in_the_way(folder)} is a file, not a folder; give a new "
            f"folder path for the model"
        )
    owner = folder_holding(folder, run_folders)
    if owner is not None:
        raise ConfigError(f"out={folder} is inside the run's {owner} ({run_folders[owner]}), "
                          f"whose files are the run's own; give a new folder outside it")
    if folder.is_dir() and any(folder.iterdir()):
        raise OutputExistsError(
            f"out={folder} already exists and is not empty; nothing was written: choose a new "
            f"folder (or delete this one)"
        )
    return folder


def data_source(ws: Workspace) -> str:
    """Which of the three ways makes the pairs: "recipe", "editor" or "folder"."""
    cfg = ws.cfg
    recipe, pairs = cfg.recipe, cfg.pairs
    procedural = issubclass(get_class(cfg.editor._target_), ProceduralEditor)
    if recipe is not None and pairs is not None:
        raise ConfigError("give recipe=[...] or pairs=<folder>, not both: they are two data sources")
    if pairs is not None:
        return "folder"
    if recipe is not None:
        if not procedural:
            raise ConfigError(
                f"recipe= is applied by the procedural editor, but editor={cfg.editor._target_}; "
                f"drop editor=... or drop recipe= to edit with the prompt as instruction"
            )
        return "recipe"
    if procedural:
        raise ConfigError(
            "no way to make the concept's pairs: pass recipe='[{op: sepia}, {op: blur, "
            "sigma: 1.0}]' (procedural edit), editor=instruct_pix2pix (the prompt is the "
            "instruction), or pairs=<folder with source/ and target/>"
        )
    return "editor"


def make_concept(ws: Workspace, prompt: str, source: str) -> Concept:
    """The new concept (held out from the generator: split "test"), its id new to the run."""
    concept_id = str(ws.cfg.concept_id or concept_slug(prompt))
    recipe = ws.cfg.recipe
    if recipe is not None:
        if OmegaConf.is_config(recipe):
            recipe = OmegaConf.to_container(recipe, resolve=True)
        if not isinstance(recipe, list):
            raise ConfigError(
                f"recipe={recipe!r} must be a list of steps, e.g. recipe='[{{op: sepia}}, "
                f"{{op: blur, sigma: 1.0}}]'"
            )
    if concept_id in {c.id for c in ws.concepts}:
        raise ConfigError(
            f"concept id {concept_id!r} is one of this run's concepts; its pairs and adapters "
            f"must not be replaced: pass concept_id=<another id>"
        )
    return Concept(
        id=concept_id,
        prompt=prompt,
        recipe=recipe if source == "recipe" else None,
        instruction=None if source == "recipe" else prompt,
        split="test",
    )


# --- the flow ---------------------------------------------------------------------------------
def make_pairs(ws: Workspace, concept: Concept, source: str) -> tuple[Path, dict]:
    """Build the concept's pairs; (the pair store's folder that holds them, the card's data)."""
    data_cfg = ws.cfg.data
    crops = {"size": int(data_cfg.size), "train": int(data_cfg.n_train), "val": int(data_cfg.n_val),
             "max_zoom": float(data_cfg.max_zoom), "seed": int(data_cfg.seed)}
    if source == "folder":
        pairs = read_pair_folder(ws.cfg.pairs, min_side=int(data_cfg.size),
                                 alpha_background=ws.cfg.alpha_background)
        settings = PairSettings(size=crops["size"], n_train=crops["train"], n_val=crops["val"],
                                seed=crops["seed"], max_zoom=crops["max_zoom"],
                                photos=str(pairs.folder.resolve()))
        root = Path(ws.cfg.user_pairs_dir) / concept.id
        _, data = write_folder_pair_store(root, concept, pairs, settings,
                                          float(ws.cfg.pairs_val_fraction))
        return root, data | {"crops": crops}
    build_pairs(ws, [concept])
    data = {
        "source": source,
        "pairs_dir": str(Path(ws.cfg.paths.pairs_dir).resolve()),
        "photos": str(data_cfg.folder) if data_cfg.source == "folder" else data_cfg.source,
        "val_photos": list(data_cfg.val_photos),
        "crops": crops,
    }
    if source == "recipe":
        data["recipe"] = [step.to_dict() for step in concept.recipe]
        data["recipe_description"] = describe_recipe(concept.recipe)
    else:
        data["editor"] = OmegaConf.to_container(ws.cfg.editor, resolve=True)
        data["instruction"] = concept.instruction
    return Path(ws.cfg.paths.pairs_dir), data


def provenance(ws: Workspace, base: BaseGAN, generator_meta: dict) -> dict:
    """The weight generator and base GAN the editor came from: folders and sha256 of their files."""
    generator_dir = Path(ws.cfg.paths.generator_dir).resolve()
    base_dir = Path(ws.cfg.paths.base_dir).resolve()
    return {
        "run_name": ws.cfg.run_name,
        "weight_generator": {
            "path": str(generator_dir),
            "generator_json_sha256": sha256_file(generator_dir / "generator.json"),
            "denoiser_sha256": generator_meta["denoiser_sha256"],
            "tokenizer_sha256": generator_meta["tokenizer_sha256"],
            "train_concepts": len(generator_meta["train_concepts"]),
            "training_steps": generator_meta.get("training", {}).get("steps"),
            "sampling": OmegaConf.to_container(ws.cfg.diffusion.sampling, resolve=True),
        },
        "base": {
            "path": str(base_dir),
            "base_json_sha256": sha256_file(base_dir / "base.json"),
            "generator_sha256": base.meta["generator_sha256"],
            "steps": base.meta["steps"],
        },
        "adapter": OmegaConf.to_container(ws.cfg.adapter, resolve=True),
        "text_encoder": ws.text_encoder.config(),
    }


def generator_kwargs(ws: Workspace) -> dict:
    """``E2GANGenerator`` constructor arguments of this run (what the model card records)."""
    kwargs = {k: v for k, v in architecture(ws)["generator"].items() if k != "_target_"}
    return kwargs | {"text_dim": ws.text_encoder.dim}


@dataclass
class NewConcept:
    """What the flow made: the model folder, its card, and the fine-tuned module it came from."""

    folder: Path
    card: dict
    module: GANModule


def make_concept_editor(ws: Workspace) -> NewConcept:
    """Run the whole flow from ``ws.cfg`` (``conf/new_concept.yaml``); see the module doc."""
    cfg = ws.cfg
    prompt = checked_prompt(cfg.prompt)
    out = check_out_folder(cfg.out, ws.artifact_folders)
    source = data_source(ws)
    concept = make_concept(ws, prompt, source)
    # Fail on a missing or mismatched base / generator, or an init it cannot make, before any
    # slow work.
    base = load_base(ws)
    generator = load_generator(ws)
    choice = choose_init(cfg.init, generator.examples_k, cfg.paths.generator_dir)
    log.info("new concept %s starts from %s", concept.id, choice.describe())
    suite = MetricSuite.from_config(cfg.metrics)

    start = time.perf_counter()
    pairs_dir, data = make_pairs(ws, concept, source)
    pairs_seconds = time.perf_counter() - start

    pair_store = PairStore(pairs_dir)
    evaluator = adapter_evaluator(ws, base, pair_store)
    inits = default_inits(ws, base, generator, evaluator.standard_state, pair_store)
    setup = fine_tune_setup(ws, base, inits, pairs_dir)
    run, module = run_method(setup, concept, choice.method.name, choice.kind,
                             int(cfg.steps), int(cfg.eval_every), cfg.target_psnr,
                             progress=bool(cfg.progress))
    if CHOSEN in run.info:
        log.info("chosen on its %d example pairs: %s (L1 %s)", len(run.info["example_pairs"]),
                 run.info[CHOSEN], ", ".join(f"{name} {score['l1']:.4f}"
                                             for name, score in run.info["scores"].items()))
    zero_shot = zero_shot_by_init(evaluator, inits, concept, choice.kind, run.zero_shot)

    pairs = pair_store.load(concept.id)
    val_sources = images_to_tensor(pairs.val_source)
    val_targets = images_to_tensor(pairs.val_target)
    text = ws.embed([prompt])
    base_quality = evaluate(base.generator, val_sources, val_targets, text.tokens[0], text.mask[0])
    shown = len(run.samples["start"])
    grid = save_grid(
        ws.run_dir / "grids" / "new_concept" / f"{concept.id}.png",
        [list(pairs.val_source[:shown]), list(pairs.val_target[:shown]),
         list(to_uint8(run.samples["start"])), list(to_uint8(run.samples["end"]))],
        row_labels=["source", "target", "generated", "fine-tuned"],
    )
    card = {
        "prompt": prompt,
        "concept_id": concept.id,
        "image_size": int(cfg.data.size),
        "seed": int(cfg.seed),
        "data": data,
        "init": {"kind": choice.kind, "requested": choice.requested, "why": choice.reason,
                 "details": run.info},
        "metrics": {
            "measured_on": f"{len(pairs.val_source)} validation crops of held-out photos",
            "base": {"psnr": base_quality.psnr, "ssim": base_quality.ssim},
            "before": run.zero_shot,
            "after": run.final,
            "zero_shot_by_init": zero_shot,
            "curve": run.curve,
            "target_psnr": cfg.target_psnr,
            "image_metrics": fine_tuned_image_metrics(suite, run, val_targets, prompt),
        },
        "seconds": {
            "pairs": pairs_seconds,
            "generation": run.init_seconds,
            "fine_tune": run.train_seconds,
            "generation_plus_fine_tune": run.init_seconds + run.train_seconds,
        },
        "method": choice.method.name,
        "provenance": provenance(ws, base, generator.meta),
    }
    write_model_folder(
        out,
        generator_kwargs(ws),
        module.adapter.merged_state_dict(module.generator),
        module.adapter.state(module.generator),
        text.tokens[0],
        text.mask[0],
        card,
        grid_png=grid.read_bytes(),
    )
    if cfg.export:
        card = export_model_folder(out, **OmegaConf.to_container(cfg.export_options, resolve=True))
    else:
        card = read_card(out)
    log_to_wandb(ws, card, grid)
    return NewConcept(out, card, module)


def fine_tuned_image_metrics(suite: MetricSuite, run, val_targets: torch.Tensor,
                             prompt: str) -> dict:
    """FID/KID and CLIP score of the fine-tuned editor's outputs on every validation crop; the
    targets' own CLIP score is the reference."""
    record = suite.describe()
    if not suite.active:
        return record
    outputs = images_to_tensor(run.samples[OUTPUTS].numpy())
    prompts = [prompt] * len(outputs)
    return record | {"images": len(outputs),
                     "fine_tuned": suite.score(outputs, val_targets, prompts),
                     "targets": suite.clip(val_targets, prompts)}


def log_to_wandb(ws: Workspace, card: dict, grid: Path) -> None:
    """The editor as a W&B run of the run's group: its before/after picture and its figures."""
    loggers = wandb_loggers(ws.loggers("new_concept", label=card["concept_id"]))
    try:
        log_pictures(loggers, "new_concept/before_after", [grid])
        update_summary(loggers, {
            "psnr": {k: card["metrics"][k]["psnr"] for k in ("base", "before", "after")},
            "image_metrics": card["metrics"]["image_metrics"],
            "seconds": card["seconds"],
        }, prefix="new_concept/")
    finally:
        finish_loggers(loggers)


def new_concept(ws: Workspace) -> dict:
    """The ``weightgen-new-concept`` task: make the editor, return what a person reads first."""
    made = make_concept_editor(ws)
    card = made.card
    return {
        "out": str(made.folder),
        "prompt": card["prompt"],
        "concept_id": card["concept_id"],
        "data": card["data"]["source"],
        "init": card["init"]["kind"],
        "psnr": {k: card["metrics"][k]["psnr"] for k in ("base", "before", "after")},
        "zero_shot_psnr_by_init": {kind: quality["psnr"] for kind, quality
                                   in card["metrics"]["zero_shot_by_init"].items()},
        "image_metrics": card["metrics"]["image_metrics"].get("fine_tuned"),
        "steps": card["metrics"]["after"]["step"],
        "seconds": card["seconds"],
        "exports": sorted(card.get("exports", {})),
        "latency": card.get("latency", {}).get("seconds_per_image"),
        "files": sorted(p.name for p in made.folder.iterdir()),
    }
