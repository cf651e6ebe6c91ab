"""Process-level behaviour of the local backend: lost workers, cancel, and no orphans."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import azhpc
from tests.conftest import communicate_or_kill, process_exists, wait_until


def kill_own_worker_once(x, marker):
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 10


def test_task_that_kills_its_worker_is_retried_on_a_new_one(local_session, tmp_path):
    marker = str(tmp_path / "killed")
    before = set(local_session.backend.node_pids())
    # chunksize=3: one task holds all three items, so the kill hits exactly that task.
    job = local_session.submit_map(
        lambda x: kill_own_worker_once(x, marker), [1, 2, 3], chunksize=3
    )
    assert job.result(timeout=120) == [10, 20, 30]
    killed = int(Path(marker).read_text())
    assert killed in before
    retried = [t for t in job.tasks if t.retry_count]
    assert len(retried) == 1 and retried[0].retry_count == 1
    assert "died" in retried[0].error.message and "SIGKILL" in retried[0].error.message
    wait_until(lambda: len(local_session.backend.node_pids()) == 2, what="a replacement worker")
    after = set(local_session.backend.node_pids())
    assert killed not in after and not process_exists(killed)


def test_task_that_always_kills_its_worker_fails_with_worker_lost(local_session):
    def always_die(_):
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(azhpc.TaskError) as info:
        local_session.map(always_die, [1])
    assert info.value.remote_type == "azhpc.errors.WorkerLostError"
    assert "took its worker down 4 times" in info.value.remote_message
    assert local_session.map(abs, [-5]) == [5]  # the pool is still healthy


def block_until_file(path):
    Path(path + ".started").write_text("")
    while not os.path.exists(path):
        threading.Event().wait(0.05)
    return "released"


def test_cancel_stops_running_tasks_and_the_pool_keeps_working(local_session, tmp_path):
    gate = str(tmp_path / "gate")
    job = local_session.submit(block_until_file, gate)
    wait_until(lambda: os.path.exists(gate + ".started"), what="the task to start")
    [running_on] = [t.node for t in job.tasks]
    pids_before = set(local_session.backend.node_pids())
    assert job.cancel() is True
    assert job.cancelled() and job.done()
    assert not job.cancel() or job.cancelled()
    # The worker running the task was stopped and replaced.
    wait_until(lambda: len(local_session.backend.node_pids()) == 2, what="replacement")
    assert set(local_session.backend.node_pids()) != pids_before
    assert running_on
    assert local_session.map(abs, [-1, -2]) == [1, 2]


def test_close_leaves_no_worker_processes():
    session = azhpc.connect(workers=2, progress=False)
    assert session.map(abs, [-1]) == [1]
    pids = session.backend.node_pids()
    assert len(pids) == 2 and all(process_exists(p) for p in pids)
    session.close()
    assert not any(process_exists(p) for p in pids)
    with pytest.raises(azhpc.ConfigError, match="closed"):
        session.map(abs, [1])


def test_keyboard_interrupt_while_waiting_cancels_the_job(local_session, tmp_path):
    gate = str(tmp_path / "gate")

    def interrupt_when_started():
        wait_until(lambda: os.path.exists(gate + ".started"), what="task start")
        _thread.interrupt_main()

    pids_before = set(local_session.backend.node_pids())
    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        local_session.map(block_until_file, [gate])
    # The job was cancelled: the worker running its task was stopped (and replaced).
    stopped = pids_before - set(local_session.backend.node_pids())
    assert len(stopped) == 1 and not process_exists(stopped.pop())
    assert local_session.map(abs, [-3]) == [3]


SCRIPT = """
import os, sys, threading, azhpc
from pathlib import Path
pidfile, gate = sys.argv[1], sys.argv[2]

def block(path):
    Path(path + ".started").write_text("")
    while not os.path.exists(path):
        threading.Event().wait(0.05)

session = azhpc.connect(workers=2, progress=False)
Path(pidfile).write_text(" ".join(map(str, session.backend.node_pids())))
{body}
"""


def _run_script(tmp_path, body):
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(SCRIPT).format(body=body))
    pidfile, gate = str(tmp_path / "pids"), str(tmp_path / "gate")
    proc = subprocess.Popen(
        [sys.executable, str(script), pidfile, gate],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).parent.parent),
    )
    wait_until(lambda: os.path.exists(gate + ".started"), timeout=60, what="client start")
    pids = [int(p) for p in Path(pidfile).read_text().split()]
    assert len(pids) == 2 and all(process_exists(p) for p in pids)
    return proc, pids


def test_ctrl_c_in_a_script_leaves_no_worker_processes(tmp_path):
    proc, pids = _run_script(tmp_path, "session.map(block, [sys.argv[2]])")
    proc.send_signal(signal.SIGINT)
    _, err = communicate_or_kill(proc, 60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    wait_until(lambda: not any(process_exists(p) for p in pids), what="workers to exit")


def test_ctrl_c_inside_a_with_block_leaves_no_worker_processes(tmp_path):
    body = "with session:\n    session.map(block, [sys.argv[2]])"
    proc, pids = _run_script(tmp_path, body)
    proc.send_signal(signal.SIGINT)
    communicate_or_kill(proc, 60)
    wait_until(lambda: not any(process_exists(p) for p in pids), what="workers to exit")


def test_killed_client_takes_its_workers_with_it(tmp_path):
    proc, pids = _run_script(tmp_path, "session.map(block, [sys.argv[2]])")
    proc.kill()
    communicate_or_kill(proc, 60)
    wait_until(lambda: not any(process_exists(p) for p in pids), what="workers to exit")
    with azhpc.connect(workers=1, progress=False):
        pass  # the next session reclaims the killed client's scratch folder


def test_large_partitions_travel_through_shared_memory_and_are_cleaned_up(local_session):
    df = pd.DataFrame({"a": np.arange(2_000_000, dtype=np.int64), "b": np.ones(2_000_000)})
    scratch = local_session.backend._scratch
    out = local_session.map_partitions(lambda p: p.assign(c=p.a * p.b), df, partitions=2)
    pd.testing.assert_frame_equal(out, df.assign(c=df.a * df.b))
    # Arrays rebuilt from shared memory are writable on both sides (copy-on-write maps).
    big = np.arange(1_000_000, dtype=np.float64)

    def double_in_place(block):
        block *= 2
        return block

    back = local_session.submit(double_in_place, big).result()
    np.testing.assert_array_equal(back, big * 2)
    back += 1  # the client may write to it too
    small = local_session.submit(double_in_place, np.arange(10.0)).result()
    np.testing.assert_array_equal(small, np.arange(10.0) * 2)
    assert os.listdir(scratch) == []  # inputs and results removed once gathered
    local_session.close()
    assert not os.path.exists(scratch)


def test_workers_run_tasks_with_the_clients_import_path(local_session, tmp_path, monkeypatch):
    (tmp_path / "helper_mod_xyz.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import helper_mod_xyz

    # Sessions started before the path change get it through... a new session.
    with azhpc.connect(workers=1, progress=False) as fresh:
        assert fresh.map(helper_mod_xyz.triple, [1, 2]) == [3, 6]


def test_workers_that_cannot_start_fail_jobs_clearly(tmp_path):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'no python here' >&2\nexit 3\n")
    broken.chmod(0o755)
    from azhpc.backends.local.backend import LocalBackend
    from azhpc.session import Session

    backend = LocalBackend(workers=1, python=str(broken))
    with (
        Session(backend, progress=False) as s,
        pytest.raises(azhpc.TaskError, match="cannot start") as info,
    ):
        s.map(abs, [1])
    assert "no python here" in info.value.remote_message


def test_done_callback_may_cancel_another_job(local_session, tmp_path):
    gate, gate2 = str(tmp_path / "gate"), str(tmp_path / "gate2")
    blocked = local_session.submit(block_until_file, gate)
    second = local_session.submit(block_until_file, gate2)
    wait_until(lambda: os.path.exists(gate2 + ".started"), what="both tasks to start")
    ran_on: list[str] = []
    cancelled = threading.Event()

    def cancel_the_other(_):
        ran_on.append(threading.current_thread().name)
        blocked.cancel()
        cancelled.set()

    second.add_done_callback(cancel_the_other)  # registered while it still runs
    Path(gate2).write_text("")
    assert second.result(timeout=60) == "released"
    assert cancelled.wait(timeout=10), "the callback did not finish: it waited for itself"
    assert ran_on == ["azhpc-local"]  # it ran on the scheduler thread
    assert blocked.cancelled()


def wait_for_partner(me, partner):
    Path(me).write_text("")
    while not os.path.exists(partner):
        threading.Event().wait(0.02)
    return os.getpid()


def test_a_worker_with_two_slots_runs_two_tasks_at_once(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with azhpc.connect(workers=1, slots=2, progress=False) as session:
        assert session.total_slots == 2
        # Each task waits until the other has started: only concurrent slots finish both.
        first = session.submit(wait_for_partner, a, b)
        second = session.submit(wait_for_partner, b, a)
        assert first.result(timeout=60) == second.result(timeout=60)  # same worker process


def test_result_timeout_raises_and_the_job_can_still_be_cancelled(local_session, tmp_path):
    import concurrent.futures

    gate = str(tmp_path / "gate")
    job = local_session.submit(block_until_file, gate)
    with pytest.raises(concurrent.futures.TimeoutError):
        job.result(timeout=0.05)
    assert job.cancel()
