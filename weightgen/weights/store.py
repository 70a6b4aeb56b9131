"""The weight store: trained adapters as a data set (a contract: docs/ARCHITECTURE.md 3.3).

Layout of ``root``::

    <concept_id>/step_<step>.safetensors     one adapter checkpoint
    manifest.shard-<i>-of-<n>.jsonl          rows written by shard i of an n-way build
    manifest.jsonl                           the merged manifest that later stages read

A row: ``concept``, ``prompt``, ``split``, ``step``, ``psnr``, ``ssim`` (validation quality at
that step), ``file`` (relative to root), ``sha256``, ``adapter`` (kind), ``phrasings`` (the
concept's training prompts, ``prompt`` first), where the concept has one ``heldout_phrasing``
(its wording that generator training never uses; stores built before phrasings were recorded
lack both), and what the adapter was trained from: ``base_sha256`` (the base GAN's generator
file), ``pairs_sha256`` (the concept's pairs, :meth:`weightgen.data.pairs.PairStore.fingerprints`)
and ``texts_sha256`` (its prompt, phrasings and held-out phrasing,
:mod:`weightgen.concepts.text_fingerprints`).
Shards of a build write disjoint concepts into the same folder, each to its own manifest part, so
no two processes ever write one file; ``merge`` joins the parts and checks that the store is
complete.

A resumed build trusts a concept only when :meth:`WeightStore.verified_concepts` says so: every
checkpoint listed, every file present with its sha256, trained on the base, pairs and texts of
now.
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
    sha256_file,
)

MANIFEST = "manifest.jsonl"
# Row keys naming what an adapter was trained from (checked on resume and by later stages):
# key -> (what it fingerprints, what differs when it does not match).
INPUT_KEYS = {"base_sha256": ("base GAN", "another base GAN"),
              "pairs_sha256": ("pairs", "other pairs"),
              "texts_sha256": ("texts", "other texts (prompt, phrasings)"),
              "recipe_sha256": ("training recipe", "another training recipe (builder.adapter_steps, "
                                "builder.adapter_recipe, the gan group's optimiser, schedule or loss)")}


def inputs_mismatch(rows: list[dict], inputs: Mapping[str, str | None]) -> str | None:
    """Why one concept's rows were not trained from ``inputs`` (:data:`INPUT_KEYS` -> the
    run's fingerprint of now), or None: the one rule the resume and the store's readers share."""
    for key, value in inputs.items():
        recorded = {r.get(key) for r in rows}
        what, other = INPUT_KEYS[key]
        if recorded == {None}:
            return f"it records no {what} fingerprint (an older weightgen built it)"
        if recorded != {value}:
            return f"it was trained on {other} than this run's"
    return None
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
        inputs: Mapping[str, str],
    ) -> dict:
        """Write one checkpoint file, then its row (both atomically); returns the row.

        ``inputs`` holds the :data:`INPUT_KEYS` fingerprints the adapter was trained from.
        """
        if set(inputs) != set(INPUT_KEYS):
            raise ValueError(f"a store row records exactly {sorted(INPUT_KEYS)}, got {sorted(inputs)}")
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
            "phrasings": list(concept.phrasings),
        } | dict(inputs)
        if concept.heldout_phrasing is not None:
            row["heldout_phrasing"] = concept.heldout_phrasing
        rows = [r for r in self.part_rows(shard) if (r["concept"], r["step"]) != (concept.id, step)]
        atomic_write_jsonl(self._part_path(shard), rows + [row])
        return row

    def drop_concept(self, concept_id: str) -> None:
        """Forget a concept's rows in every part (an interrupted or stale concept is redone
        whole, so its checkpoints agree, and a part of an earlier sharding keeps no old copy)."""
        for path in self._part_paths():
            rows = read_jsonl(path)
            kept = [r for r in rows if r["concept"] != concept_id]
            if len(kept) != len(rows):
                atomic_write_jsonl(path, kept)

    def unmerge(self) -> None:
        """Drop the merged manifest: it lists adapters about to be retrained (merge rewrites it)."""
        (self.root / MANIFEST).unlink(missing_ok=True)

    def lock_path(self, shard: Shard | None = None) -> Path:
        """The lock file of a shard's part (shards build in parallel), or of the merge."""
        return self.root / f".{shard.part_name if shard else MANIFEST}.lock"

    def rows(self) -> list[dict]:
        """The merged manifest if present, else every shard part (a build in progress)."""
        merged = self.root / MANIFEST
        return read_jsonl(merged) if merged.is_file() else self.all_part_rows()

    def _part_paths(self) -> list[Path]:
        """Every shard part of the store (of any sharding), in name order."""
        return [path for path in sorted(self.root.glob("manifest.shard-*-of-*.jsonl"))
                if _SHARD_PART.fullmatch(path.name)]

    def verified_concepts(
        self, steps: Iterable[int], inputs: Mapping[str, Mapping[str, str]]
    ) -> tuple[set[str], dict[str, str]]:
        """(concepts a resumed build can keep, why each other complete concept cannot).

        A concept is kept when one shard part, whatever its sharding, lists every checkpoint
        step (so a build resumed under another sharding reuses finished concepts), each listed
        file exists with its sha256, and the rows record ``inputs[concept]`` (the base, pairs and
        texts it would be trained from now). Concepts with steps missing are simply not complete.
        """
        wanted, kept, rejected = set(steps), set(), {}
        for path in self._part_paths():
            by_concept: dict[str, list[dict]] = {}
            for row in read_jsonl(path):
                by_concept.setdefault(row["concept"], []).append(row)
            for concept, rows in by_concept.items():
                if not wanted <= {r["step"] for r in rows}:
                    continue
                kept_rows = [r for r in rows if r["step"] in wanted]
                problem = self._missing_or_damaged(kept_rows) or inputs_mismatch(
                    kept_rows, inputs.get(concept, {})
                )
                if problem:
                    rejected[concept] = problem
                else:
                    kept.add(concept)
        return kept, {c: why for c, why in rejected.items() if c not in kept}

    def _missing_or_damaged(self, rows: list[dict]) -> str | None:
        """Which of these checkpoint rows' files is missing or fails its sha256, or None."""
        for row in rows:
            path = self.root / row["file"]
            if not path.is_file():
                return f"{path} is missing"
            if sha256_file(path) != row["sha256"]:
                return f"{path} is damaged (its sha256 differs from the manifest's)"
        return None

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
