"""The paired-data cache: (source, target) crops per concept, built once, read by every stage.

Layout of ``root``::

    sources.safetensors        train/val source crops (uint8 [N,S,S,3]), shared by all concepts
    targets/<concept>.safetensors   train/val edited crops of that concept
    manifest.json              the data settings and, per concept, prompt, split, file, sha256

Building is resumable: a concept whose file is listed with a matching sha256 and recipe is
skipped, so a killed build continues where it stopped; a missing or damaged sources file is made
again (and every concept with it, should the new crops differ). Every file is written atomically,
under a lock that keeps a second builder of the same cache waiting. :class:`PairStore` is the only
writer of this layout: the run's cache (``build``) and a store of ready-made crops
(``write_crops``, e.g. a user's folder of pairs) go through the same code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from weightgen.data.sources import Photo, random_crops
from weightgen.errors import ConfigError, MissingInputError, UnknownConceptError
from weightgen.utils.differences import describe, differences
from weightgen.utils.grid import save_grid
from weightgen.utils.io import (
    atomic_save_safetensors,
    atomic_write_json,
    load_safetensors,
    sha256_bytes,
    sha256_file,
)
from weightgen.utils.locks import lock_beside, store_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairSettings:
    """What the crops depend on; a cache built with other settings is never silently reused."""

    size: int = 64
    n_train: int = 256
    n_val: int = 32
    seed: int = 0
    max_zoom: float = 3.0
    photos: str = "bundled"


@dataclass
class ConceptPairs:
    """uint8 [N,S,S,3] arrays of one concept."""

    train_source: np.ndarray
    train_target: np.ndarray
    val_source: np.ndarray
    val_target: np.ndarray


def settings_record(settings: PairSettings, train_photos: Sequence[str],
                    val_photos: Sequence[str]) -> dict:
    """The manifest's ``settings``: the crop settings and the photos (names) each split used."""
    return asdict(settings) | {"train_photos": list(train_photos), "val_photos": list(val_photos)}


def concept_fingerprint(concept) -> str:
    """What a concept's targets depend on besides the sources: its recipe or instruction."""
    recipe = getattr(concept, "recipe", None)
    return json.dumps(
        {"recipe": [dict(step) for step in recipe] if recipe else None,
         "instruction": getattr(concept, "instruction", None)},
        sort_keys=True,
    )


class PairStore:
    def __init__(self, root: str | Path, lock_timeout_s: float | None = None):
        self.root = Path(root)
        self.lock_timeout_s = lock_timeout_s

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        if not self.manifest_path.is_file():
            raise MissingInputError(
                f"no pair cache at {self.root}; build it first (`make pairs` or weightgen-pairs)"
            )
        return json.loads(self.manifest_path.read_text())

    def _target_path(self, concept_id: str) -> Path:
        return self.root / "targets" / f"{concept_id}.safetensors"

    @property
    def _sources_path(self) -> Path:
        return self.root / "sources.safetensors"

    def fingerprints(self, concept_ids: Sequence[str]) -> dict[str, str | None]:
        """Per concept, a sha256 of the exact pairs it has now (sources + targets); None if none."""
        manifest = self.manifest()
        entries = manifest["concepts"]
        return {
            concept_id: sha256_bytes(
                f"{manifest['sources_sha256']}:{entries[concept_id]['sha256']}".encode()
            ) if concept_id in entries else None
            for concept_id in concept_ids
        }

    def build(
        self,
        concepts: Sequence,
        editor,
        settings: PairSettings,
        train_photos: list[Photo],
        val_photos: list[Photo],
        progress: bool = True,
    ) -> dict:
        """Make (or complete) the cache for ``concepts``; returns the manifest."""
        with store_lock(lock_beside(self.root), f"the pair cache {self.root}",
                        self.lock_timeout_s):
            return self._build(concepts, editor, settings, train_photos, val_photos, progress)

    def _build(self, concepts, editor, settings, train_photos, val_photos, progress) -> dict:
        manifest = self._open_or_create(settings, train_photos, val_photos)
        sources = load_safetensors(self._sources_path, manifest["sources_sha256"])
        for concept in tqdm(concepts, desc="pairs", unit="concept", disable=not progress):
            entry = manifest["concepts"].get(concept.id)
            fingerprint = concept_fingerprint(concept)
            path = self._target_path(concept.id)
            if (entry and entry["fingerprint"] == fingerprint and path.is_file()
                    and sha256_file(path) == entry["sha256"]):
                continue
            targets = {
                part: torch.from_numpy(np.ascontiguousarray(editor.edit(sources[part].numpy(), concept)))
                for part in ("train", "val")
            }
            for part, array in targets.items():
                if array.shape != sources[part].shape or array.dtype != torch.uint8:
                    raise ValueError(
                        f"editor returned {tuple(array.shape)} {array.dtype} for concept "
                        f"{concept.id}; expected uint8 {tuple(sources[part].shape)}"
                    )
            self._put_targets(manifest, concept, targets)
        return manifest

    def write_crops(self, settings: dict, concept, sources: dict[str, np.ndarray],
                    targets: dict[str, np.ndarray]) -> dict:
        """A new store of one concept from ready crops (uint8 [N,S,S,3] per part "train"/"val";
        ``settings`` from :func:`settings_record`); returns the manifest."""
        manifest = self._create(settings, sources)
        self._put_targets(manifest, concept, {k: torch.from_numpy(v) for k, v in targets.items()})
        return manifest

    def _put_targets(self, manifest: dict, concept, targets: dict[str, torch.Tensor]) -> None:
        """One concept's target crops, then its manifest entry (so a listed file is complete)."""
        sha = atomic_save_safetensors(targets, self._target_path(concept.id))
        manifest["concepts"][concept.id] = {
            "prompt": concept.prompt,
            "split": getattr(concept, "split", "train"),
            "file": f"targets/{concept.id}.safetensors",
            "sha256": sha,
            "fingerprint": concept_fingerprint(concept),
        }
        atomic_write_json(self.manifest_path, manifest)

    def _create(self, settings: dict, sources: dict[str, np.ndarray]) -> dict:
        """The shared source crops and a manifest with no concepts yet."""
        return self._new_manifest(settings, self._save_sources(sources))

    def _save_sources(self, sources: dict[str, np.ndarray]) -> str:
        """Save the train/val source crops; returns the file's sha256."""
        return atomic_save_safetensors(
            {k: torch.from_numpy(v) for k, v in sources.items()}, self._sources_path
        )

    def _new_manifest(self, settings: dict, sources_sha256: str) -> dict:
        """A manifest with no concepts yet, written."""
        manifest = {"settings": settings, "sources_sha256": sources_sha256, "concepts": {}}
        atomic_write_json(self.manifest_path, manifest)
        return manifest

    def _open_or_create(self, settings: PairSettings, train_photos, val_photos) -> dict:
        wanted = settings_record(settings, [p.name for p in train_photos],
                                 [p.name for p in val_photos])
        if self.manifest_path.is_file():
            manifest = self.manifest()
            if manifest["settings"] != wanted:
                found = differences(manifest["settings"], wanted, "")
                raise ConfigError(
                    f"the pair cache at {self.root} was built with settings {describe(found, 1)}, not "
                    f"{describe(found, 2)}; use another paths.pairs_dir or delete it"
                )
            path = self._sources_path
            if path.is_file() and sha256_file(path) == manifest["sources_sha256"]:
                return manifest
            log.warning("%s is missing or damaged; making the source crops again", path)
            sha = self._make_sources(settings, train_photos, val_photos)
            if sha == manifest["sources_sha256"]:
                return manifest  # the same crops again: every target still matches them
            log.warning("the new source crops differ from the old ones; editing every concept again")
        else:
            sha = self._make_sources(settings, train_photos, val_photos)
        return self._new_manifest(wanted, sha)

    def _make_sources(self, settings: PairSettings, train_photos, val_photos) -> str:
        """Draw the train/val source crops (seeded) and save them; returns the file's sha256."""
        rng = np.random.default_rng(settings.seed)
        crops = {
            "train": random_crops(train_photos, settings.n_train, settings.size, rng, settings.max_zoom),
            "val": random_crops(val_photos, settings.n_val, settings.size, rng, settings.max_zoom),
        }
        return self._save_sources(crops)

    def load(self, concept_id: str) -> ConceptPairs:
        """One concept's pairs, checksums verified; an unknown concept names the fix."""
        manifest = self.manifest()
        entry = manifest["concepts"].get(concept_id)
        if entry is None:
            raise UnknownConceptError(
                f"concept {concept_id!r} has no pairs in {self.root}; build them with "
                f"weightgen-pairs (known: {len(manifest['concepts'])} concepts)"
            )
        sources = load_safetensors(self._sources_path, manifest["sources_sha256"])
        targets = load_safetensors(self.root / entry["file"], entry["sha256"])
        return ConceptPairs(
            sources["train"].numpy(), targets["train"].numpy(),
            sources["val"].numpy(), targets["val"].numpy(),
        )

    def preview(self, path: str | Path, concept_ids: Sequence[str], per_row: int = 4) -> Path:
        """A PNG with a row per concept: ``per_row`` validation sources, then their targets."""
        rows, labels = [], []
        for concept_id in concept_ids:
            pairs = self.load(concept_id)
            rows.append(list(pairs.val_source[:per_row]) + list(pairs.val_target[:per_row]))
            labels.append(concept_id)
        columns = [f"source {i}" for i in range(per_row)] + [f"target {i}" for i in range(per_row)]
        return save_grid(path, rows, labels, columns)
