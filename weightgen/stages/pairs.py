"""The pairs stage: cache every concept's pairs and draw the preview a person checks them with."""

from __future__ import annotations

import time

from weightgen.stages.workspace import Workspace


def build_pairs_with_preview(ws: Workspace, preview_rows: int = 16) -> dict:
    ws.save_config("pairs")
    start = time.perf_counter()
    manifest = ws.build_pairs()
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
