"""One writer per store: a file lock held while a process builds a run's pairs, base, weight-store
shard or generator.

Two processes building the same store would interleave read-modify-write of its manifest (and
one would die on the other's half-finished entry). The second process waits for the first and
then resumes (everything the first built is skipped), or, with ``lock_timeout_s`` set, fails with
:class:`RunBusyError` after that many seconds. The lock is the OS's (``filelock``): a killed
process releases it, so a lock file left on disk is never stale.

Only the main process of a DDP job locks: the other ranks run the entry point too (Lightning's
launcher or srun starts them) while rank 0 holds the lock, and would wait on it forever.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from weightgen.errors import RunBusyError

log = logging.getLogger(__name__)

# Set by torchrun/Lightning's launcher (RANK, LOCAL_RANK, NODE_RANK) and by srun (SLURM_PROCID).
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def lock_beside(folder: str | Path) -> Path:
    """The lock file of a store folder: a hidden sibling, so the folder holds only the store."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def is_main_process() -> bool:
    """Rank 0 of a (possibly distributed) job; a plain process is its own rank 0."""
    return all(int(os.environ.get(name, "0")) == 0 for name in _RANK_VARIABLES)


@contextmanager
def store_lock(lock_path: str | Path, what: str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold ``lock_path`` while building ``what``; ``timeout_s`` None waits as long as it takes."""
    if not is_main_process():
        yield
        return
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if timeout_s is not None and timeout_s <= 0:
            raise RunBusyError(_busy_message(what, lock_path, timeout_s)) from None
        log.warning("another process is building %s (%s is locked); waiting for it to finish",
                    what, lock_path)
        try:
            lock.acquire(timeout=-1 if timeout_s is None else timeout_s)
        except Timeout:
            raise RunBusyError(_busy_message(what, lock_path, timeout_s)) from None
    try:
        yield
    finally:
        lock.release()


def _busy_message(what: str, lock_path: Path, timeout_s: float) -> str:
    waited = f", still after {timeout_s:g} s" if timeout_s > 0 else ""
    return (
        f"another process is building {what} of this run ({lock_path} is locked{waited}); let "
        f"it finish and rerun (the build resumes), or set lock_timeout_s=null to wait for it"
    )
