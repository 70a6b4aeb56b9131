"""Run a function in a few spawned worker processes on this machine, as one command.

:func:`run_in_processes` starts one process per job (``spawn``: a fresh interpreter, no state
forked from the parent) and waits for all of them, so that to the user they are one command:

- a worker's log records (weightgen's own lines, warnings) come out of the parent's loggers,
  prefixed with the worker's name, so they reach the console and Hydra's log file;
- a worker hands results to the parent as it goes through its ``report`` callable;
- the first worker that fails stops the others (SIGTERM), and its exception is raised in the
  parent: a :class:`~weightgen.errors.WeightgenError` comes back as the same class with the same
  message (the entry point prints it as its one line and exits 1), with the worker's traceback
  as its ``__cause__`` (``debug=true`` shows it); a worker that dies without a word (killed, out
  of memory) or is stopped by Ctrl-C is an :class:`~weightgen.errors.InterruptedRunError`;
- Ctrl-C or SIGTERM to the parent stops the workers too (an ``InterruptedRunError``): no worker
  outlives the command.

Work a stopped worker finished is the caller's to keep: the dataset builder's workers write each
concept's adapter as one unit, so rerunning the command resumes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue as queues
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hydra.errors import InstantiationException
from tqdm.std import tqdm

from weightgen.errors import InterruptedRunError, WeightgenError

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the parent looks for a worker that died without a word
STOP_GRACE_S = 30.0  # after SIGTERM, how long a worker may take to stop before SIGKILL


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a cluster job's share), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class RemoteTraceback(Exception):
    """A worker's traceback as text: the ``__cause__`` of its exception raised in the parent."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class _ForwardLogs(logging.Handler):
    """In a worker: every log record goes to the parent (message formatted, picklable)."""

    def __init__(self, channel, index: int):
        super().__init__()
        self.channel, self.index = channel, index

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg = record.getMessage()
            if record.exc_info:
                record.msg += "\n" + logging.Formatter().formatException(record.exc_info)
            record.args, record.exc_info, record.exc_text = None, None, None
            self.channel.put(("log", self.index, record))
        except Exception:  # a log line must never take the worker down
            self.handleError(record)


def _portable(err: BaseException) -> BaseException:
    """``err`` as the parent should see it: the user error Hydra's ``instantiate`` wrapped (as
    ``cli.user_errors.user_error`` unwraps it; a pickled exception loses its ``__cause__``), and
    something that survives pickling."""
    while isinstance(err, InstantiationException) and isinstance(err.__cause__, WeightgenError):
        err = err.__cause__
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


def _worker_main(task: Callable, args: tuple, index: int, channel, log_level: int) -> None:
    """A worker process: ``task(*args, report)``; its logs, reports and end go to ``channel``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_ForwardLogs(channel, index))
    root.setLevel(log_level)
    # tqdm's default lock would be a multiprocessing lock: under spawn a named semaphore, which
    # Python's resource tracker then reports as leaked at exit. A worker's bars need no
    # cross-process lock.
    tqdm.set_lock(threading.RLock())
    try:
        result = task(*args, lambda payload: channel.put(("report", index, payload)))
        channel.put(("done", index, result))
    except BaseException as err:  # noqa: BLE001 - every end of a worker goes to the parent
        channel.put(("error", index, pickle.dumps(_portable(err)), traceback.format_exc()))
        raise SystemExit(1) from None


class _Stopped(BaseException):
    """SIGTERM reached the parent while it waited for its workers."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the parent waits, SIGTERM raises (so the workers are stopped) instead of killing it
    at once and leaving them running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _died(name: str, exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        how = f"was killed by {signal.Signals(-exitcode).name}"
        if -exitcode == signal.SIGKILL:
            how += " (out of memory?)"
    else:
        how = f"exited with status {exitcode}"
    return f"{name} {how} before it finished"


def run_in_processes(
    task: Callable[..., Any],
    jobs: Sequence[tuple],
    names: Sequence[str],
    on_report: Callable[[int, Any], None] = lambda index, payload: None,
    on_done: Callable[[int, Any], None] = lambda index, result: None,
    rerun_hint: str = "rerun the same command to finish the run",
) -> list[Any]:
    """``task(*jobs[k], report)`` in one spawned process per job; their results, in job order.

    ``task`` must be a module-level function and ``jobs`` picklable. ``report(payload)`` in a
    worker calls ``on_report(k, payload)`` in the parent; ``on_done(k, result)`` runs as each
    worker finishes. ``names[k]`` names worker k in its log lines and errors; ``rerun_hint`` ends
    the message of a worker that was stopped or died.
    """
    context = multiprocessing.get_context("spawn")
    channel = context.Queue()
    level = logging.getLogger().getEffectiveLevel()
    workers = [context.Process(target=_worker_main, args=(task, tuple(job), k, channel, level),
                               name=names[k]) for k, job in enumerate(jobs)]
    results: dict[int, Any] = {}

    def handle(message: tuple) -> None:
        _handle(message, results, names, on_report, on_done, rerun_hint)

    try:
        with _sigterm_raises():
            for worker in workers:
                worker.start()
            while len(results) < len(workers):
                try:
                    handle(channel.get(timeout=POLL_S))
                except queues.Empty:
                    dead = [k for k, w in enumerate(workers)
                            if k not in results and not w.is_alive()]
                    if dead:  # its last words may have reached the pipe after the poll
                        for message in _drain(channel):
                            handle(message)
                    for k in dead:
                        if k not in results:
                            raise InterruptedRunError(
                                f"{_died(names[k], workers[k].exitcode)}; what the workers "
                                f"finished is kept: {rerun_hint}") from None
    except KeyboardInterrupt:
        raise InterruptedRunError(f"the workers ({', '.join(names)}) were stopped (Ctrl-C); "
                                  f"what they finished is kept: {rerun_hint}") from None
    except _Stopped:
        raise InterruptedRunError(f"the workers ({', '.join(names)}) were stopped (SIGTERM); "
                                  f"what they finished is kept: {rerun_hint}") from None
    finally:
        _stop(workers, channel, names)
    return [results[k] for k in range(len(workers))]


def _forward(message: tuple, names: Sequence[str]) -> None:
    """A worker's log record, out of the parent's logger of the same name."""
    record = message[2]
    record.msg = f"{names[message[1]]}: {record.msg}"
    logging.getLogger(record.name).handle(record)


def _handle(message: tuple, results: dict, names: Sequence[str], on_report: Callable,
            on_done: Callable, rerun_hint: str) -> None:
    kind, index = message[0], message[1]
    if kind == "log":
        _forward(message, names)
    elif kind == "report":
        on_report(index, message[2])
    elif kind == "done":
        results[index] = message[2]
        on_done(index, message[2])
    else:
        err, remote = pickle.loads(message[2]), message[3]
        if not isinstance(err, Exception):  # KeyboardInterrupt, SystemExit in the worker
            raise InterruptedRunError(f"{names[index]} was stopped ({type(err).__name__}); what "
                                      f"the workers finished is kept: {rerun_hint}")
        raise err from RemoteTraceback(remote)


def _drain(channel) -> Iterator[tuple]:
    """The messages waiting in ``channel`` (a little patience: a dead worker's are in the pipe)."""
    while True:
        try:
            yield channel.get(timeout=POLL_S)
        except queues.Empty:
            return


def _stop(workers: list, channel, names: Sequence[str]) -> None:
    """End every worker still running: SIGTERM (a fit stops cleanly), SIGKILL after a grace.

    The channel is read meanwhile (a worker whose last messages fill the pipe cannot exit): log
    lines still come out, results and errors of stopped workers are dropped."""
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        try:
            message = channel.get(timeout=0.1)
        except queues.Empty:
            continue
        if message[0] == "log":
            _forward(message, names)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
        if worker.pid is not None:
            worker.join()
    channel.close()
