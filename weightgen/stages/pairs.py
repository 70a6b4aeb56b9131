"""The pairs stage: cache every concept's pairs and draw the preview a person checks them with."""

from __future__ import annotations

import time

from hydra.utils import instantiate
from omegaconf import OmegaConf

from weightgen.concepts.spec import Concept
from weightgen.data.pairs import PairSettings
from weightgen.data.sources import bundled_photos, folder_photos, split_photos
from weightgen.errors import ConfigError
from weightgen.stages.workspace import Workspace


def build_pairs(ws: Workspace, concepts: list[Concept] | None = None) -> dict:
    """Make (or complete) the pair cache for ``concepts`` (default: all of the run's)."""
    data = ws.cfg.data
    if data.size % 4:
        raise ConfigError(
            f"data.size={data.size} is not a multiple of the generator's stride 4; use e.g. "
            f"{data.size - data.size % 4 or 4}"
        )
    if data.source == "bundled":
        photos = bundled_photos()
    elif data.source == "folder":
        if OmegaConf.is_missing(data, "folder") or not data.folder:
            raise ConfigError("data=folder needs data.folder=<a folder of photos>")
        photos = folder_photos(data.folder, min_side=data.size,
                               alpha_background=ws.cfg.alpha_background)
    else:
        raise ConfigError(f"data.source={data.source!r}: use bundled or folder")
    train_photos, val_photos = split_photos(photos, list(data.val_photos))
    settings = PairSettings(
        size=data.size, n_train=data.n_train, n_val=data.n_val, seed=data.seed,
        max_zoom=data.max_zoom, photos=data.source if data.folder is None else str(data.folder),
    )
    editor = instantiate(ws.cfg.editor)
    return ws.pair_store.build(
        concepts if concepts is not None else ws.concepts, editor, settings,
        train_photos, val_photos, progress=ws.cfg.progress,
    )


def build_pairs_with_preview(ws: Workspace, preview_rows: int = 16) -> dict:
    ws.save_config("pairs")
    start = time.perf_counter()
    manifest = build_pairs(ws)
    seconds = time.perf_counter() - start
    shown = ws.train_concepts[: preview_rows // 2] + ws.test_concepts[: preview_rows // 2]
    preview = ws.pair_store.preview(ws.run_dir / "grids" / "pairs.png", [c.id for c in shown])
    return {
        "pairs_dir": str(ws.pair_store.root),
        "concepts": len(manifest["concepts"]),
        "train_concepts": len(ws.train_concepts),
        "test_concepts": len(ws.test_concepts),
        "crops": {"train": manifest["settings"]["n_train"], "val": manifest["settings"]["n_val"]},
        "seconds": round(seconds, 1),
        "preview": str(preview),
    }
