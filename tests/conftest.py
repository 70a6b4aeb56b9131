"""Shared test set-up: one torch thread (tiny tensors; no oversubscription when jobs share cores)."""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402

torch.set_num_threads(1)
