"""LightningDataModule over the pair cache: one concept (adapters, fine-tuning) or many (the base)."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from weightgen.data.pairs import PairStore


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,H,W] in [-1, 1], the networks' range."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


class ConceptPairsDataset(Dataset):
    """Item ``i`` is crop ``i % N`` edited by concept ``i // N``; random horizontal flips.

    Sources are shared by all concepts, so they are held once; every edit in the procedural set
    commutes with a horizontal flip, so flipping source and target together keeps the pair exact.
    """

    def __init__(self, sources: torch.Tensor, targets: torch.Tensor, flip: bool, seed: int = 0):
        self.sources, self.targets, self.flip = sources, targets, flip
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.targets.shape[0] * self.targets.shape[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        concept, crop = divmod(index, self.sources.shape[0])
        source, target = self.sources[crop], self.targets[concept, crop]
        if self.flip and torch.rand((), generator=self.generator) < 0.5:
            source, target = source.flip(-1), target.flip(-1)
        return {"source": source, "target": target, "concept": torch.tensor(concept)}


class PairsDataModule(L.LightningDataModule):
    """Train/val loaders for ``concept_ids``; ``concept`` in a batch indexes that list."""

    def __init__(
        self,
        pairs_dir: str,
        concept_ids: Sequence[str],
        batch_size: int = 8,
        val_batch_size: int = 32,
        flip: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if not concept_ids:
            raise ValueError("PairsDataModule needs at least one concept id")
        self.store = PairStore(pairs_dir)
        self.concept_ids = list(concept_ids)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.flip, self.seed = flip, seed
        self.train_set: ConceptPairsDataset | None = None
        self.val_set: ConceptPairsDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        pairs = [self.store.load(c) for c in self.concept_ids]
        self.train_set = ConceptPairsDataset(
            images_to_tensor(pairs[0].train_source),
            torch.stack([images_to_tensor(p.train_target) for p in pairs]),
            flip=self.flip,
            seed=self.seed,
        )
        self.val_set = ConceptPairsDataset(
            images_to_tensor(pairs[0].val_source),
            torch.stack([images_to_tensor(p.val_target) for p in pairs]),
            flip=False,
        )

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
            generator=generator,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.val_batch_size, shuffle=False)
