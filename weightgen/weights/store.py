"""The weight store: trained adapters as a data set (DESIGN.md section 6, a contract).

Layout of ``root``::

    <concept_id>/step_<step>.safetensors     one adapter checkpoint
    manifest.shard-<i>-of-<n>.jsonl          rows written by shard i of an n-way build
    manifest.jsonl                           the merged manifest that later stages read

A row: ``concept``, ``prompt``, ``split``, ``step``, ``psnr``, ``ssim`` (validation quality at
that step), ``file`` (relative to root), ``sha256``, ``adapter`` (kind). Shards of a build write
disjoint concepts into the same folder, each to its own manifest part, so no two processes ever
write one file; ``merge`` joins the parts and checks that the store is complete.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from weightgen.errors import ConfigError, IncompleteStoreError, MissingInputError
from weightgen.utils.io import (
    atomic_save_safetensors,
    atomic_write_jsonl,
    load_safetensors,
    read_jsonl,
)

MANIFEST = "manifest.jsonl"
_SHARD_PART = re.compile(r"manifest\.shard-(\d+)-of-(\d+)\.jsonl")


@dataclass(frozen=True)
class Shard:
    """``index`` of ``count``: concepts ``index, index + count, ...`` of the sorted concept list."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | int) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise ConfigError(
                f"builder.shard={text!r}: write it as i/n with 0 <= i < n, e.g. builder.shard=0/4"
            )
        return cls(int(match[1]), int(match[2]))

    def select(self, items: Iterable) -> list:
        return [x for i, x in enumerate(items) if i % self.count == self.index]

    @property
    def part_name(self) -> str:
        return f"manifest.shard-{self.index}-of-{self.count}.jsonl"


class WeightStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _part_path(self, shard: Shard) -> Path:
        return self.root / shard.part_name

    def part_rows(self, shard: Shard) -> list[dict]:
        path = self._part_path(shard)
        return read_jsonl(path) if path.is_file() else []

    def put(
        self,
        shard: Shard,
        concept,
        step: int,
        tensors: Mapping[str, torch.Tensor],
        metrics: Mapping[str, float],
        adapter_kind: str,
    ) -> dict:
        """Write one checkpoint file, then its row (both atomically); returns the row."""
        relative = f"{concept.id}/step_{step:06d}.safetensors"
        sha = atomic_save_safetensors(tensors, self.root / relative, {"concept": concept.id})
        row = {
            "concept": concept.id,
            "prompt": concept.prompt,
            "split": concept.split,
            "step": int(step),
            "psnr": float(metrics["psnr"]),
            "ssim": float(metrics["ssim"]),
            "file": relative,
            "sha256": sha,
            "adapter": adapter_kind,
        }
        rows = [r for r in self.part_rows(shard) if (r["concept"], r["step"]) != (concept.id, step)]
        atomic_write_jsonl(self._part_path(shard), rows + [row])
        return row

    def drop_concept(self, shard: Shard, concept_id: str) -> None:
        """Forget a concept's rows (an interrupted run is redone whole, so checkpoints agree)."""
        rows = self.part_rows(shard)
        kept = [r for r in rows if r["concept"] != concept_id]
        if len(kept) != len(rows):
            atomic_write_jsonl(self._part_path(shard), kept)

    def rows(self) -> list[dict]:
        """The merged manifest if present, else every shard part (a build in progress)."""
        merged = self.root / MANIFEST
        return read_jsonl(merged) if merged.is_file() else self.all_part_rows()

    def _part_paths(self) -> list[Path]:
        """Every shard part of the store (of any sharding), in name order."""
        return [path for path in sorted(self.root.glob("manifest.shard-*-of-*.jsonl"))
                if _SHARD_PART.fullmatch(path.name)]

    def complete_concepts(self, steps: Iterable[int]) -> set[str]:
        """Concepts one shard part holds every checkpoint step of, whatever its sharding.

        So a build resumed under another sharding (``builder.stage=all`` after ``shard=i/n``
        jobs, or the other way round) reuses finished concepts instead of training them again.
        """
        wanted, complete = set(steps), set()
        for path in self._part_paths():
            have: dict[str, set[int]] = {}
            for row in read_jsonl(path):
                have.setdefault(row["concept"], set()).add(row["step"])
            complete |= {concept for concept, got in have.items() if wanted <= got}
        return complete

    def all_part_rows(self) -> list[dict]:
        """Rows of every shard part, sorted by (concept, step)."""
        rows = []
        for path in self._part_paths():
            rows += read_jsonl(path)
        if not rows:
            raise MissingInputError(
                f"no weight store at {self.root}; build it with `make dataset` (weightgen-dataset)"
            )
        return sorted(rows, key=lambda r: (r["concept"], r["step"]))

    def final_rows(self) -> list[dict]:
        """The last checkpoint of every concept, sorted by concept."""
        final: dict[str, dict] = {}
        for row in self.rows():
            if row["concept"] not in final or row["step"] > final[row["concept"]]["step"]:
                final[row["concept"]] = row
        return [final[c] for c in sorted(final)]

    def load(self, row: Mapping) -> dict[str, torch.Tensor]:
        """An adapter's tensors, sha256-verified: damage is an error naming the file."""
        return load_safetensors(self.root / row["file"], row["sha256"])

    def merge(self, expected_steps: Mapping[str, Iterable[int]]) -> list[dict]:
        """Join shard parts into ``manifest.jsonl``; every expected (concept, step) must be there."""
        expected = {c: set(steps) for c, steps in expected_steps.items()}
        rows, seen = [], {}
        for path in self._part_paths():
            for row in read_jsonl(path):
                key = (row["concept"], row["step"])
                if key in seen:
                    raise IncompleteStoreError(
                        f"{row['concept']} step {row['step']} is listed in both {seen[key]} and "
                        f"{path.name} (a build resumed with another sharding?); delete the stale "
                        f"manifest part and rerun its shard"
                    )
                seen[key] = path.name
                if row["step"] in expected.get(row["concept"], ()):
                    rows.append(row)
        rows.sort(key=lambda r: (r["concept"], r["step"]))
        have = set(seen)
        missing = {
            concept: sorted(set(steps) - {s for c, s in have if c == concept})
            for concept, steps in expected_steps.items()
        }
        missing = {c: s for c, s in missing.items() if s}
        if missing:
            sample = dict(list(missing.items())[:5])
            raise IncompleteStoreError(
                f"weight store {self.root} misses checkpoints for {len(missing)} concepts "
                f"(e.g. {sample}); rerun the shards that build them (weightgen-dataset "
                f"builder.stage=adapters builder.shard=i/n), then merge again "
                f"(weightgen-dataset builder.stage=merge)"
            )
        for row in rows:
            if not (self.root / row["file"]).is_file():
                raise IncompleteStoreError(f"{self.root / row['file']} is listed but missing")
        atomic_write_jsonl(self.root / MANIFEST, rows)
        return rows
