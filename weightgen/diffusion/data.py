"""Weight blocks as a data set: item = (one block of one stored adapter, its index, its concept)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset


class WeightBlocksDataset(Dataset):
    """``blocks`` [R, num_blocks, block_size] float32 (R adapters); ``concepts`` [R] text indices."""

    def __init__(self, blocks: torch.Tensor, concepts: torch.Tensor):
        if blocks.ndim != 3 or blocks.shape[0] != concepts.shape[0]:
            raise ValueError(
                f"blocks {tuple(blocks.shape)} must be [R, num_blocks, block_size] with one concept "
                f"index per adapter (got {tuple(concepts.shape)})"
            )
        self.blocks, self.concepts = blocks, concepts

    def __len__(self) -> int:
        return self.blocks.shape[0] * self.blocks.shape[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row, block = divmod(index, self.blocks.shape[1])
        return {
            "blocks": self.blocks[row, block],
            "block_index": torch.tensor(block),
            "concept": self.concepts[row],
        }


class WeightBlocksDataModule(L.LightningDataModule):
    """Shuffled training blocks; a fixed seeded subset of them for the validation loss."""

    def __init__(self, dataset: WeightBlocksDataset, batch_size: int = 64, val_items: int = 512,
                 seed: int = 0):
        super().__init__()
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        generator = torch.Generator().manual_seed(seed)
        count = min(val_items, len(dataset))
        self.val_indices = torch.randperm(len(dataset), generator=generator)[:count].tolist()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=True,
            drop_last=len(self.dataset) >= self.batch_size,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(Subset(self.dataset, self.val_indices), batch_size=self.batch_size)
