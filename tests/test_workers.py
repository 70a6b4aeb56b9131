"""weightgen.utils.workers: spawned workers that end as one command (the dataset builder's
builder.processes). The tasks are this module's functions: a spawned worker imports them."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from weightgen.cli.user_errors import user_errors_reported
from weightgen.errors import ConfigError, InterruptedRunError
from weightgen.utils.workers import RemoteTraceback, run_in_processes


def count_to(n: int, report) -> int:
    for i in range(n):
        report(i)
    logging.getLogger("weightgen.test").warning("counted to %d", n)
    return n * 10


def fail_or_sleep(kind: str, report):
    if kind == "sleep":
        time.sleep(120)
    elif kind == "user":
        raise ConfigError("builder.processes=3 is not what this test wants; use 2")
    elif kind == "bug":
        raise ZeroDivisionError("a bug in a worker")
    elif kind == "killed":
        os.kill(os.getpid(), signal.SIGKILL)


def test_results_reports_and_log_lines_reach_the_parent(caplog):
    reports = []
    with caplog.at_level(logging.INFO):
        results = run_in_processes(count_to, [(2,), (3,)], ["worker 1/2", "worker 2/2"],
                                   on_report=lambda k, payload: reports.append((k, payload)))
    assert results == [20, 30]
    assert sorted(reports) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert {r.getMessage() for r in caplog.records if r.name == "weightgen.test"} == {
        "worker 1/2: counted to 2", "worker 2/2: counted to 3"}


def test_a_user_error_in_a_worker_is_the_commands_one_line_error_and_stops_the_others(capsys):
    start = time.monotonic()
    with pytest.raises(SystemExit) as stop, user_errors_reported():
        run_in_processes(fail_or_sleep, [("sleep",), ("user",)], ["worker 1/2", "worker 2/2"])
    assert stop.value.code == 1
    assert capsys.readouterr().err == (
        "error: builder.processes=3 is not what this test wants; use 2\n")
    assert time.monotonic() - start < 60  # the sleeping worker was stopped, not waited for


def test_the_workers_error_keeps_its_class_and_its_traceback_as_the_cause():
    with pytest.raises(ConfigError, match="use 2") as err:
        run_in_processes(fail_or_sleep, [("user",)], ["worker 1/1"])
    assert isinstance(err.value.__cause__, RemoteTraceback)
    assert "in fail_or_sleep" in str(err.value.__cause__)
    with pytest.raises(ZeroDivisionError, match="a bug in a worker") as bug:
        run_in_processes(fail_or_sleep, [("bug",)], ["worker 1/1"])
    assert "ZeroDivisionError" in str(bug.value.__cause__)


def test_a_worker_killed_without_a_word_is_an_interrupted_run():
    with pytest.raises(InterruptedRunError, match=r"worker 2/2 was killed by SIGKILL \(out of "
                                                  r"memory\?\) before it finished; .* rerun"):
        run_in_processes(fail_or_sleep, [("sleep",), ("killed",)], ["worker 1/2", "worker 2/2"])
