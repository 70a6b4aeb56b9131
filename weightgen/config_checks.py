"""Every count and size knob checked once, when an entry point starts, before any work.

A bad number otherwise surfaces late or never: ``bench.n_unseen=-1`` slices ``[:-1]`` and the
benchmark silently skips a concept; ``diffusion.steps=0`` writes an untrained generator over a
trained one. :func:`check_config` refuses such values with a :class:`ConfigError` naming the key,
the value and what is allowed. A rule applies where its key is in the composed config (the
top-level ``steps`` of ``weightgen-finetune`` and ``weightgen-new-concept``, say); counts that
pick concepts are checked against the run's concept set, ``bench.headline`` against the
benchmark's methods and ``bench.split`` against the held-out splits. ``data.size`` is checked
against the smallest side the configured GAN trains on, and each ``bench.recipes.<method>`` like
the ``gan`` group it overrides: its knobs, and its optimiser and schedule built once on a
stand-in parameter (a negative rate would otherwise fail only once the benchmark's runs have
started).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

from weightgen.bench.methods import method_named
from weightgen.concepts.catalog import builtin_concepts, split_concepts
from weightgen.concepts.spec import HELD_OUT_SPLITS, load_concepts
from weightgen.diffusion.conditioning import check_conditioning
from weightgen.diffusion.prior import check_prior
from weightgen.errors import ConfigError
from weightgen.finetune.init_kinds import (
    ENSEMBLE_KEYS,
    check_choice_candidates,
    check_ensemble_members,
)
from weightgen.gan.training_options import GAN_MODES, gan_training_options
from weightgen.text.clauses import check_text_view
from weightgen.utils.schedules import DECAYS
from weightgen.weights.store import Shard

_ABSENT = object()


@dataclass(frozen=True)
class Knob:
    """A number the config may hold at ``key``: an int (or any number) in a range."""

    key: str
    low: float
    high: float | None = None
    integer: bool = True
    nullable: bool = False
    open_low: bool = False  # low itself is not allowed
    open_high: bool = False
    meaning: str = ""

    def allowed(self) -> str:
        kind = "an int" if self.integer else "a number"
        if self.high is None:
            bound = f"{'>' if self.open_low else '>='} {self.low:g}"
        else:
            bound = (f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
                     f"{')' if self.open_high else ']'}")
        return f"{'null or ' if self.nullable else ''}{kind} {bound}"

    def fits(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        above = value > self.low if self.open_low else value >= self.low
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below


KNOBS = (
    # concepts and data
    Knob("concepts.n_train", 1, nullable=True, meaning="train concepts to pick (null: all)"),
    Knob("concepts.n_val", 0, nullable=True,
         meaning="validation concepts to pick, where choices are made (null: all)"),
    Knob("concepts.n_test", 0, nullable=True, meaning="held-out concepts to pick (null: all)"),
    Knob("data.size", 4, meaning="crop side in px, a multiple of 4"),
    Knob("data.n_train", 1, meaning="training crops"),
    Knob("data.n_val", 1, meaning="validation crops"),
    Knob("data.batch_size", 1, meaning="crops per training batch, at most data.n_train"),
    Knob("data.max_zoom", 1, integer=False, meaning="crops cover size..size*max_zoom px"),
    # the GAN and its adapters
    Knob("gan.generator.ngf", 1), Knob("gan.generator.heads", 1),
    Knob("gan.generator.mlp_ratio", 0, integer=False, open_low=True),
    Knob("gan.generator.n_res_in", 0), Knob("gan.generator.n_res_out", 0),
    Knob("gan.discriminator.ndf", 1), Knob("gan.discriminator.n_layers", 1),
    Knob("gan.optimizer.lr", 0, integer=False, open_low=True, meaning="the GAN learning rate"),
    Knob("gan.optimizer.weight_decay", 0, integer=False),
    Knob("gan.loss.lambda_l1", 0, integer=False),
    Knob("gan.loss.gan_weight", 0, integer=False),
    Knob("gan.lr_scheduler.decay_start", 0, 1, integer=False),
    Knob("gan.lr_scheduler.warmup_steps", 0, meaning="steps of a linear warm-up (0: none)"),
    Knob("adapter.rank", 1, meaning="LoRA rank"),
    # the dataset builder
    Knob("builder.base_steps", 1, meaning="base GAN steps; 0 would store an untrained base"),
    Knob("builder.adapter_steps", 1, meaning="steps per adapter; 0 would store untrained ones"),
    Knob("builder.base_lr_scheduler.decay_start", 0, 1, integer=False),
    Knob("builder.grid_images", 1, meaning="images in each concept's sample grid"),
    Knob("builder.processes", 1, meaning="worker processes that share the command's adapters"),
    # the tokenizer and the weight generator
    Knob("tokenizer.block_size", 1, meaning="numbers per weight block (paper: 128/256/512)"),
    Knob("tokenizer.basis_rank", 1, nullable=True, meaning="PCA components kept (null: all)"),
    Knob("tokenizer.min_std_ratio", 0, integer=False),
    Knob("diffusion.steps", 1, meaning="generator training steps; 0 would write an untrained "
                                       "generator over the trained one"),
    Knob("diffusion.batch_size", 1),
    Knob("diffusion.optimizer.lr", 0, integer=False, open_low=True),
    Knob("diffusion.optimizer.weight_decay", 0, integer=False),
    Knob("diffusion.lr_scheduler.num_warmup_steps", 0),
    Knob("diffusion.val_every", 1, meaning="steps between validations"),
    Knob("diffusion.val_concepts", 0, meaning="train and held-out concepts generated at each "
                                              "validation"),
    Knob("diffusion.cond_drop_prob", 0, 1, integer=False),
    Knob("diffusion.text_noise", 0, integer=False,
         meaning="noise on the training texts, relative to each vector's RMS (0: off)"),
    Knob("diffusion.examples.k", 0, meaning="example pairs the generator reads (0: text only)"),
    Knob("diffusion.examples.bank", 1, meaning="training pairs per concept encoded before training"),
    Knob("diffusion.examples.drop_prob", 0, 1, integer=False),
    Knob("diffusion.examples.set_width", 0,
         meaning="width of the learned encoder over the pairs (0: their mean alone)"),
    Knob("diffusion.task_loss.weight", 0, integer=False,
         meaning="weight of the generated adapters' L1 through the base GAN (0: off)"),
    Knob("diffusion.task_loss.diffusion_weight", 0, integer=False,
         meaning="weight of the diffusion loss beside the task loss (0: the task loss alone)"),
    Knob("diffusion.task_loss.concepts", 1, meaning="concepts whose adapter is scored per step"),
    Knob("diffusion.task_loss.pairs", 1, meaning="training pairs per concept per step"),
    Knob("diffusion.task_loss.pool", 1, meaning="training pairs per concept loaded once"),
    Knob("diffusion.task_loss.every", 1, meaning="steps between applications of the task loss"),
    Knob("diffusion.ema_decay", 0, 1, integer=False, nullable=True, open_low=True,
         open_high=True, meaning="null turns EMA off"),
    Knob("diffusion.scheduler.num_train_timesteps", 1),
    Knob("diffusion.data.n_concepts", 1, nullable=True,
         meaning="first k train concepts of the store (null: all)"),
    Knob("diffusion.sampling.steps", 1, meaning="denoising steps per generated adapter"),
    Knob("diffusion.sampling.guidance_scale", 0, integer=False),
    Knob("diffusion.prior_folds", 2, meaning="folds by concept of the prior's out-of-fold "
                                             "training residuals"),
    # the benchmark and the studies
    Knob("bench.n_unseen", 1, nullable=True,
         meaning="held-out concepts of bench.split benchmarked (null: all)"),
    Knob("bench.n_seen", 0, meaning="train concepts benchmarked besides"),
    Knob("bench.pix2pix_steps", 1, meaning="pix2pix steps; its final PSNR sets the target"),
    Knob("bench.finetune_steps", 1, meaning="budget of every fine-tuning method"),
    Knob("bench.eval_every", 1, meaning="steps between evaluations"),
    Knob("bench.log_eval_until", 0,
         meaning="evaluations at steps 1, 2, 4, ... up to this step first (0: none)"),
    Knob("bench.profile_max_tau", 2,
         meaning="the performance profile's largest multiple of E2GAN's time"),
    Knob("bench.target_tolerance_db", 0, integer=False),
    Knob("bench.plateau_db", 0, integer=False),
    Knob("bench.controls.k_blend", 1, meaning="training adapters the example-vector blend "
                                               "averages"),
    Knob("bench.controls.seed", 0, meaning="seed of the shuffled example pairs' derangement"),
    Knob("bench.controls.choice.samples", 0,
         meaning="more generator samples the choice on the example pairs scores"),
    Knob("study.n_train_eval", 0, meaning="train concepts scored"),
    Knob("study.finetune_concepts", 1, meaning="held-out concepts fine-tuned"),
    Knob("study.finetune_steps", 1),
    # weightgen-finetune / weightgen-new-concept (0 steps: measure the starting point only)
    Knob("steps", 0, meaning="fine-tuning steps"),
    Knob("eval_every", 1, meaning="steps between evaluations"),
    Knob("pairs_val_fraction", 0, 1, integer=False, open_low=True, open_high=True),
    # the process
    Knob("num_threads", 1, nullable=True, meaning="torch CPU threads (null: torch's default)"),
    Knob("lock_timeout_s", 0, integer=False, nullable=True,
         meaning="seconds to wait for another process building a store (null: as long as it takes)"),
)


# Knobs that take one of a few words (absent keys, e.g. another schedule's, are not checked).
CHOICES = {"gan.loss.gan_mode": GAN_MODES, "gan.lr_scheduler.decay": DECAYS}


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` on the first knob of ``cfg`` that cannot work."""
    for knob in KNOBS:
        _check_knob(knob, OmegaConf.select(cfg, knob.key, default=_ABSENT), knob.key)
    for key, words in CHOICES.items():
        _check_choice(OmegaConf.select(cfg, key, default=_ABSENT), key, words)
    _check_relations(cfg)
    _check_ridge_alphas(_get(cfg, "bench.controls.ridge_alphas"), "bench.controls.ridge_alphas")
    _check_ridge_alphas(_get(cfg, "diffusion.prior_alphas"), "diffusion.prior_alphas")
    candidates = OmegaConf.select(cfg, "bench.controls.choice.candidates", default=_ABSENT)
    if candidates is not _ABSENT:
        check_choice_candidates(candidates)
    for kind, (key, _) in ENSEMBLE_KEYS.items():
        members = OmegaConf.select(cfg, key, default=_ABSENT)
        if members is not _ABSENT:
            check_ensemble_members(kind, members)
    headline = OmegaConf.select(cfg, "bench.headline", default=_ABSENT)
    if headline is not _ABSENT:
        method_named(headline, "bench.headline")  # its ConfigError names the key and the methods
        methods = OmegaConf.select(cfg, "bench.methods", default=None)
        if methods is not None and headline not in methods:
            raise ConfigError(
                f"bench.headline={headline} is not one of bench.methods ({', '.join(methods)}), "
                f"so the summary would headline nothing; add it to bench.methods or set "
                f"bench.headline to one of them"
            )
    gan = _get(cfg, "gan")
    if gan is not None:
        steps = int(_get(cfg, "bench.finetune_steps") or 1)
        _check_gan_training(gan, "gan", steps)
        _check_bench_recipes(cfg, gan, steps)
    split = OmegaConf.select(cfg, "bench.split", default=_ABSENT)
    if split is not _ABSENT and split not in HELD_OUT_SPLITS:
        raise ConfigError(f"bench.split={split!r} is no held-out split: use bench.split=val (where "
                          f"recipes and configurations are chosen) or bench.split=test (reported)")
    if OmegaConf.select(cfg, "concepts.source", default=None) in ("builtin", "file"):
        _check_concept_counts(cfg)


def _check_knob(knob: Knob, value, key: str) -> None:
    """``value`` (``_ABSENT``: not configured) of ``knob``, reported as ``key``."""
    if value is _ABSENT or (value is None and knob.nullable):
        return
    if not knob.fits(value):
        meaning = f" ({knob.meaning})" if knob.meaning else ""
        raise ConfigError(f"{key}={value!r} is not allowed: use {knob.allowed()}{meaning}")


def _check_choice(value, key: str, words: tuple[str, ...]) -> None:
    if value is not _ABSENT and value not in words:
        raise ConfigError(f"{key}={value!r} is not allowed: use one of {', '.join(words)}")


def _check_gan_training(gan, where: str, steps: int) -> None:
    """Build the ``gan`` group's optimiser and LR schedule (``where``: the key they are under)
    once on a stand-in parameter, as every GAN training does: what torch or the schedule refuses
    (a negative rate, bad betas, an unknown keyword) is a ConfigError now, not after work began."""
    try:
        options = gan_training_options(gan)
        optimizer = options["optimizer"]([torch.nn.Parameter(torch.zeros(1))])
    except (InstantiationException, TypeError, ValueError) as err:
        raise ConfigError(f"{where}.optimizer cannot build an optimiser ({err}); fix the "
                          f"values under {where}.optimizer") from err
    try:
        options["lr_scheduler"](optimizer=optimizer, num_training_steps=steps)
    except (InstantiationException, TypeError, ValueError) as err:
        raise ConfigError(f"{where}.lr_scheduler cannot build a schedule ({err}); fix the "
                          f"values under {where}.lr_scheduler") from err


def _check_bench_recipes(cfg: DictConfig, gan: DictConfig, steps: int) -> None:
    """Each ``bench.recipes.<method>`` overrides part of the ``gan`` group for that method's
    fine-tunes: the values it sets pass the same checks as ``gan.*``, named under the recipe."""
    recipes = _get(cfg, "bench.recipes")
    if not isinstance(recipes, DictConfig):
        return  # null; any other shape is refused by the bench stage, naming the form
    for method, recipe in recipes.items():
        if not isinstance(recipe, DictConfig):
            continue
        where = f"bench.recipes.{method}"
        for knob in KNOBS:
            if knob.key.startswith("gan."):
                sub = knob.key.removeprefix("gan.")
                _check_knob(knob, OmegaConf.select(recipe, sub, default=_ABSENT), f"{where}.{sub}")
        for key, words in CHOICES.items():
            sub = key.removeprefix("gan.")
            _check_choice(OmegaConf.select(recipe, sub, default=_ABSENT), f"{where}.{sub}", words)
        merged = OmegaConf.merge(OmegaConf.to_container(gan, resolve=True),
                                 OmegaConf.to_container(recipe, resolve=True))
        _check_gan_training(merged, where, steps)


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=None)


def _check_relations(cfg: DictConfig) -> None:
    """Knobs bounded by other knobs: crop multiple, batch vs crops, checkpoints vs steps."""
    size = _get(cfg, "data.size")
    if size is not None and size % 4:
        raise ConfigError(f"data.size={size} is not a multiple of the generator's stride 4; "
                          f"use e.g. {size - size % 4 or 4}")
    if size is not None and _get(cfg, "gan") is not None:
        _check_crop_side(size, cfg.gan)
    batch, crops = _get(cfg, "data.batch_size"), _get(cfg, "data.n_train")
    if batch is not None and crops is not None and batch > crops:
        raise ConfigError(f"data.batch_size={batch} is more than data.n_train={crops} crops: no "
                          f"full batch, nothing would train; use data.batch_size <= {crops}")
    steps = _get(cfg, "builder.checkpoint_steps")
    adapter_steps = _get(cfg, "builder.adapter_steps")
    if steps is not None and adapter_steps is not None:
        values = list(steps) if isinstance(steps, ListConfig) else steps
        if (not isinstance(values, list) or not values
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in values)
                or len(set(values)) != len(values) or min(values) < 1
                or max(values) != adapter_steps):
            raise ConfigError(
                f"builder.checkpoint_steps={values!r} is not allowed: use distinct ints in "
                f"1..builder.adapter_steps that include builder.adapter_steps={adapter_steps}, "
                f"e.g. [{max(adapter_steps // 2, 1)}, {adapter_steps}]"
            )
    conditioning = _get(cfg, "diffusion.conditioning")
    if conditioning is not None:
        check_conditioning(conditioning)  # its ConfigError names the key and the three modes
    view = _get(cfg, "diffusion.text_view")
    if view is not None:
        check_text_view(view, _get(cfg, "diffusion.clause_words"))
    k, bank = _get(cfg, "diffusion.examples.k"), _get(cfg, "diffusion.examples.bank")
    if k and bank is not None and k > min(bank, crops or bank):
        raise ConfigError(f"diffusion.examples.k={k} is more than the pairs each concept has to "
                          f"draw from (diffusion.examples.bank={bank}, data.n_train={crops}); "
                          f"use diffusion.examples.k <= {min(bank, crops or bank)}")
    set_width = _get(cfg, "diffusion.examples.set_width")
    if set_width and not k:
        raise ConfigError(f"diffusion.examples.set_width={set_width} encodes example pairs, but "
                          f"diffusion.examples.k=0 reads none: set diffusion.examples.k (e.g. 8) "
                          f"or diffusion.examples.set_width=0")
    if (_get(cfg, "diffusion.task_loss.weight") or 0) > 0:
        _check_task_loss(cfg)
    _check_prior(cfg)
    shard = _get(cfg, "builder.shard")
    if shard is not None:
        Shard.parse(shard)  # its ConfigError names builder.shard and the form it takes
    sampling, timesteps = (_get(cfg, "diffusion.sampling.steps"),
                           _get(cfg, "diffusion.scheduler.num_train_timesteps"))
    if sampling is not None and timesteps is not None and sampling > timesteps:
        raise ConfigError(f"diffusion.sampling.steps={sampling} is more than the "
                          f"{timesteps} noise levels (diffusion.scheduler.num_train_timesteps); "
                          f"use 1..{timesteps}")


def _check_crop_side(size: int, gan: DictConfig) -> None:
    """``data.size`` against the smallest side each configured network trains on (a 4 px crop
    passed the stride check and failed in the base GAN's first step)."""
    for group in ("generator", "discriminator"):
        config = OmegaConf.to_container(gan[group], resolve=True)
        network = get_class(config.pop("_target_"))
        smallest = getattr(network, "smallest_side", None)
        if smallest is None:
            continue
        side = -(-smallest(**config) // 4) * 4  # a multiple of the generator's stride
        if size < side:
            shape = (f" with gan.discriminator.n_layers={config['n_layers']}"
                     if "n_layers" in config else "")
            raise ConfigError(
                f"data.size={size} is smaller than the {group} ({network.__name__}{shape}) "
                f"trains on: use data.size >= {side} (a multiple of 4)"
                + (", or fewer gan.discriminator.n_layers" if shape else "")
            )


def _check_ridge_alphas(alphas, key: str) -> None:
    """A ridge grid (the controls', the prior's at ``key``): a non-empty list of positive
    numbers (or absent)."""
    if alphas is not None and (
            not isinstance(alphas, ListConfig) or not alphas
            or not all(isinstance(a, int | float) and not isinstance(a, bool) and a > 0
                       for a in alphas)):
        raise ConfigError(f"{key}={alphas!r} is not allowed: use a non-empty list of positive "
                          f"numbers, e.g. [0.01, 0.1, 1.0]")


def _check_prior(cfg: DictConfig) -> None:
    """``diffusion.prior``: a known kind; the examples prior reads example pairs; the task loss
    scores what the denoiser makes, not the prior's prediction plus it."""
    prior = check_prior(_get(cfg, "diffusion.prior"))
    if prior == "examples_ridge" and not _get(cfg, "diffusion.examples.k"):
        raise ConfigError("diffusion.prior=examples_ridge reads the example pairs, but "
                          "diffusion.examples.k=0 (text only): set diffusion.examples.k > 0 (e.g. "
                          "diffusion.examples.k=8) or diffusion.prior=text_ridge")
    if prior and (_get(cfg, "diffusion.task_loss.weight") or 0) > 0:
        raise ConfigError("diffusion.task_loss does not add diffusion.prior's prediction to the "
                          "adapters it scores: set diffusion.task_loss.weight=0 or "
                          "diffusion.prior=null")


def _check_task_loss(cfg: DictConfig) -> None:
    """The task loss scores sample predictions of full-delta adapters on cached training pairs."""
    task = cfg.diffusion.task_loss  # its timestep is checked where the loss is built (torch)
    prediction = _get(cfg, "diffusion.scheduler.prediction_type")
    if prediction != "sample":
        raise ConfigError(f"diffusion.task_loss needs diffusion.scheduler.prediction_type=sample "
                          f"(the prediction is then the adapter it scores), not {prediction!r}; "
                          f"set diffusion.scheduler.prediction_type=sample or "
                          f"diffusion.task_loss.weight=0")
    adapter = str(_get(cfg, "adapter._target_") or "")
    if not adapter.endswith("FullDeltaAdapter"):
        raise ConfigError(f"diffusion.task_loss supports full-delta adapters only (adapter=full), "
                          f"not {adapter or 'no adapter'}: a LoRA factor is not a delta of a "
                          f"base weight; use adapter=full or diffusion.task_loss.weight=0")
    crops = _get(cfg, "data.n_train")
    if crops is not None and task.pool > crops:
        raise ConfigError(f"diffusion.task_loss.pool={task.pool} is more than data.n_train="
                          f"{crops} training pairs per concept; use at most {crops}")
    if task.pairs > task.pool:
        raise ConfigError(f"diffusion.task_loss.pairs={task.pairs} is more than its pool of "
                          f"{task.pool} (diffusion.task_loss.pool); use at most {task.pool}")


def _check_concept_counts(cfg: DictConfig) -> None:
    """Counts that pick concepts must not ask for more than the concept set holds."""
    spec = cfg.concepts
    pool = builtin_concepts() if spec.source == "builtin" else load_concepts(spec.path)
    train_pool, val_pool, test_pool = (len(part) for part in split_concepts(pool))
    for key, value, available, split in (
            ("concepts.n_train", spec.n_train, train_pool, "train"),
            ("concepts.n_val", spec.n_val, val_pool, "validation"),
            ("concepts.n_test", spec.n_test, test_pool, "held-out test")):
        if value is not None and value > available:
            raise ConfigError(f"{key}={value} is more than the {available} {split} concepts of "
                              f"concepts={spec.source}; use at most {available} (or null: all)")


def check_pick(key: str, value: int, available: int, picked_by: str) -> None:
    """A stage's count of the run's concepts (``bench.n_unseen``, ...) must not exceed them.

    Checked by the stage that picks them, before its work: other stages do not use the knob, so
    a run with fewer concepts is not refused for it.
    """
    if value > available:
        raise ConfigError(f"{key}={value} is more than the run's {available} concepts "
                          f"({picked_by}); use at most {available}, or pick more concepts")
