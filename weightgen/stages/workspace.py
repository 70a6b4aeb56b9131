"""What every stage of a run shares, built lazily from the composed config.

A stage asks its ``Workspace`` for the concepts, the text encoder, the pair cache, the stores and
the loggers; nothing is global, and a test can build one from a shrunken config.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from functools import cached_property
from pathlib import Path

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from weightgen.concepts.catalog import builtin_concepts, select_concepts, train_pick_order
from weightgen.concepts.spec import Concept, load_concepts
from weightgen.console import configure_console, drop_unset_anonymous, wandb_settings
from weightgen.data.pairs import PairStore
from weightgen.errors import ConfigError, UnknownConceptError
from weightgen.text.base import TextEmbedding, TextEncoder
from weightgen.text.clauses import generator_text_encoder
from weightgen.utils.io import atomic_write_text
from weightgen.utils.threads import use_threads
from weightgen.weights.store import WeightStore

log = logging.getLogger(__name__)


class Workspace:
    def __init__(self, cfg: DictConfig, text_encoder: TextEncoder | None = None):
        """``text_encoder``: one already loaded for ``cfg.text_encoder``, so callers that build
        several workspaces (tests, sweeps in one process) load the model once."""
        self.cfg = cfg
        self.run_dir = Path(cfg.paths.run_dir)
        if text_encoder is not None:
            configured = get_class(cfg.text_encoder._target_)
            if not isinstance(text_encoder, configured) or (
                text_encoder.max_length != cfg.text_encoder.max_length
            ):
                raise ValueError(
                    f"the given text encoder {text_encoder.config()} is not the configured "
                    f"{OmegaConf.to_container(cfg.text_encoder)}; build it from cfg.text_encoder"
                )
            self.text_encoder = text_encoder  # takes the place of the cached_property below
        self.verbose = bool(cfg.verbose)
        configure_console(self.verbose)
        use_threads(cfg.num_threads)

    # --- concepts -------------------------------------------------------------------------
    @cached_property
    def concepts(self) -> list[Concept]:
        """The run's concepts: train picks then test picks (``concepts`` config group)."""
        spec = self.cfg.concepts
        return select_concepts(self._pool, spec.n_train, spec.n_test, spec.seed, spec.n_val)

    @cached_property
    def _pool(self) -> list[Concept]:
        """Every concept of the ``concepts`` source, before the selection."""
        spec = self.cfg.concepts
        if spec.source == "builtin":
            return builtin_concepts()
        if spec.source == "file":
            return load_concepts(spec.path)
        raise ConfigError(f"concepts.source={spec.source!r}: use builtin or file")

    @property
    def train_concepts(self) -> list[Concept]:
        return [c for c in self.concepts if c.split == "train"]

    @cached_property
    def train_pick_order(self) -> list[str]:
        """The run's train concept ids in the order the selection picks them (a prefix of k is
        the train set of ``concepts.n_train=k``: ``diffusion.data.n_concepts`` takes one)."""
        spec, run = self.cfg.concepts, {c.id for c in self.train_concepts}
        order = train_pick_order(self._pool, spec.n_test, spec.seed, spec.n_val)
        return [c for c in order if c in run]

    def first_train_concepts(self, count: int) -> list[Concept]:
        """The first ``count`` train concepts in pick order: those every
        ``diffusion.data.n_concepts`` of at least ``count`` trains on (where a stage checks how
        well the generator fits its own data)."""
        by_id = {c.id: c for c in self.train_concepts}
        return [by_id[concept_id] for concept_id in self.train_pick_order[:count]]

    @property
    def val_concepts(self) -> list[Concept]:
        """Held out from the generator; where choices are made by looking at results."""
        return [c for c in self.concepts if c.split == "val"]

    @property
    def test_concepts(self) -> list[Concept]:
        return [c for c in self.concepts if c.split == "test"]

    def held_out_of(self, split: str) -> list[Concept]:
        """The held-out concepts of ``split`` (``val`` or ``test``: ``bench.split``)."""
        return self.val_concepts if split == "val" else self.test_concepts

    @property
    def held_out_concepts(self) -> list[Concept]:
        """Every concept the generator never trains on (val and test)."""
        return [c for c in self.concepts if c.held_out]

    def concept(self, concept_id: str) -> Concept:
        for concept in self.concepts:
            if concept.id == concept_id:
                return concept
        raise UnknownConceptError(f"concept {concept_id!r} is not in this run's concept set")

    # --- text -----------------------------------------------------------------------------
    @cached_property
    def text_encoder(self) -> TextEncoder:
        return instantiate(self.cfg.text_encoder, cache_dir=self.cfg.paths.text_cache_dir)

    def embed(self, prompts: list[str]) -> TextEmbedding:
        return self.text_encoder.encode(list(prompts))

    @cached_property
    def generator_text(self) -> TextEncoder:
        """The text encoder as the weight generator reads prompts (``diffusion.text_view``: the
        GAN's encoder itself, or its clauses view); the GAN always reads :meth:`embed`'s."""
        return generator_text_encoder(self.text_encoder, self.cfg.diffusion.text_view,
                                      self.cfg.diffusion.clause_words)

    # --- data -----------------------------------------------------------------------------
    @property
    def pair_store(self) -> PairStore:
        return PairStore(self.cfg.paths.pairs_dir, self.lock_timeout_s)

    @property
    def artifact_folders(self) -> dict[str, Path]:
        """The run's own folders by key (``paths.*`` but the artifacts root, which holds other
        runs and outputs besides): the run's artifacts, which no user output may replace."""
        return {f"paths.{key}": Path(folder) for key, folder in self.cfg.paths.items()
                if key != "artifacts"}

    # --- weights --------------------------------------------------------------------------
    @property
    def lock_timeout_s(self) -> float | None:
        """How long a stage waits for another process building the same store (None: forever)."""
        return self.cfg.lock_timeout_s

    @property
    def weight_store(self) -> WeightStore:
        return WeightStore(self.cfg.paths.weights_dir)

    # --- logging --------------------------------------------------------------------------
    def loggers(self, stage: str, csv_dir: str | Path | None = None,
                label: str | None = None) -> list:
        """The configured Lightning loggers, one W&B group per run, one job name per stage.

        Each W&B run holds the resolved config, so W&B can group, filter and compare runs by any
        setting. ``label`` tells apart the runs of one stage (a study's jobs); ``csv_dir`` puts
        the CSV log beside a stage's own artifacts (several generators trained side by side on
        one workspace must not share, and clobber, one CSV file). Each command's CSV log is a
        folder of its own, ``<stage>-<time>``: a rerun never writes over an earlier log (Lightning
        would delete its metrics, with a warning, on reusing the folder).
        """
        loggers = []
        for name, spec in self.cfg.logger.items():
            if name == "wandb":
                loggers.append(self._wandb_logger(spec, stage, label))
            elif name == "csv":
                kwargs = {"version": f"{stage}-{datetime.now():%Y-%m-%d_%H-%M-%S.%f}"}
                if csv_dir is not None:
                    kwargs["save_dir"] = str(csv_dir)
                loggers.append(instantiate(spec, **kwargs))
            else:
                loggers.append(instantiate(spec))
        return loggers

    def _wandb_logger(self, spec: DictConfig, stage: str, label: str | None):
        kwargs = {"name": "/".join(filter(None, (self.cfg.run_name, stage, label))),
                  "job_type": stage, "settings": wandb_settings(self.verbose)}
        if spec.group is None:
            kwargs["group"] = self.cfg.wandb_group or self.cfg.run_name
        # The run config goes past instantiate: the config's own _target_ nodes must stay data.
        make = instantiate(spec, _partial_=True, **kwargs)
        logger = make(config=OmegaConf.to_container(self.cfg, resolve=True))
        drop_unset_anonymous(logger)
        return logger

    def save_config(self, stage: str) -> None:
        """The resolved config of each stage, beside its artifacts, for whoever reads them later."""
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:  # one writer under DDP
            atomic_write_text(self.run_dir / "configs" / f"{stage}.yaml",
                              OmegaConf.to_yaml(self.cfg, resolve=True))


def finish_loggers(loggers: list) -> None:
    """Close W&B runs so the next multirun job in this process starts its own run."""
    for logger in loggers:
        logger.finalize("success")
        experiment = getattr(logger, "_experiment", None)
        if experiment is not None and hasattr(experiment, "finish"):
            experiment.finish()

