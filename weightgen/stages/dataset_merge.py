"""The dataset builder's ``merge`` stage: the shards' manifest parts joined into the run's
manifest (every concept with every checkpoint step), and the adapters' convergence report."""

from __future__ import annotations

import json
import logging

from weightgen.stages.dataset_adapters import adapter_report, shard_order
from weightgen.stages.workspace import Workspace
from weightgen.utils.io import atomic_write_json, atomic_write_text
from weightgen.utils.locks import store_lock
from weightgen.weights.convergence import (
    convergence_markdown,
    convergence_rows,
    convergence_summary,
)

log = logging.getLogger(__name__)


def merge_store(ws: Workspace) -> list[dict]:
    steps = sorted(int(s) for s in ws.cfg.builder.checkpoint_steps)
    store = ws.weight_store
    with store_lock(store.lock_path(), f"the merged manifest of {store.root}", ws.lock_timeout_s):
        return store.merge({c.id: steps for c in ws.concepts})


def write_convergence_report(ws: Workspace) -> dict:
    """``reports/adapter_convergence.{json,md}`` from every concept's adapter report: which
    adapters were still gaining at their last step (``builder.plateau_db``)."""
    folder = ws.run_dir / "reports"
    reports = [adapter_report(ws, c.id) for c in shard_order(ws)]
    summaries = [json.loads(path.read_text()) for path in reports if path.is_file()]
    plateau_db = float(ws.cfg.builder.plateau_db)
    rows = convergence_rows(summaries, plateau_db)
    summary = convergence_summary(rows, plateau_db)
    atomic_write_json(folder / "adapter_convergence.json", {"summary": summary, "adapters": rows})
    atomic_write_text(folder / "adapter_convergence.md", convergence_markdown(rows, summary))
    log.info("adapters at a plateau (< %.2f dB over their last third): %d of %d",
             plateau_db, summary["plateaued"], summary["adapters"])
    return {k: summary[k] for k in ("adapters", "plateaued", "median_final_psnr",
                                    "median_last_third_gain_db")}
