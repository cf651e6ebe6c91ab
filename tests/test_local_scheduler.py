"""The local scheduler under stress: hostile results, quick cancels, shutdown after a cancel,
and a client that forks (issue 13, defects 4 to 7)."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import azhpc
from azhpc.errors import SessionStoppedError
from tests.conftest import communicate_or_kill, wait_until

REPO = Path(__file__).parent.parent


def exit_on_unpickle() -> None:
    """What unpickling an :class:`ExitsWhenUnpickled` calls: it raises ``SystemExit``."""
    raise SystemExit("raised while unpickling")


class ExitsWhenUnpickled:
    """A value that pickles but raises ``SystemExit`` where it is rebuilt."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return exit_on_unpickle, ()


class ExitsWhenPickled:
    """A value that raises ``SystemExit`` when it is pickled."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        raise SystemExit("raised while pickling")


def make_hostile_result(_: object) -> ExitsWhenUnpickled:
    return ExitsWhenUnpickled()


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


# -- defect 4: a result whose unpickling raises SystemExit ---------------------------------------


def test_local_scheduler_survives_a_result_that_raises_system_exit_when_unpickled(
    local_session,
):
    job = local_session.submit(make_hostile_result, 1)
    with pytest.raises(azhpc.TaskError, match="SystemExit: raised while unpickling"):
        job.result(timeout=60)
    assert not local_session.closed and local_session.stopped is None
    # Other jobs still run on the same scheduler.
    assert local_session.map(abs, [-1, -2]) == [1, 2]


def test_local_scheduler_survives_a_done_callback_that_raises_system_exit(local_session):
    job = local_session.submit(abs, -1)
    called = threading.Event()

    def callback(_: concurrent.futures.Future) -> None:
        called.set()
        raise SystemExit("from a done-callback")

    job.add_done_callback(callback)
    assert job.result(timeout=60) == 1
    assert called.wait(timeout=60)
    assert local_session.submit(abs, -2).result(timeout=60) == 2
    assert not local_session.closed


def identity(value: object) -> object:
    return value


@pytest.mark.parametrize("slots", [1, 2])
def test_local_worker_fails_a_task_whose_input_raises_system_exit_when_unpickled(slots):
    # With 2 slots the task may run in a slot thread, which the SystemExit used to end
    # without a word (the task hung); in the main thread it ended the worker.
    with azhpc.connect(workers=1, slots=slots, progress=False) as session:
        jobs = [session.submit(identity, ExitsWhenUnpickled()) for _ in range(2)]
        for job in jobs:
            with pytest.raises(azhpc.TaskError, match="SystemExit: raised while unpickling"):
                job.result(timeout=60)
        assert session.submit(abs, -4).result(timeout=60) == 4


def test_local_worker_fails_a_task_whose_result_raises_system_exit_when_pickled(local_session):
    job = local_session.submit(ExitsWhenPickled)
    with pytest.raises(azhpc.TaskError, match="could not be pickled on the worker: SystemExit"):
        job.result(timeout=60)
    assert local_session.submit(abs, -4).result(timeout=60) == 4


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_session_whose_scheduler_died_says_so(monkeypatch):
    # The scheduler survives whatever user data does (above), so a bug is injected into it
    # to check what the session says when the thread dies anyway.
    session = azhpc.connect(workers=1, progress=False)
    try:
        backend = session.backend

        def broken_dispatch() -> None:
            raise SystemExit("injected scheduler bug")

        monkeypatch.setattr(backend, "_dispatch", broken_dispatch)
        job = session.submit(abs, -1)
        with pytest.raises(azhpc.TaskError, match="the local scheduler stopped: SystemExit"):
            job.result(timeout=60)
        backend._thread.join(timeout=30)
        assert not backend._thread.is_alive()
        assert session.closed
        assert "scheduler thread stopped: SystemExit: injected scheduler bug" in (
            session.stopped or ""
        )
        assert "stopped" in repr(session)
        with pytest.raises(SessionStoppedError, match="scheduler thread stopped"):
            session.submit(abs, -1)
        with pytest.raises(SessionStoppedError, match="scheduler thread stopped"):
            azhpc.Executor(session).submit(abs, -1)
        # The default session is replaced by a working one.
        assert azhpc.submit(abs, -3).result(timeout=60) == 3
    finally:
        session.close()
        default = azhpc.session.default_session()
        if default is not None and default is not session:
            default.close()


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


def test_executor_shutdown_cancel_futures_cancels_pending_jobs_and_returns(local_session, tmp_path):
    # Two workers with one slot each: two jobs run, the third waits.
    gate = str(tmp_path / "gate")
    ex = azhpc.Executor(local_session)
    jobs = [ex.submit(block_until_file, gate) for _ in range(3)]
    wait_until(lambda: sum(j.progress.running for j in jobs) == 2, what="two jobs to run")
    pending = next(j for j in jobs if j.progress.running == 0)
    shutdown = threading.Thread(
        target=ex.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True
    )
    shutdown.start()
    # The pending job is cancelled, and seen as done by waiters, while the others still run.
    done, _ = concurrent.futures.wait([pending], timeout=30)
    assert done == {pending} and pending.cancelled()
    Path(gate).touch()
    shutdown.join(timeout=30)
    assert not shutdown.is_alive(), "shutdown(cancel_futures=True) did not return"
    assert [j.result(timeout=0) for j in jobs if j is not pending] == [None, None]


def test_executor_map_timeout_then_shutdown_returns(local_session, tmp_path):
    ex = azhpc.Executor(local_session)
    results = ex.map(block_until_file, [str(tmp_path / "gate")], timeout=0.5)
    with pytest.raises(concurrent.futures.TimeoutError):
        next(results)
    run_in_thread(ex.shutdown, timeout=30)


# -- defect 7: a forked child ---------------------------------------------------------------------

FORK_SCRIPT = """
import multiprocessing, sys
import azhpc
from azhpc.errors import SessionStoppedError

def child(conn, inherited):
    try:
        # The default session inherited from the parent is dropped: this opens a fresh one.
        conn.send(("default", azhpc.map(abs, [-1, -2], progress=False)))
        try:
            inherited.submit(abs, -1)
        except SessionStoppedError as exc:
            conn.send(("inherited", str(exc)))
        conn.send(("closed", inherited.closed))
        azhpc.session.default_session().close()
    except BaseException as exc:
        conn.send(("error", repr(exc)))
    conn.close()

if __name__ == "__main__":
    parent = azhpc.connect(workers=1, progress=False)
    assert azhpc.map(abs, [-5], progress=False) == [5]
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    proc = multiprocessing.get_context("fork").Process(target=child, args=(theirs, parent))
    proc.start()
    for _ in range(3):
        if not ours.poll(90):
            print("child timed out"); proc.kill(); sys.exit(1)
        print(ours.recv())
    proc.join(30)
    # The parent's session still works after the child used (and dropped) its copy.
    print(("parent", azhpc.map(abs, [-3], progress=False), proc.exitcode))
"""


def test_forked_child_opens_its_own_session_instead_of_hanging(tmp_path):
    script = tmp_path / "fork_client.py"
    script.write_text(textwrap.dedent(FORK_SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    out, err = communicate_or_kill(proc, 180)
    assert proc.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "('default', [1, 2])", out + err
    assert lines[1].startswith("('inherited', ") and "is a fork of it" in lines[1], out
    assert lines[2] == "('closed', True)", out
    assert lines[3] == "('parent', [3], 0)", out + err
