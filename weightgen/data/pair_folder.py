"""A user's folder of image pairs as a pair store of aligned crops.

Layout::

    <pairs>/source/<name>.png     the photo before the edit (.png, .jpg, .jpeg or .webp)
    <pairs>/target/<name>.png     the same photo edited; same stem, same width and height

Every name needs both files; at least two pairs, each side at least the crop size. Whole pairs
are held out for validation (``val_fraction``, at least one), so metrics are measured on photos
training never saw. Crops are drawn like the run's (``PairSettings``): one random window per
crop, the same window in the source and its target, so every crop pair is as aligned as the
images are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weightgen.concepts.spec import Concept
from weightgen.data.pairs import PairSettings, PairStore, settings_record
from weightgen.data.sources import Photo, random_crops
from weightgen.errors import ConfigError, MissingInputError
from weightgen.utils.images import IMAGE_SUFFIXES, ImageReader, image_files


@dataclass
class PairFolder:
    """The validated image pairs of a pairs folder, sorted by name: uint8 [H,W,3] each."""

    folder: Path
    names: list[str]
    sources: list[np.ndarray]
    targets: list[np.ndarray]


def _images_by_stem(side: Path) -> dict[str, Path]:
    if not side.is_dir():
        raise MissingInputError(
            f"{side} does not exist: a pairs folder holds source/ and target/ sub-folders with "
            f"one image per name in each"
        )
    found: dict[str, Path] = {}
    for path in image_files(side):
        if path.stem in found:
            raise ConfigError(
                f"{found[path.stem]} and {path} share the name {path.stem!r}; rename one"
            )
        found[path.stem] = path
    return found


def read_pair_folder(folder: str | Path, min_side: int, alpha_background: str) -> PairFolder:
    """Read ``<folder>/source`` and ``<folder>/target``; any mismatch is an error naming files.

    Images are read as ``weightgen.utils.images`` documents (16-bit scaled, palette and grey
    converted); transparent pixels become ``alpha_background`` (white, black, or refuse)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(
            f"pairs folder {folder} does not exist; pass pairs=<folder with source/ and target/>"
        )
    sources, targets = _images_by_stem(folder / "source"), _images_by_stem(folder / "target")
    unmatched = sorted(set(sources) ^ set(targets))
    if unmatched:
        sides = [f"{n} ({'source' if n in sources else 'target'} only)" for n in unmatched[:5]]
        raise ConfigError(
            f"{folder}: {len(unmatched)} name(s) have no partner: {', '.join(sides)}; every "
            f"source/<name> needs a target/<name> with the same stem"
        )
    names = sorted(sources)
    if len(names) < 2:
        raise ConfigError(
            f"{folder}: {len(names)} image pair(s) found ({'/'.join(IMAGE_SUFFIXES)}); need at "
            f"least 2 (one to train on, one held out to measure the editor)"
        )
    reader = ImageReader(alpha_background)
    pairs = PairFolder(folder, names, [], [])
    for name in names:
        source, target = reader.read_checked(sources[name]), reader.read_checked(targets[name])
        if source.shape != target.shape:
            raise ConfigError(
                f"pair {name!r}: source {source.shape[1]}x{source.shape[0]} but target "
                f"{target.shape[1]}x{target.shape[0]}; a pair must be the same photo, same size"
            )
        if min(source.shape[:2]) < min_side:
            raise ConfigError(
                f"pair {name!r}: {source.shape[1]}x{source.shape[0]} is smaller than the crop "
                f"size {min_side} (data.size); use larger images"
            )
        pairs.sources.append(source)
        pairs.targets.append(target)
    return pairs


def aligned_crops(
    sources: list[np.ndarray], targets: list[np.ndarray], count: int, size: int, seed: list[int],
    max_zoom: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The same random windows from sources and targets (equal shapes draw equal windows)."""
    source_photos = [Photo(str(i), p) for i, p in enumerate(sources)]
    target_photos = [Photo(str(i), p) for i, p in enumerate(targets)]
    return (
        random_crops(source_photos, count, size, np.random.default_rng(seed), max_zoom),
        random_crops(target_photos, count, size, np.random.default_rng(seed), max_zoom),
    )


def write_folder_pair_store(
    root: str | Path, concept: Concept, pairs: PairFolder, settings: PairSettings,
    val_fraction: float,
) -> tuple[PairStore, dict]:
    """A one-concept pair store (the pair cache's format) of aligned crops; (store, data card)."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"pairs_val_fraction={val_fraction} must be between 0 and 1, e.g. 0.2")
    order = np.random.default_rng(settings.seed).permutation(len(pairs.names))
    n_val = min(len(order) - 1, max(1, round(val_fraction * len(order))))
    split = {"val": sorted(order[:n_val]), "train": sorted(order[n_val:])}
    crops = {}
    for index, (part, count) in enumerate((("train", settings.n_train), ("val", settings.n_val))):
        crops[part] = aligned_crops(
            [pairs.sources[i] for i in split[part]], [pairs.targets[i] for i in split[part]],
            count, settings.size, [settings.seed, index], settings.max_zoom,
        )
    root = Path(root)
    store = PairStore(root)
    names = {part: [pairs.names[i] for i in indices] for part, indices in split.items()}
    store.write_crops(settings_record(settings, names["train"], names["val"]), concept,
                      {part: c[0] for part, c in crops.items()},
                      {part: c[1] for part, c in crops.items()})
    data = {
        "source": "folder",
        "folder": str(pairs.folder.resolve()),
        "pairs_dir": str(root.resolve()),
        "train_pairs": names["train"],
        "val_pairs": names["val"],
    }
    return store, data
