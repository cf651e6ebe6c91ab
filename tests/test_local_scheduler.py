"""The local scheduler under stress: hostile results, quick cancels, shutdown after a cancel,
and a client that forks (issue 13, defects 4 to 7)."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from pathlib import Path

import pytest

import azhpc


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
