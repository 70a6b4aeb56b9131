"""What a run prints: by default progress bars, weightgen's own lines and the closing summary;
with ``verbose=true`` every library's banners, tips and advisory warnings as well.

Each noisy line is switched off where it comes from, here and nowhere else:

- Lightning's INFO loggers: "GPU available / TPU available", "💡 Tip: ...", "Seed set to 0",
  "`Trainer.fit` stopped", once per adapter and per benchmark run;
- Lightning's ``PossibleUserWarning`` (e.g. fewer batches per epoch than ``log_every_n_steps``,
  harmless for step-budgeted stages) and torch's ``LeafSpec`` deprecation that Lightning triggers;
- transformers' "Loading weights" bar for the text encoder;
- W&B's terminal output (run banner, history, sync hint) through ``wandb.Settings(silent=...)``.

W&B's "git root ... does not exist" and "anonymous setting has no effect" warnings are fixed
rather than hidden: see :func:`wandb_settings` and :func:`drop_unset_anonymous`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import transformers
from lightning.fabric.utilities.warnings import PossibleUserWarning

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")

ADVISORY_WARNINGS = (
    {"category": PossibleUserWarning},
    {"category": FutureWarning, "message": r"`isinstance\(treespec, LeafSpec\)` is deprecated"},
)

# The checkout weightgen runs from: W&B records its git commit (W&B otherwise probes the log
# folder, which is no repository, and warns).
CODE_ROOT = Path(__file__).resolve().parents[1]


def configure_console(verbose: bool) -> None:
    """Quiet (default) or verbose library output for this process; the last call wins."""
    level = logging.INFO if verbose else logging.WARNING
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for spec in ADVISORY_WARNINGS:
        warnings.filterwarnings("default" if verbose else "ignore", **spec)
    if verbose:
        transformers.utils.logging.enable_progress_bar()
    else:
        transformers.utils.logging.disable_progress_bar()


def wandb_settings(verbose: bool):
    """W&B prints nothing to the terminal unless verbose; git info comes from the code's checkout."""
    import wandb  # only runs that log to W&B pay for its import

    return wandb.Settings(silent=not verbose, git_root=str(CODE_ROOT))


def drop_unset_anonymous(logger) -> None:
    """Lightning's WandbLogger always passes ``anonymous=None`` to ``wandb.init``, which current
    W&B answers with a deprecation warning; an unset value is dropped before the run starts."""
    init_kwargs = getattr(logger, "_wandb_init", {})
    if init_kwargs.get("anonymous", "set") is None:
        del init_kwargs["anonymous"]
