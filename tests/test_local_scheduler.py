"""The local scheduler under stress: hostile results, quick cancels, shutdown after a cancel,
and a client that forks (issue 13, defects 4 to 7)."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from pathlib import Path

import pytest

import azhpc
from tests.conftest import wait_until


def block_until_file(path: str) -> None:
    Path(path + ".started").touch()
    while not os.path.exists(path):
        threading.Event().wait(0.02)


def run_in_thread(call, timeout: float) -> None:
    """Run ``call()`` in a daemon thread; fail the test if it has not returned in ``timeout``
    seconds (the thread is left blocked, never the test run)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call} did not return within {timeout}s"
    if errors:
        raise errors[0]

# -- defect 5: quick cancels are not start-up failures -------------------------------------------


HELD_START = """
import os, threading
gate = os.environ.get("AZHPC_TEST_START_GATE")
while gate and not os.path.exists(gate):  # hold this worker's start-up until the test says
    threading.Event().wait(0.01)
"""


def test_local_cancels_of_workers_still_starting_do_not_stop_the_pool(tmp_path, monkeypatch):
    # Workers start only once the gate file exists (a sitecustomize on their PYTHONPATH
    # waits for it), so each cancel below kills a worker before it said it was ready. Before
    # the fix, three such kills stopped the pool: "local workers cannot start".
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HELD_START)
    gate = tmp_path / "workers-may-start"
    monkeypatch.setenv("AZHPC_TEST_START_GATE", str(gate))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    with azhpc.connect(workers=1, progress=False) as session:
        for i in range(4):
            job = session.submit(block_until_file, str(tmp_path / f"task-gate-{i}"))
            wait_until(
                lambda job=job: job.progress.running == 1 or job.done(),
                what="the task to be sent to the starting worker",
            )
            assert not job.done(), job.exception()
            assert job.cancel()
        gate.touch()
        assert session.submit(abs, -7).result(timeout=60) == 7
        assert session.map(abs, [-1, -2, -3]) == [1, 2, 3]

# -- defect 6: shutdown and wait after a cancel --------------------------------------------------


def test_job_cancel_notifies_waiters(local_session, tmp_path):
    job = local_session.submit(block_until_file, str(tmp_path / "gate"))
    assert job.cancel()
    assert job.cancel(), "a cancelled future's cancel() is True again"
    done, not_done = concurrent.futures.wait([job], timeout=30)
    assert done == {job} and not not_done
    assert list(concurrent.futures.as_completed([job], timeout=30)) == [job]
    assert job.cancelled() and job.done()


def test_executor_shutdown_returns_after_a_cancel(local_session, tmp_path):
    ex = azhpc.Executor(local_session)
    job = ex.submit(block_until_file, str(tmp_path / "gate"))
    assert job.cancel()
    run_in_thread(ex.shutdown, timeout=30)


def test_executor_shutdown_cancel_futures_returns(local_session, tmp_path):
    ex = azhpc.Executor(local_session)
    jobs = [ex.submit(block_until_file, str(tmp_path / f"gate-{i}")) for i in range(3)]
    run_in_thread(lambda: ex.shutdown(wait=True, cancel_futures=True), timeout=30)
    assert all(job.cancelled() for job in jobs)


def test_executor_map_timeout_then_shutdown_returns(local_session, tmp_path):
    ex = azhpc.Executor(local_session)
    results = ex.map(block_until_file, [str(tmp_path / "gate")], timeout=0.5)
    with pytest.raises(concurrent.futures.TimeoutError):
        next(results)
    run_in_thread(ex.shutdown, timeout=30)
