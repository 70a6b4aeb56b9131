"""The Concept record (text + how to make its targets) and concept files (YAML or JSONL).

A concept is what one adapter is trained for: a prompt the weight generator is conditioned on,
plus either a procedural `recipe` (exact targets) or an `instruction` for a diffusion editor.
Files are validated on load so a typo fails at once, naming the entry, not hours into a run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from weightgen.concepts.ops import Step, normalize_recipe
from weightgen.errors import ConfigError, MissingInputError
from weightgen.utils.io import PathLike, atomic_write_text

SPLITS = ("train", "val", "test")
HELD_OUT_SPLITS = ("val", "test")  # never generator training data
# How a held-out concept is new: "new" (a recipe no training concept has) or "paraphrase" (a
# training concept's recipe under new wording). The bench reports each kind apart.
HOLDOUT_KINDS = ("new", "paraphrase")
# What concept files written before the kinds were named call a new concept.
_LEGACY_KINDS = {"combination": "new"}
# Ids name files in the weight store, so they must be safe file names.
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
# ...and none of the fixed names in the stores' folders: a concept "manifest.jsonl" would be
# trained into weights/manifest.jsonl/ and break every merge after it. The pair store's, the
# weight store's, the base's and the generator's own files and folders (tests/test_concepts.py
# checks this list against the files a run writes); compared without case, as some file systems do.
RESERVED_IDS = (
    "manifest.json", "sources.safetensors", "targets",  # pair store
    "manifest.jsonl",  # weight store (and its shard parts, below)
    "base.json", "generator.safetensors", "discriminator.safetensors",  # base GAN
    "generator.json", "denoiser.safetensors", "tokenizer.safetensors",  # weight generator
    "examples.safetensors", "logs", "zero_shot.json", "zero_shot.md",
)
_RESERVED_PATTERN = re.compile(r"manifest\.shard-\d+-of-\d+\.jsonl")
_YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Concept:
    """One editing concept.

    recipe: canonical procedural steps (see `ops.normalize_recipe`); lists of dicts are accepted
        and normalised. instruction: text for the diffusion editor. At least one is required.
    split: "train" (the weight generator learns it), "val" (held out from it; the only split
        on which choices are made by looking at results) or "test" (held out; reported, never
        tuned on).
    family: the ops of the recipe joined by "+" (derived when not given), e.g. "cartoon+tint".
    parts: named building blocks of the concept, e.g. ("cartoon", "tint_teal"): held-out
        combinations are new pairings of parts seen in training.
    holdout: for held-out (val/test) concepts, their kind: "new" (a recipe no training concept
        has) or "paraphrase" (a training concept's recipe in other words); None on a held-out
        concept means "new" (``kind``). A concept file may leave it out: ``load_concepts``
        infers it from the file's training recipes.
    phrasings: every prompt the weight generator may be trained on for this concept, ``prompt``
        first (it is added when missing; default: the prompt alone). See `concepts.phrasings`.
    heldout_phrasing: a wording kept out of training, to evaluate whether the generator reads
        meaning or wording; never one of ``phrasings``.
    """

    id: str
    prompt: str
    recipe: tuple[Step, ...] | None = None
    instruction: str | None = None
    split: str = "train"
    family: str = ""
    parts: tuple[str, ...] = ()
    holdout: str | None = None
    phrasings: tuple[str, ...] = ()
    heldout_phrasing: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_PATTERN.fullmatch(self.id):
            raise ConfigError(
                f"concept id {self.id!r} is invalid: use letters, digits and _ . + - "
                "(it names files in the weight store)"
            )
        if self.id.lower() in RESERVED_IDS or _RESERVED_PATTERN.fullmatch(self.id.lower()):
            raise ConfigError(
                f"concept id {self.id!r} is the name of a file or folder of the run's stores "
                f"(reserved: {', '.join(RESERVED_IDS)}, manifest.shard-<i>-of-<n>.jsonl); "
                "rename the concept, e.g. by adding a word to its id"
            )
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ConfigError(f"concept {self.id!r}: the prompt is missing or empty")
        if self.recipe is None and self.instruction is None:
            raise ConfigError(
                f"concept {self.id!r}: give a recipe (procedural editor) or an instruction "
                "(diffusion editor); it has neither"
            )
        if self.instruction is not None and (
            not isinstance(self.instruction, str) or not self.instruction.strip()
        ):
            raise ConfigError(f"concept {self.id!r}: the instruction must be non-empty text")
        if self.split not in SPLITS:
            raise ConfigError(
                f"concept {self.id!r}: unknown split {self.split!r}; use one of {', '.join(SPLITS)}"
            )
        if self.holdout is not None and (
            self.holdout not in HOLDOUT_KINDS or self.split not in HELD_OUT_SPLITS
        ):
            raise ConfigError(
                f"concept {self.id!r}: holdout {self.holdout!r} needs split "
                f"{' or '.join(HELD_OUT_SPLITS)} and one of {', '.join(HOLDOUT_KINDS)}"
            )
        if self.recipe is not None:
            try:
                recipe = normalize_recipe(self.recipe)
            except ValueError as err:
                raise ConfigError(f"concept {self.id!r}: {err}") from err
            object.__setattr__(self, "recipe", recipe)
            if not self.family:
                object.__setattr__(self, "family", "+".join(step.op for step in recipe))
        if not isinstance(self.parts, list | tuple) or not all(
            isinstance(part, str) for part in self.parts
        ):
            raise ConfigError(
                f"concept {self.id!r}: parts must be a list of names, got {self.parts!r}"
            )
        object.__setattr__(self, "parts", tuple(self.parts))
        self._check_phrasings()

    @property
    def held_out(self) -> bool:
        """Whether the weight generator never trains on it (split val or test)."""
        return self.split in HELD_OUT_SPLITS

    @property
    def kind(self) -> str | None:
        """A held-out concept's kind ("new" unless stated); None for a train concept."""
        if not self.held_out:
            return None
        return self.holdout or "new"

    def _check_phrasings(self) -> None:
        """``phrasings``: distinct non-empty texts, the prompt first; the held-out one apart."""
        if not isinstance(self.phrasings, list | tuple) or not all(
            isinstance(text, str) and text.strip() for text in self.phrasings
        ):
            raise ConfigError(
                f"concept {self.id!r}: phrasings must be a list of non-empty prompts, got "
                f"{self.phrasings!r}"
            )
        repeated = sorted({text for text in self.phrasings if self.phrasings.count(text) > 1})
        if repeated:
            raise ConfigError(
                f"concept {self.id!r}: phrasings list {repeated} more than once; give each once"
            )
        phrasings = tuple(self.phrasings)
        if self.prompt not in phrasings:
            phrasings = (self.prompt, *phrasings)
        elif phrasings[0] != self.prompt:
            phrasings = (self.prompt, *(text for text in phrasings if text != self.prompt))
        object.__setattr__(self, "phrasings", phrasings)
        if self.heldout_phrasing is None:
            return
        if not isinstance(self.heldout_phrasing, str) or not self.heldout_phrasing.strip():
            raise ConfigError(
                f"concept {self.id!r}: heldout_phrasing must be non-empty text (or left out)"
            )
        if self.heldout_phrasing in phrasings:
            raise ConfigError(
                f"concept {self.id!r}: heldout_phrasing {self.heldout_phrasing!r} is also a "
                "training phrasing (or the prompt); a held-out wording must differ from all of them"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples), no empty optional fields: ready for YAML/JSON."""
        row: dict[str, Any] = {"id": self.id, "prompt": self.prompt, "split": self.split}
        if self.recipe is not None:
            row["recipe"] = [step.to_dict() for step in self.recipe]
        if self.instruction is not None:
            row["instruction"] = self.instruction
        if self.family:
            row["family"] = self.family
        if self.parts:
            row["parts"] = list(self.parts)
        if self.holdout is not None:
            row["holdout"] = self.holdout
        if self.phrasings != (self.prompt,):
            row["phrasings"] = list(self.phrasings)
        if self.heldout_phrasing is not None:
            row["heldout_phrasing"] = self.heldout_phrasing
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Concept:
        if not isinstance(row, Mapping):
            raise ConfigError(f"a concept must be a mapping of fields, got {type(row).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(row) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown field(s) {', '.join(unknown)}; concept fields are: {', '.join(known)}"
            )
        missing = [key for key in ("id", "prompt") if key not in row]
        if missing:
            raise ConfigError(f"missing field(s): {', '.join(missing)}")
        recipe = row.get("recipe")
        if recipe is not None and not isinstance(recipe, list | tuple):
            raise ConfigError(f"recipe must be a list of steps like [{{op: sepia}}], got {recipe!r}")
        holdout = row.get("holdout")
        if isinstance(holdout, str) and holdout in _LEGACY_KINDS:
            row = {**row, "holdout": _LEGACY_KINDS[holdout]}
        return cls(**row)


def _entries(path: Path) -> list[tuple[str, Any]]:
    """(location, raw entry) pairs, so errors can point at the entry or line."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in _YAML_SUFFIXES:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
        if isinstance(data, Mapping) and "concepts" in data:
            data = data["concepts"]
        if not isinstance(data, list):
            raise ConfigError(
                f"{path}: expected a list of concepts or a mapping {{concepts: [...]}}"
            )
        return [(f"entry {index}", row) for index, row in enumerate(data, start=1)]
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path}: line {number} is not valid JSON ({err.msg})") from err
        return rows
    raise ConfigError(
        f"{path}: unknown concept file type {path.suffix!r}; use .yaml, .yml or .jsonl"
    )


def load_concepts(path: PathLike) -> list[Concept]:
    """Read and validate a concept file; every error names the file, the entry and the problem."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"concept file {path} does not exist; check concepts.path")
    concepts: list[Concept] = []
    seen: dict[str, str] = {}
    stated: set[str] = set()  # ids whose entry states its holdout kind
    for where, row in _entries(path):
        label = f"{path}: {where}"
        if isinstance(row, Mapping) and "id" in row:
            label += f" (id {row['id']!r})"
        try:
            concept = Concept.from_dict(row)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{label}: {err}") from err
        if concept.id in seen:
            raise ConfigError(
                f"{label}: duplicate concept id {concept.id!r} (first at {seen[concept.id]}); "
                "ids must be unique"
            )
        seen[concept.id] = where
        if row.get("holdout") is not None:
            stated.add(concept.id)
        concepts.append(concept)
    if not concepts:
        raise ConfigError(f"{path}: contains no concepts")
    return _with_kinds(concepts, stated, path)


def _with_kinds(concepts: list[Concept], stated: set[str], path: Path) -> list[Concept]:
    """Each held-out concept of a file with its kind: as stated, or "paraphrase" when a train
    concept of the file has its recipe and "new" otherwise. A concept stated "new" whose recipe
    a train concept has is an error: it would count a reworded edit as a new one."""
    train_recipes = {c.recipe: c.id for c in concepts if not c.held_out and c.recipe is not None}
    kinded = []
    for concept in concepts:
        twin = train_recipes.get(concept.recipe) if concept.held_out else None
        if twin is not None and concept.id in stated and concept.holdout == "new":
            raise ConfigError(
                f"{path}: concept {concept.id!r} is held out as holdout: new, but train concept "
                f"{twin!r} has the same recipe; state holdout: paraphrase (or change the recipe)"
            )
        if twin is not None and concept.id not in stated:
            concept = replace(concept, holdout="paraphrase")
        kinded.append(concept)
    return kinded


def save_concepts(concepts: Iterable[Concept], path: PathLike) -> None:
    """Write concepts atomically as YAML ({concepts: [...]}) or JSONL, chosen by the suffix."""
    path = Path(path)
    rows = [concept.to_dict() for concept in concepts]
    if path.suffix in _YAML_SUFFIXES:
        text = yaml.safe_dump({"concepts": rows}, sort_keys=False, allow_unicode=True)
    elif path.suffix == ".jsonl":
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    else:
        raise ValueError(f"{path}: unknown concept file type {path.suffix!r}; use .yaml or .jsonl")
    atomic_write_text(path, text)
